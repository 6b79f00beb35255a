//! wst-rl integration tests (one binary: every test binary links libtorch).

mod learning;
mod resume;
mod support;
