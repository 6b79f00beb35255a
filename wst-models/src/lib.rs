//! Language models for **wst** on tch (libtorch): decoders (Llama, Qwen2, Gemma), GPT-2 reward
//! models, weight loading, tokenizers, chat templates and batched sampling.

mod device;
mod error;
pub mod gguf;
pub mod student_http;

pub use device::{cuda_device_count, select_device, torch_info};
pub use error::{Error, Result};
pub use student_http::{Backoff, HttpStats, HttpStudent, HttpStudentError};
