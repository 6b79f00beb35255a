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
//!
//! A decoder with random weights (here a tiny Llama), sampled greedily; the log-probabilities
//! the sampler reports are those the model scores for the same tokens:
//!
//! ```
//! use tch::{Device, Tensor};
//! use wst_core::SamplingParams;
//! use wst_models::{Arch, DecoderConfig, DecoderLm, Generator};
//!
//! let model = DecoderLm::random(DecoderConfig::tiny(Arch::Llama), Device::Cpu, 0)?;
//! let greedy = SamplingParams {
//!     temperature: 0.0,
//!     max_new_tokens: 6,
//!     ..SamplingParams::default()
//! };
//! let out = Generator::without_tokenizer(&model, &[], 0).generate(&[vec![1, 2, 3]], &greedy)?;
//! assert_eq!(out[0].token_ids.len(), 6);
//!
//! // The same tokens scored by the training path: log p(token | what precedes it).
//! let ids: Vec<i64> = [1, 2, 3].iter().chain(&out[0].token_ids).map(|&t| t as i64).collect();
//! let scored = model.token_logprobs_from(&Tensor::from_slice(&ids).unsqueeze(0), None, 2, 64)?;
//! let scored: Vec<f32> = Vec::try_from(scored.squeeze_dim(0))?;
//! assert_eq!(scored.len(), 6);
//! for (a, b) in scored.iter().zip(&out[0].logprobs) {
//!     assert!((a - b).abs() < 1e-4, "{a} vs {b}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A real model loads the same way from a folder, a `.gguf` file or a hub id, with its
//! tokenizer and chat template:
//!
//! ```no_run
//! use tch::{Device, Kind};
//! use wst_core::SamplingParams;
//! use wst_models::{ChatMessage, LoadedModel};
//!
//! let lm = LoadedModel::load("HuggingFaceTB/SmolLM2-135M-Instruct", Device::Cpu, Kind::Float)?;
//! let prompt = lm.encode_chat(&[ChatMessage::new("user", "What is 2 + 3?")])?;
//! let out = lm.generate(&[prompt], &SamplingParams::default())?;
//! println!("{}", out[0].text);
//! # Ok::<(), wst_models::Error>(())
//! ```

mod chat;
mod config;
mod cpu;
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
#[cfg(feature = "testing")]
pub mod testing;
mod tokenizer;
mod weights;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Activation, Arch, DecoderConfig, RopeScaling};
pub use cuda_graph::{
    cuda_graphs_available, cuda_graphs_enabled_by_env, cuda_peak_memory, cuda_reset_peak_memory,
    CudaGraph,
};
pub use decoder::{lora, target_logprobs, DecoderLm, KvCache};
pub use device::{cuda_device_count, keep_freed_memory, select_device, torch_info};
pub use error::{BoxError, Error, Result};
pub use generate::{distinct_rows, sample, shared_prefix_len, Generation, Generator};
pub use gpt2::{GPT2ForSequenceClassification, Gpt2Config};
pub use loader::{
    alias_path, check_vocab, checkpoint_base, checkpoint_dir, checkpoint_teacher, cpu_bf16_native,
    dtype_kind, resolve_spec, LoadedModel, CALIBRATION_TEXT, CHECKPOINT_ADAPTERS,
    CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS, SMOLLM2_ALIAS, SMOLLM2_FILE,
};
pub use student::LocalStudent;
pub use student_http::{Backoff, HttpStats, HttpStudent, HttpStudentError};
pub use tokenizer::Tokenizer;
pub use weights::WeightStore;
