//! GGUF model files (llama.cpp's format): a bounds-checked reader, dequantisation of the common
//! ggml types, and conversion to the Hugging Face layout (config, tensor names and shapes,
//! `tokenizer.json`, chat template), so that one model code path serves both formats.
//!
//! Conversion follows transformers' GGUF loader: tensors are dequantised to `f32`, renamed by
//! a table per architecture ([`ARCHITECTURES`]), and llama's Q/K rows (permuted by llama.cpp
//! for interleaved rotary embedding) are put back in transformers' half-split order.

mod convert;
mod dequant;
mod error;
mod reader;
mod tokenizer;
mod value;
mod writer;

use std::path::Path;
use std::time::Instant;

pub use convert::{
    arch_spec, hf_config, hf_tensor_name, permute_rows, reverse_permute_rows, ArchSpec, FixedValue,
    QkRole, ARCHITECTURES,
};
pub use dequant::{dequantize, GgmlType};
pub use error::{GgufError, Result};
pub use reader::{GgufFile, TensorInfo, DEFAULT_ALIGNMENT};
pub use tokenizer::tokenizer_json;
pub use value::{GgufValue, GgufValueType};
pub use writer::GgufBuilder;

/// A GGUF model converted to the Hugging Face layout.
#[derive(Debug)]
pub struct GgufModel {
    /// Equivalent of the HF `config.json` (keys as transformers writes them for the
    /// architecture: `architectures`, `model_type`, `vocab_size`, `hidden_size`,
    /// `intermediate_size`, `num_hidden_layers`, `num_attention_heads`, `num_key_value_heads`,
    /// `head_dim` when given, `rms_norm_eps`, `rope_theta`, `max_position_embeddings`,
    /// `tie_word_embeddings`, `bos_token_id`, `eos_token_id`, `pad_token_id` when given, ...).
    pub config: serde_json::Value,
    /// Tensors under their Hugging Face names (`model.embed_tokens.weight`,
    /// `model.layers.0.self_attn.q_proj.weight`, `lm_head.weight` if present, ...), dequantised
    /// to f32 on the CPU, in the HF shapes (`[out, in]` for linear weights), with llama's Q/K row
    /// permutation undone so they match transformers' non-interleaved rotary layout.
    pub tensors: Vec<(String, tch::Tensor)>,
    /// Equivalent of the HF `tokenizer.json`, built from the GGUF vocab, merges, token types
    /// and special token ids. Loadable with `tokenizers::Tokenizer::from_str`.
    pub tokenizer_json: String,
    /// `tokenizer.chat_template` from the metadata.
    pub chat_template: Option<String>,
}

/// Reads the GGUF file at `path` and converts it to the Hugging Face layout.
pub fn load_gguf(path: &Path) -> Result<GgufModel> {
    let start = Instant::now();
    let file = GgufFile::open(path)?;
    let model = GgufModel::from_file(&file)?;
    tracing::debug!(
        path = %path.display(),
        tensors = model.tensors.len(),
        seconds = start.elapsed().as_secs_f64(),
        "loaded GGUF"
    );
    Ok(model)
}

impl GgufModel {
    /// Converts a parsed GGUF file to the Hugging Face layout.
    pub fn from_file(file: &GgufFile) -> Result<Self> {
        let config = hf_config(file)?;
        let arch = file.require_str("general.architecture")?;
        let spec = arch_spec(arch)?;
        let tokenizer_json = tokenizer_json(file)?;
        check_vocab(file)?;
        let heads = config_usize(&config, "num_attention_heads");
        let kv_heads = config_usize(&config, "num_key_value_heads");

        let mut tensors = Vec::with_capacity(file.tensors.len());
        for info in &file.tensors {
            let Some((hf_name, role)) = hf_tensor_name(spec, &info.name)? else {
                continue;
            };
            let mut values = file.tensor_f32(info)?;
            let shape = info.shape();
            let n_head = match role {
                QkRole::None => None,
                QkRole::Query => Some(heads),
                QkRole::Key => Some(kv_heads),
            };
            if let Some(n_head) = n_head {
                let row_len = if shape.len() == 2 {
                    shape[1] as usize
                } else {
                    1
                };
                values = reverse_permute_rows(&values, n_head, row_len).ok_or_else(|| {
                    GgufError::BadTensorShape {
                        tensor: info.name.clone(),
                        dims: info.dims.clone(),
                        problem: format!("rows are not a multiple of 2 x {n_head} heads"),
                    }
                })?;
            }
            let tensor = tch::Tensor::f_from_slice(&values)?.f_reshape(shape)?;
            tensors.push((hf_name, tensor));
        }
        let chat_template = file.opt_str("tokenizer.chat_template")?.map(str::to_string);
        Ok(Self {
            config,
            tensors,
            tokenizer_json,
            chat_template,
        })
    }
}

/// `config[key]` as `usize` (0 when absent, which makes a Q/K permutation fail with a named
/// tensor rather than panic).
fn config_usize(config: &serde_json::Value, key: &str) -> usize {
    config[key].as_u64().unwrap_or(0) as usize
}

/// The tokenizer's vocabulary must match the embedding rows (and `{arch}.vocab_size`).
fn check_vocab(file: &GgufFile) -> Result<()> {
    let embd = file
        .tensor_info("token_embd.weight")
        .ok_or(GgufError::MissingTensor {
            tensor: "token_embd.weight".into(),
        })?;
    let rows = match embd.dims.as_slice() {
        [_, rows] => *rows,
        _ => {
            return Err(GgufError::BadTensorShape {
                tensor: embd.name.clone(),
                dims: embd.dims.clone(),
                problem: "an embedding matrix has 2 dims".into(),
            })
        }
    };
    let tokens = file
        .require("tokenizer.ggml.tokens")?
        .as_array()
        .map_or(0, <[GgufValue]>::len);
    if tokens as u64 != rows {
        return Err(GgufError::VocabMismatch {
            tokenizer: tokens,
            embedding: rows,
        });
    }
    let arch = file.require_str("general.architecture")?;
    if let Some(v) = file.opt_u64(&format!("{arch}.vocab_size"))? {
        if v != rows {
            return Err(GgufError::BadTensorShape {
                tensor: embd.name.clone(),
                dims: embd.dims.clone(),
                problem: format!("{arch}.vocab_size is {v}"),
            });
        }
    }
    Ok(())
}
