//! wst-rl integration tests (one binary: every test binary links libtorch).

mod http;
mod learning;
mod lm;
mod mix;
mod resume;
mod support;
