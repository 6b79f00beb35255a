//! Language models for **wst** on tch (libtorch): decoders (Llama, Qwen2, Gemma), weight
//! loading, tokenizers, chat templates, batched sampling and a local student.
//!
//! One model code path serves every weight source: a [`WeightStore`] hands named tensors
//! (memory-mapped safetensors, single or sharded, or GGUF dequantised into memory) to
//! [`DecoderLm::load`], which checks each name and shape against the [`DecoderConfig`] and
//! copies it into a [`tch::nn::VarStore`] under its Hugging Face name, so the same variables are
//! sampled from ([`Generator`], with a preallocated [`KvCache`]), trained (`wst-rl`) and saved.
//! [`LoadedModel`] puts a model together with its tokenizer, chat template and special tokens,
//! from a folder, a `.gguf` file, a hub model id (cached or downloaded, [`hub`]) or a trained
//! checkpoint; [`export`] writes any of them back as a Hugging Face folder.

mod chat;
mod config;
mod cuda_graph;
mod decoder;
mod device;
mod error;
pub mod export;
mod generate;
pub mod gguf;
pub mod gpt2;
pub mod hub;
mod loader;
mod student;
pub mod student_http;
mod tokenizer;
mod weights;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Activation, Arch, DecoderConfig, RopeScaling};
pub use cuda_graph::{
    cuda_graphs_available, cuda_graphs_enabled_by_env, cuda_peak_memory, cuda_reset_peak_memory,
    CudaGraph,
};
pub use decoder::{lora, target_logprobs, DecoderLm, KvCache};
pub use device::{cuda_device_count, select_device, torch_info};
pub use error::{BoxError, Error, Result};
pub use generate::{sample, Generation, Generator};
pub use gpt2::{GPT2ForSequenceClassification, Gpt2Config};
pub use loader::{
    alias_path, check_vocab, checkpoint_base, checkpoint_dir, checkpoint_teacher, dtype_kind,
    resolve_spec, LoadedModel, CHECKPOINT_ADAPTERS, CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS,
    SMOLLM2_ALIAS, SMOLLM2_FILE,
};
pub use student::LocalStudent;
pub use student_http::{Backoff, HttpStats, HttpStudent, HttpStudentError};
pub use tokenizer::Tokenizer;
pub use weights::WeightStore;
