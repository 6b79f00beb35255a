//! wst-rl integration tests (one binary: every test binary links libtorch).

mod baselines;
mod failures;
mod http;
mod learning;
mod lm;
mod mix;
mod precision;
mod resume;
mod support;
mod variants;
