//! wst-rl integration tests (one binary: every test binary links libtorch).

mod failures;
mod http;
mod learning;
mod lm;
mod resume;
mod support;
