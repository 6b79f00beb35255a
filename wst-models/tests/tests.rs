//! Integration tests of wst-models (one test binary; one module per topic).

mod gguf;
mod student_http;
