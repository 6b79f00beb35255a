//! Integration tests of `wst-reward` (one binary, one module per topic).

mod command;
#[cfg(feature = "http")]
mod http;
mod verify;
