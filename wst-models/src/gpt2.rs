//! GPT-2 sequence classifiers (`GPT2ForSequenceClassification`): the HH-RLHF reward models.
//!
//! The layout is Hugging Face's: `transformer.wte`, `transformer.wpe`, blocks
//! `transformer.h.N.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj}`, the final
//! `transformer.ln_f` and the head `score.weight` (`[num_labels, hidden]`, no bias). GPT-2's
//! projections are `Conv1D`s, whose weights are stored `[in, out]`, so `x · W + b` needs no
//! transpose. A (query, response) pair is encoded as the query's ids followed by the response's,
//! with no separator (the GPT-2 tokenizer adds no special tokens), truncated longest-first to the
//! model's `n_positions`. The score is read at the last token whose id is not the pad id (pad =
//! eos), as transformers does; batches are right-padded and masked, so a batch gives the same
//! scores as its members one by one.
//!
//! A model is loaded from a local folder (`config.json`, `tokenizer.json`, `model.safetensors`)
//! or from a hub id (`org/name`) through [`crate::hub`] (the cache, else a download).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::hub::is_hub_id;

/// Errors of loading and running a GPT-2 classifier. Each names the file, tensor or input.
#[derive(Debug, thiserror::Error)]
pub enum Gpt2Error {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// `config.json` is not JSON of the expected shape.
    #[error("{path}: not a valid GPT-2 config")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// `config.json` parses but describes something this code cannot run.
    #[error("{path}: {problem}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },

    /// `tokenizer.json` could not be loaded.
    #[error("cannot load tokenizer {path}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tokenizers::Error,
    },

    /// Text could not be tokenised.
    #[error("cannot tokenize pair {index}")]
    Encode {
        /// Position of the pair in its batch.
        index: usize,
        /// The cause.
        #[source]
        source: tokenizers::Error,
    },

    /// The weights file could not be read as safetensors.
    #[error("cannot read safetensors file {path}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: tch::TchError,
    },

    /// A tensor the model needs is absent from the weights file.
    #[error("{path}: tensor `{tensor}` is missing")]
    MissingTensor {
        /// The tensor.
        tensor: String,
        /// The weights file.
        path: PathBuf,
    },

    /// A tensor has a shape other than the config implies.
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    BadShape {
        /// The tensor.
        tensor: String,
        /// The weights file.
        path: PathBuf,
        /// The shape the config implies.
        expected: Vec<i64>,
        /// The shape in the file.
        found: Vec<i64>,
    },

    /// The tokenizer knows ids that the embedding has no row for.
    #[error("{path}: tokenizer has {tokenizer} tokens but the model's vocab_size is {model}")]
    VocabMismatch {
        /// The tokenizer file.
        path: PathBuf,
        /// Tokens in the tokenizer, added tokens included.
        tokenizer: usize,
        /// Rows of `transformer.wte.weight`.
        model: i64,
    },

    /// A local model folder lacks a file.
    #[error(
        "{path} is missing (a GPT-2 reward-model folder needs config.json, model.safetensors and \
         tokenizer.json, or vocab.json with merges.txt)"
    )]
    MissingFile {
        /// The absent file.
        path: PathBuf,
    },

    /// A hub id could not be resolved or downloaded.
    #[error("reward model `{spec}`: {source}")]
    Hub {
        /// The hub id.
        spec: String,
        /// The cause (offline, gated, missing, network).
        #[source]
        source: Box<crate::Error>,
    },

    /// Neither a folder nor something shaped like a hub id.
    #[error("reward model `{spec}` is neither a local folder nor a Hugging Face id (org/name)")]
    NotFound {
        /// What was given.
        spec: String,
    },

    /// An input sequence without tokens.
    #[error("input {index} has no tokens (query and response are both empty)")]
    EmptyInput {
        /// Position of the input in its batch.
        index: usize,
    },

    /// An input sequence longer than the position table.
    #[error("input {index} has {len} tokens, more than n_positions = {max}")]
    TooLong {
        /// Position of the input in its batch.
        index: usize,
        /// Its length.
        len: usize,
        /// The model's `n_positions`.
        max: i64,
    },

    /// A token id outside the vocabulary.
    #[error("input {index} holds token id {id}, outside the vocabulary of {vocab}")]
    BadTokenId {
        /// Position of the input in its batch.
        index: usize,
        /// The id.
        id: i64,
        /// The vocabulary size.
        vocab: i64,
    },

    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Gpt2Error`].
pub type Result<T, E = Gpt2Error> = std::result::Result<T, E>;

/// The fields of a GPT-2 `config.json` this model uses (Hugging Face names).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size (rows of `wte`).
    pub vocab_size: i64,
    /// Maximum sequence length (rows of `wpe`).
    pub n_positions: i64,
    /// Hidden size.
    pub n_embd: i64,
    /// Number of blocks.
    pub n_layer: i64,
    /// Attention heads.
    pub n_head: i64,
    /// MLP inner size; `None` means `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<i64>,
    /// `gelu_new` (tanh approximation), `gelu_pytorch_tanh`, `gelu` or `relu`.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Scale attention scores by `1 / sqrt(head_dim)`.
    #[serde(default = "yes")]
    pub scale_attn_weights: bool,
    /// Also scale attention scores by `1 / (layer index + 1)`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// The pad id (GPT-2 reward models set it to the eos id).
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// The eos id, used as pad id when `pad_token_id` is absent.
    #[serde(default)]
    pub eos_token_id: Option<i64>,
    /// Label names; its size, when present, must equal the rows of `score.weight`.
    #[serde(default)]
    pub id2label: Option<HashMap<String, String>>,
}

fn default_activation() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

impl Gpt2Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Gpt2Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Gpt2Config =
            serde_json::from_str(&text).map_err(|source| Gpt2Error::ConfigParse {
                path: path.to_path_buf(),
                source,
            })?;
        let bad = |problem: String| Gpt2Error::BadConfig {
            path: path.to_path_buf(),
            problem,
        };
        for (name, v) in [
            ("vocab_size", cfg.vocab_size),
            ("n_positions", cfg.n_positions),
            ("n_embd", cfg.n_embd),
            ("n_layer", cfg.n_layer),
            ("n_head", cfg.n_head),
        ] {
            if v <= 0 {
                return Err(bad(format!("{name} must be >= 1, got {v}")));
            }
        }
        if cfg.n_embd % cfg.n_head != 0 {
            return Err(bad(format!(
                "n_embd = {} is not a multiple of n_head = {}",
                cfg.n_embd, cfg.n_head
            )));
        }
        if cfg.n_inner.is_some_and(|n| n <= 0) {
            return Err(bad("n_inner must be >= 1".into()));
        }
        Activation::parse(&cfg.activation_function).ok_or_else(|| {
            bad(format!(
                "activation_function `{}` is not supported (gelu_new, gelu_pytorch_tanh, gelu, \
                 relu)",
                cfg.activation_function
            ))
        })?;
        Ok(cfg)
    }

    /// MLP inner size.
    pub fn inner_size(&self) -> i64 {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluTanh,
    Gelu,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "gelu" => Some(Activation::Gelu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Gelu => x.gelu("none"),
            Activation::Relu => x.relu(),
        }
    }
}

/// Says which needed file a folder lacks, if any.
type MissingFn = fn(&Path) -> Option<&'static str>;

/// Resolves a model given as a local folder or a hub id to a folder where `missing` finds
/// nothing absent.
///
/// The cache folder and id shape come from [`crate::hub`]; the search over every snapshot for
/// one holding all of a classifier's files is this module's.
fn resolve_model_dir(spec: &str, missing: MissingFn) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        if let Some(f) = missing(path) {
            return Err(Gpt2Error::MissingFile { path: path.join(f) });
        }
        return Ok(path.to_path_buf());
    }
    if !is_hub_id(spec) || path.exists() {
        return Err(Gpt2Error::NotFound { spec: spec.into() });
    }
    let dir = crate::hub::resolve_model_dir(spec).map_err(|e| Gpt2Error::Hub {
        spec: spec.into(),
        source: Box::new(e),
    })?;
    match missing(&dir) {
        Some(f) => Err(Gpt2Error::MissingFile { path: dir.join(f) }),
        None => Ok(dir),
    }
}

/// The first file a GPT-2 classifier folder lacks: `config.json`, `model.safetensors`, and
/// `tokenizer.json` or else `vocab.json` with `merges.txt`.
fn missing_model_file(dir: &Path) -> Option<&'static str> {
    let absent = |f: &str| !dir.join(f).is_file();
    ["config.json", "model.safetensors"]
        .into_iter()
        .find(|f| absent(f))
        .or_else(|| {
            if !absent("tokenizer.json") || !(absent("vocab.json") || absent("merges.txt")) {
                None
            } else {
                Some("tokenizer.json")
            }
        })
}

/// The tokenizer of a model folder: `tokenizer.json`, or GPT-2's byte-level BPE built from
/// `vocab.json` and `merges.txt` (with `<|endoftext|>` special) when that is absent.
fn load_tokenizer(dir: &Path) -> Result<(Tokenizer, PathBuf)> {
    let path = dir.join("tokenizer.json");
    if path.is_file() {
        let tok = Tokenizer::from_file(&path).map_err(|source| Gpt2Error::Tokenizer {
            path: path.clone(),
            source,
        })?;
        return Ok((tok, path));
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    let err = |source| Gpt2Error::Tokenizer {
        path: vocab.clone(),
        source,
    };
    let bpe = tokenizers::models::bpe::BPE::from_file(
        &vocab.to_string_lossy(),
        &merges.to_string_lossy(),
    )
    .build()
    .map_err(err)?;
    let byte_level = tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true);
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level))
        .with_post_processor(Some(byte_level));
    if tok.token_to_id("<|endoftext|>").is_some() {
        tok.add_special_tokens([tokenizers::AddedToken::from("<|endoftext|>", true)])
            .map_err(err)?;
    }
    Ok((tok, vocab))
}

/// Named tensors of one safetensors file, taken out one by one with their shapes checked.
///
/// Private to this module until the shared safetensors loader lands.
struct TensorSource {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
    device: Device,
    kind: Kind,
}

impl TensorSource {
    fn open(path: &Path, device: Device, kind: Kind) -> Result<Self> {
        if !path.is_file() {
            return Err(Gpt2Error::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let tensors = Tensor::read_safetensors(path)
            .map_err(|source| Gpt2Error::Safetensors {
                path: path.to_path_buf(),
                source,
            })?
            .into_iter()
            .collect();
        Ok(TensorSource {
            path: path.to_path_buf(),
            tensors,
            device,
            kind,
        })
    }

    /// The tensor `name` with shape `shape`, on the target device and kind.
    fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let t = self
            .tensors
            .remove(name)
            .ok_or_else(|| Gpt2Error::MissingTensor {
                tensor: name.into(),
                path: self.path.clone(),
            })?;
        if t.size() != shape {
            return Err(Gpt2Error::BadShape {
                tensor: name.into(),
                path: self.path.clone(),
                expected: shape.to_vec(),
                found: t.size(),
            });
        }
        Ok(t.f_to_device(self.device)?.f_to_kind(self.kind)?)
    }

    /// Rows of a 2-D tensor, to learn `num_labels` from the file.
    fn rows(&self, name: &str) -> Result<i64> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Gpt2Error::MissingTensor {
                tensor: name.into(),
                path: self.path.clone(),
            })?;
        match t.size().as_slice() {
            [rows, _] => Ok(*rows),
            other => Err(Gpt2Error::BadShape {
                tensor: name.into(),
                path: self.path.clone(),
                expected: vec![-1, -1],
                found: other.to_vec(),
            }),
        }
    }

    /// Logs the tensors nobody took (attention-mask buffers of old checkpoints are expected).
    fn report_unused(self) {
        let mut unused: Vec<&String> = self
            .tensors
            .keys()
            .filter(|k| !(k.ends_with(".attn.bias") || k.ends_with(".attn.masked_bias")))
            .collect();
        if !unused.is_empty() {
            unused.sort();
            tracing::warn!(file = %self.path.display(), ?unused, "unused tensors in GPT-2 weights");
        }
    }
}

/// Layer norm with weight and bias.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(src: &mut TensorSource, prefix: &str, n: i64, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: src.take(&format!("{prefix}.weight"), &[n])?,
            bias: src.take(&format!("{prefix}.bias"), &[n])?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let n = self.weight.size()[0];
        x.layer_norm([n], Some(&self.weight), Some(&self.bias), self.eps, true)
    }
}

/// GPT-2's `Conv1D`: `x · W + b` with `W` stored `[in, out]`.
struct Conv1D {
    weight: Tensor,
    bias: Tensor,
}

impl Conv1D {
    fn load(src: &mut TensorSource, prefix: &str, n_in: i64, n_out: i64) -> Result<Self> {
        Ok(Conv1D {
            weight: src.take(&format!("{prefix}.weight"), &[n_in, n_out])?,
            bias: src.take(&format!("{prefix}.bias"), &[n_out])?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.weight) + &self.bias
    }
}

/// One transformer block.
struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    mlp_proj: Conv1D,
    /// Attention score scale.
    scale: f64,
}

impl Block {
    fn load(src: &mut TensorSource, cfg: &Gpt2Config, i: i64) -> Result<Self> {
        let p = format!("transformer.h.{i}");
        let (h, inner) = (cfg.n_embd, cfg.inner_size());
        let head_dim = (cfg.n_embd / cfg.n_head) as f64;
        let mut scale = if cfg.scale_attn_weights {
            1.0 / head_dim.sqrt()
        } else {
            1.0
        };
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (i + 1) as f64;
        }
        Ok(Block {
            ln_1: LayerNorm::load(src, &format!("{p}.ln_1"), h, cfg.layer_norm_epsilon)?,
            c_attn: Conv1D::load(src, &format!("{p}.attn.c_attn"), h, 3 * h)?,
            attn_proj: Conv1D::load(src, &format!("{p}.attn.c_proj"), h, h)?,
            ln_2: LayerNorm::load(src, &format!("{p}.ln_2"), h, cfg.layer_norm_epsilon)?,
            c_fc: Conv1D::load(src, &format!("{p}.mlp.c_fc"), h, inner)?,
            mlp_proj: Conv1D::load(src, &format!("{p}.mlp.c_proj"), inner, h)?,
            scale,
        })
    }

    /// `x`: `[B, T, H]`; `mask`: `[B, 1, T, T]` booleans (true = attend), or `None` for plain
    /// causal attention.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>, n_head: i64, act: Activation) -> Tensor {
        let (b, t, h) = x.size3().unwrap_or_default();
        let qkv = self.c_attn.forward(&self.ln_1.forward(x));
        let heads = |y: &Tensor| y.view([b, t, n_head, h / n_head]).transpose(1, 2);
        let parts = qkv.split(h, 2);
        let (q, k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
        let a = Tensor::scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask,
            0.0,
            mask.is_none(),
            self.scale,
            false,
        );
        let a = a.transpose(1, 2).contiguous().view([b, t, h]);
        let x = x + self.attn_proj.forward(&a);
        let m = self
            .mlp_proj
            .forward(&act.apply(&self.c_fc.forward(&self.ln_2.forward(&x))));
        x + m
    }
}

/// A GPT-2 sequence classifier with its tokenizer: the HH-RLHF reward models.
pub struct GPT2ForSequenceClassification {
    config: Gpt2Config,
    tokenizer: Tokenizer,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// `[num_labels, hidden]`.
    score: Tensor,
    act: Activation,
    pad_id: i64,
    device: Device,
    kind: Kind,
}

impl std::fmt::Debug for GPT2ForSequenceClassification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GPT2ForSequenceClassification")
            .field("config", &self.config)
            .field("pad_id", &self.pad_id)
            .field("device", &self.device)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl GPT2ForSequenceClassification {
    /// Loads from a local folder (`config.json`, `tokenizer.json`, `model.safetensors`) or a hub
    /// id (`org/name[@revision]`, from the Hugging Face cache or downloaded: [`crate::hub`]), in
    /// `kind` (f32, bf16, f16) on `device`.
    pub fn load(path_or_id: &str, device: Device, kind: Kind) -> Result<Self> {
        let dir = resolve_model_dir(path_or_id, missing_model_file)?;
        Self::from_dir(&dir, device, kind)
    }

    /// Loads from a local folder holding `config.json`, `model.safetensors` and
    /// `tokenizer.json` (or GPT-2's `vocab.json` and `merges.txt`).
    pub fn from_dir(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        if let Some(f) = missing_model_file(dir) {
            return Err(Gpt2Error::MissingFile { path: dir.join(f) });
        }
        let config = Gpt2Config::from_file(&dir.join("config.json"))?;
        let (mut tokenizer, tok_path) = load_tokenizer(dir)?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: usize::try_from(config.n_positions).unwrap_or(usize::MAX),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|source| Gpt2Error::Tokenizer {
                path: tok_path.clone(),
                source,
            })?;
        let n_tok = tokenizer.get_vocab_size(true);
        if i64::try_from(n_tok).unwrap_or(i64::MAX) > config.vocab_size {
            return Err(Gpt2Error::VocabMismatch {
                path: tok_path,
                tokenizer: n_tok,
                model: config.vocab_size,
            });
        }
        let pad_id = config
            .pad_token_id
            .or(config.eos_token_id)
            .or_else(|| tokenizer.token_to_id("<|endoftext|>").map(i64::from))
            .ok_or_else(|| Gpt2Error::BadConfig {
                path: dir.join("config.json"),
                problem: "no pad_token_id, no eos_token_id and no <|endoftext|> token: the \
                          score position is undefined"
                    .into(),
            })?;

        let mut src = TensorSource::open(&dir.join("model.safetensors"), device, kind)?;
        let h = config.n_embd;
        let num_labels = src.rows("score.weight")?;
        if let Some(labels) = &config.id2label {
            if i64::try_from(labels.len()).ok() != Some(num_labels) {
                return Err(Gpt2Error::BadShape {
                    tensor: "score.weight".into(),
                    path: src.path.clone(),
                    expected: vec![labels.len() as i64, h],
                    found: vec![num_labels, h],
                });
            }
        }
        let wte = src.take("transformer.wte.weight", &[config.vocab_size, h])?;
        let wpe = src.take("transformer.wpe.weight", &[config.n_positions, h])?;
        let blocks = (0..config.n_layer)
            .map(|i| Block::load(&mut src, &config, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::load(&mut src, "transformer.ln_f", h, config.layer_norm_epsilon)?;
        let score = src.take("score.weight", &[num_labels, h])?;
        src.report_unused();
        let act = Activation::parse(&config.activation_function).unwrap_or(Activation::GeluTanh);
        Ok(GPT2ForSequenceClassification {
            config,
            tokenizer,
            wte,
            wpe,
            blocks,
            ln_f,
            score,
            act,
            pad_id,
            device,
            kind,
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The pad id (the eos id for GPT-2 reward models).
    pub fn pad_token_id(&self) -> i64 {
        self.pad_id
    }

    /// Number of outputs per sequence (1 for reward models).
    pub fn num_labels(&self) -> i64 {
        self.score.size()[0]
    }

    /// Where the weights live.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The weights' floating-point kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The ids of `query` followed by the ids of `response`, with no separator, truncated
    /// longest-first to `n_positions` (what `tokenizer(query, response)` does in transformers).
    pub fn encode_pair(&self, query: &str, response: &str) -> Result<Vec<i64>> {
        self.encode_pair_at(0, query, response)
    }

    fn encode_pair_at(&self, index: usize, query: &str, response: &str) -> Result<Vec<i64>> {
        let enc = self
            .tokenizer
            .encode((query, response), true)
            .map_err(|source| Gpt2Error::Encode { index, source })?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Logits `[len(batch), num_labels]` (f32, on the CPU) of a batch of token-id sequences of
    /// any lengths, right-padded and masked; each row equals the sequence scored alone.
    pub fn logits_ids(&self, batch: &[Vec<i64>]) -> Result<Tensor> {
        if batch.is_empty() {
            return Ok(Tensor::zeros(
                [0, self.num_labels()],
                (Kind::Float, Device::Cpu),
            ));
        }
        for (index, ids) in batch.iter().enumerate() {
            if ids.is_empty() {
                return Err(Gpt2Error::EmptyInput { index });
            }
            if ids.len() as i64 > self.config.n_positions {
                return Err(Gpt2Error::TooLong {
                    index,
                    len: ids.len(),
                    max: self.config.n_positions,
                });
            }
            if let Some(&id) = ids.iter().find(|&&i| i < 0 || i >= self.config.vocab_size) {
                return Err(Gpt2Error::BadTokenId {
                    index,
                    id,
                    vocab: self.config.vocab_size,
                });
            }
        }
        let t = batch.iter().map(Vec::len).max().unwrap_or(1);
        let b = batch.len();
        let mut flat = Vec::with_capacity(b * t);
        let mut lengths = Vec::with_capacity(b);
        let mut last = Vec::with_capacity(b);
        for ids in batch {
            flat.extend_from_slice(ids);
            flat.extend(std::iter::repeat_n(self.pad_id, t - ids.len()));
            lengths.push(ids.len() as i64);
            // transformers reads the score at the rightmost token that is not the pad id.
            last.push(ids.iter().rposition(|&i| i != self.pad_id).unwrap_or(0) as i64);
        }
        let _guard = tch::no_grad_guard();
        let (b, t) = (b as i64, t as i64);
        let ids = Tensor::from_slice(&flat)
            .view([b, t])
            .to_device(self.device);
        let mask = if lengths.iter().all(|&l| l == t) {
            None
        } else {
            let pos = Tensor::arange(t, (Kind::Int64, self.device));
            let lens = Tensor::from_slice(&lengths).to_device(self.device);
            let key_ok = pos.unsqueeze(0).f_lt_tensor(&lens.unsqueeze(1))?; // [B, T]
            let causal = Tensor::ones([t, t], (Kind::Bool, self.device)).tril(0);
            Some(
                causal
                    .unsqueeze(0)
                    .unsqueeze(0)
                    .logical_and(&key_ok.view([b, 1, 1, t])),
            )
        };
        let pos = Tensor::arange(t, (Kind::Int64, self.device));
        let mut x = Tensor::f_embedding(&self.wte, &ids, -1, false, false)?
            + Tensor::f_embedding(&self.wpe, &pos, -1, false, false)?.unsqueeze(0);
        for block in &self.blocks {
            x = block.forward(&x, mask.as_ref(), self.config.n_head, self.act);
        }
        let idx = Tensor::from_slice(&last).to_device(self.device);
        let rows = Tensor::arange(b, (Kind::Int64, self.device));
        let picked = x.f_index(&[Some(rows), Some(idx)])?; // [B, H]
        let logits = self.ln_f.forward(&picked).matmul(&self.score.tr());
        Ok(logits.to_kind(Kind::Float).to_device(Device::Cpu))
    }

    /// The first logit (the reward) of each sequence of token ids, batched.
    pub fn score_ids(&self, batch: &[Vec<i64>]) -> Result<Vec<f32>> {
        let logits = self.logits_ids(batch)?;
        Ok(Vec::<f32>::try_from(logits.select(1, 0).contiguous())?)
    }

    /// Rewards of `(query, response)` pairs, pair-encoded, in batches of `batch_size` (0 = all
    /// at once). Pairs are grouped by length to waste little padding; the order of the result
    /// is the order of `pairs`.
    pub fn score_pairs(&self, pairs: &[(&str, &str)], batch_size: usize) -> Result<Vec<f32>> {
        let encoded = pairs
            .iter()
            .enumerate()
            .map(|(i, (q, r))| self.encode_pair_at(i, q, r))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| encoded[i].len());
        let bs = if batch_size == 0 {
            order.len().max(1)
        } else {
            batch_size
        };
        let mut scores = vec![0f32; encoded.len()];
        for chunk in order.chunks(bs) {
            let batch: Vec<Vec<i64>> = chunk.iter().map(|&i| encoded[i].clone()).collect();
            let s = self.score_ids(&batch).map_err(|e| match e {
                Gpt2Error::EmptyInput { index } => Gpt2Error::EmptyInput {
                    index: chunk[index],
                },
                Gpt2Error::TooLong { index, len, max } => Gpt2Error::TooLong {
                    index: chunk[index],
                    len,
                    max,
                },
                Gpt2Error::BadTokenId { index, id, vocab } => Gpt2Error::BadTokenId {
                    index: chunk[index],
                    id,
                    vocab,
                },
                other => other,
            })?;
            for (&i, v) in chunk.iter().zip(s) {
                scores[i] = v;
            }
        }
        Ok(scores)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_folder_nor_id_is_refused() {
        let e = resolve_model_dir("no-such-model-folder", missing_model_file).unwrap_err();
        assert!(matches!(e, Gpt2Error::NotFound { .. }), "{e}");
    }
}
