//! Integration tests of wst-models (one test binary; one module per topic).

mod gguf;
mod gpt2;
mod hub;
mod lm;
mod student_http;
