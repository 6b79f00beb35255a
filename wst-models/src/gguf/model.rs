//! [`GgufModel`]: a GGUF file converted to the Hugging Face layout.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::convert::{arch_spec, hf_config, hf_tensor_name, reverse_permute_rows, QkRole};
use super::error::{GgufError, Result};
use super::reader::{GgufFile, TensorInfo};
use super::tokenizer::tokenizer_json;
use super::value::GgufValue;

/// At most this many threads dequantise tensors.
const MAX_THREADS: usize = 8;

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

        // Which tensors become which HF weights (names checked before any work).
        let mut jobs = Vec::with_capacity(file.tensors.len());
        for info in &file.tensors {
            if let Some((hf_name, role)) = hf_tensor_name(spec, &info.name)? {
                let n_head = match role {
                    QkRole::None => None,
                    QkRole::Query => Some(heads),
                    QkRole::Key => Some(kv_heads),
                };
                jobs.push(Job {
                    info,
                    hf_name,
                    n_head,
                });
            }
        }
        let tensors = convert_tensors(file, jobs)?;
        let chat_template = file.opt_str("tokenizer.chat_template")?.map(str::to_string);
        Ok(Self {
            config,
            tensors,
            tokenizer_json,
            chat_template,
        })
    }
}

/// One tensor to convert.
struct Job<'a> {
    info: &'a TensorInfo,
    hf_name: String,
    /// Heads of the Q/K permutation to undo, if any.
    n_head: Option<usize>,
}

/// Dequantises the tensors on a few threads, each reusing one buffer, and returns them in
/// file order.
fn convert_tensors(file: &GgufFile, jobs: Vec<Job<'_>>) -> Result<Vec<(String, tch::Tensor)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_THREADS)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<tch::Tensor>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = convert_one(file, job, &mut buf);
                    let failed = result.is_err();
                    if let Ok(mut slots) = results.lock() {
                        slots[i] = Some(result);
                    }
                    if failed {
                        // Stop handing out work; earlier tensors still finish.
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let slots = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // Without errors every slot is filled; with errors, report the first in file order.
    let mut out = Vec::with_capacity(jobs.len());
    let mut first_error = None;
    for (job, slot) in jobs.into_iter().zip(slots) {
        match slot {
            Some(Ok(tensor)) => out.push((job.hf_name, tensor)),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Dequantises one tensor into `buf`, undoes the Q/K permutation, and copies it into a tensor
/// of the HF shape.
fn convert_one(file: &GgufFile, job: &Job<'_>, buf: &mut Vec<f32>) -> Result<tch::Tensor> {
    let info = job.info;
    file.tensor_f32_into(info, buf)?;
    let shape = info.shape();
    let tensor = match job.n_head {
        None => tch::Tensor::f_from_slice(buf)?,
        Some(n_head) => {
            let row_len = if shape.len() == 2 {
                shape[1] as usize
            } else {
                1
            };
            let values = reverse_permute_rows(buf, n_head, row_len).ok_or_else(|| {
                GgufError::BadTensorShape {
                    tensor: info.name.clone(),
                    dims: info.dims.clone(),
                    problem: format!("rows are not a multiple of 2 x {n_head} heads"),
                }
            })?;
            tch::Tensor::f_from_slice(&values)?
        }
    };
    Ok(tensor.f_reshape(shape)?)
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
