//! Integration tests of wst-models (one test binary; one module per topic).

mod gguf;
mod lm;
mod gpt2;
mod student_http;
