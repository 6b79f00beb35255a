//! Integration tests of `wst-reward` (one binary, one module per topic).

mod verify;
