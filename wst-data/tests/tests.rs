//! Integration tests of wst-data: one test binary, one module per topic.

mod bad_input;
mod baselines;
mod common;
mod datasets;
mod hub;
mod report;
mod rollouts;
