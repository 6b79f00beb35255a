//! GPT-2 sequence classifiers (`GPT2ForSequenceClassification`): the HH-RLHF reward models.
//!
//! Shaped like the decoder: [`Gpt2Config`] (from `config.json`), layers (layer norm, GPT-2's
//! `Conv1D`, the block) whose weights are variables of one [`nn::VarStore`] under Hugging Face's
//! names, filled by the crate's [`WeightStore`] (single or sharded safetensors; missing and
//! misshapen tensors named with their file), errors of the crate's [`Error`], hub ids resolved by
//! [`crate::hub`].
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::read_json;
use crate::tokenizer::byte_level_bpe;
use crate::weights::WeightStore;
use crate::{hub, Error, Result};

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
    /// Reads and checks `config.json`; a bad field is an error naming the file and the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let cfg: Gpt2Config =
            serde_json::from_value(read_json(path)?).map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            })?;
        let bad = |field: &str, problem: String| Error::Config {
            origin: path.display().to_string(),
            field: field.into(),
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
                return Err(bad(name, format!("must be >= 1, got {v}")));
            }
        }
        if cfg.n_embd % cfg.n_head != 0 {
            return Err(bad(
                "n_embd",
                format!(
                    "{} is not a multiple of n_head = {}",
                    cfg.n_embd, cfg.n_head
                ),
            ));
        }
        if cfg.n_inner.is_some_and(|n| n <= 0) {
            return Err(bad("n_inner", "must be >= 1".into()));
        }
        Activation::parse(&cfg.activation_function).ok_or_else(|| {
            bad(
                "activation_function",
                format!(
                    "`{}` is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu)",
                    cfg.activation_function
                ),
            )
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

/// The first file a GPT-2 classifier folder lacks: `config.json`, safetensors weights, and
/// `tokenizer.json` or else `vocab.json` with `merges.txt`.
fn missing_model_file(dir: &Path) -> Option<&'static str> {
    let absent = |f: &str| !dir.join(f).is_file();
    if absent("config.json") {
        return Some("config.json");
    }
    if absent("model.safetensors") && absent("model.safetensors.index.json") {
        return Some("model.safetensors");
    }
    if absent("tokenizer.json") && (absent("vocab.json") || absent("merges.txt")) {
        return Some("tokenizer.json");
    }
    None
}

/// A model folder's missing file as an error.
fn check_folder(dir: &Path) -> Result<()> {
    match missing_model_file(dir) {
        Some(f) => Err(Error::Invalid(format!(
            "{} is missing (a GPT-2 reward-model folder needs config.json, model.safetensors \
             and tokenizer.json, or vocab.json with merges.txt)",
            dir.join(f).display()
        ))),
        None => Ok(()),
    }
}

/// The folder of a model given as a local folder or a hub id (cache, else download).
fn resolve_dir(spec: &str) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if path.exists() || !hub::is_hub_id(spec) {
        return Err(Error::ModelNotFound { spec: spec.into() });
    }
    hub::resolve_model_dir(spec)
}

/// The tokenizer of a model folder (`tokenizer.json`, or GPT-2's byte-level BPE from
/// `vocab.json` and `merges.txt`) and the file it came from.
fn load_tokenizer(dir: &Path) -> Result<(tokenizers::Tokenizer, PathBuf)> {
    let path = dir.join("tokenizer.json");
    if path.is_file() {
        let tok = crate::Tokenizer::from_file(&path)?;
        return Ok((tok.inner().clone(), path));
    }
    let vocab = dir.join("vocab.json");
    Ok((byte_level_bpe(&vocab, &dir.join("merges.txt"))?, vocab))
}

/// Layer norm with weight and bias.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(p: nn::Path, n: i64, eps: f64) -> Self {
        LayerNorm {
            weight: p.var("weight", &[n], Init::Const(1.0)),
            bias: p.var("bias", &[n], Init::Const(0.0)),
            eps,
        }
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
    fn new(p: nn::Path, n_in: i64, n_out: i64) -> Self {
        Conv1D {
            weight: p.var("weight", &[n_in, n_out], Init::Const(0.0)),
            bias: p.var("bias", &[n_out], Init::Const(0.0)),
        }
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
    fn new(p: nn::Path, cfg: &Gpt2Config, i: i64) -> Self {
        let (h, inner, eps) = (cfg.n_embd, cfg.inner_size(), cfg.layer_norm_epsilon);
        let head_dim = (cfg.n_embd / cfg.n_head) as f64;
        let mut scale = if cfg.scale_attn_weights {
            1.0 / head_dim.sqrt()
        } else {
            1.0
        };
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (i + 1) as f64;
        }
        Block {
            ln_1: LayerNorm::new(&p / "ln_1", h, eps),
            c_attn: Conv1D::new(&p / "attn" / "c_attn", h, 3 * h),
            attn_proj: Conv1D::new(&p / "attn" / "c_proj", h, h),
            ln_2: LayerNorm::new(&p / "ln_2", h, eps),
            c_fc: Conv1D::new(&p / "mlp" / "c_fc", h, inner),
            mlp_proj: Conv1D::new(&p / "mlp" / "c_proj", inner, h),
            scale,
        }
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
    tokenizer: tokenizers::Tokenizer,
    /// The tokenizer file (for errors).
    origin: String,
    /// The weights (frozen), under Hugging Face's names.
    vs: nn::VarStore,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// `[num_labels, hidden]`.
    score: Tensor,
    act: Activation,
    pad_id: i64,
}

impl std::fmt::Debug for GPT2ForSequenceClassification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GPT2ForSequenceClassification")
            .field("config", &self.config)
            .field("pad_id", &self.pad_id)
            .field("device", &self.device())
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl GPT2ForSequenceClassification {
    /// Loads from a local folder (`config.json`, `tokenizer.json`, safetensors weights) or a hub
    /// id (`org/name[@revision]`, from the Hugging Face cache or downloaded: [`crate::hub`]), in
    /// `kind` (f32, bf16, f16) on `device`.
    pub fn load(path_or_id: &str, device: Device, kind: Kind) -> Result<Self> {
        Self::from_dir(&resolve_dir(path_or_id)?, device, kind)
    }

    /// Loads from a local folder holding `config.json`, `model.safetensors` (or shards with
    /// their index) and `tokenizer.json` (or GPT-2's `vocab.json` and `merges.txt`).
    pub fn from_dir(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        check_folder(dir)?;
        let config_path = dir.join("config.json");
        let config = Gpt2Config::from_file(&config_path)?;
        let (mut tokenizer, tok_path) = load_tokenizer(dir)?;
        let origin = tok_path.display().to_string();
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: usize::try_from(config.n_positions).unwrap_or(usize::MAX),
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|source| Error::Tokenizer {
                origin: origin.clone(),
                source,
            })?;
        let n_tok = tokenizer.get_vocab_size(true);
        if i64::try_from(n_tok).unwrap_or(i64::MAX) > config.vocab_size {
            return Err(Error::VocabMismatch {
                model: dir.display().to_string(),
                tokenizer: n_tok,
                embedding: config.vocab_size as usize,
            });
        }
        let pad_id = config
            .pad_token_id
            .or(config.eos_token_id)
            .or_else(|| tokenizer.token_to_id("<|endoftext|>").map(i64::from))
            .ok_or_else(|| Error::Config {
                origin: config_path.display().to_string(),
                field: "pad_token_id".into(),
                problem: "absent, and so are eos_token_id and a <|endoftext|> token: the score \
                          position is undefined"
                    .into(),
            })?;

        let mut store = WeightStore::open(dir)?;
        let h = config.n_embd;
        let num_labels = match store.shape("score.weight").as_deref() {
            Some([rows, _]) => *rows,
            Some(other) => {
                return Err(Error::TensorShape {
                    tensor: "score.weight".into(),
                    origin: store.origin().to_string(),
                    expected: vec![-1, h],
                    found: other.to_vec(),
                })
            }
            None => {
                return Err(Error::MissingTensor {
                    tensor: "score.weight".into(),
                    origin: store.origin().to_string(),
                })
            }
        };
        if let Some(labels) = &config.id2label {
            if i64::try_from(labels.len()).ok() != Some(num_labels) {
                return Err(Error::Config {
                    origin: config_path.display().to_string(),
                    field: "id2label".into(),
                    problem: format!(
                        "{} labels, but score.weight has {num_labels} rows",
                        labels.len()
                    ),
                });
            }
        }

        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let tr = &root / "transformer";
        let wte = (&tr / "wte").var("weight", &[config.vocab_size, h], Init::Const(0.0));
        let wpe = (&tr / "wpe").var("weight", &[config.n_positions, h], Init::Const(0.0));
        let blocks = (0..config.n_layer)
            .map(|i| Block::new(&tr / "h" / i, &config, i))
            .collect();
        let ln_f = LayerNorm::new(&tr / "ln_f", h, config.layer_norm_epsilon);
        let score = (&root / "score").var("weight", &[num_labels, h], Init::Const(0.0));
        drop(root);
        store.load_into(&vs)?;
        // Attention-mask buffers of old checkpoints are expected leftovers.
        let unused: Vec<String> = store
            .unused()
            .into_iter()
            .filter(|k| !(k.ends_with(".attn.bias") || k.ends_with(".attn.masked_bias")))
            .collect();
        if !unused.is_empty() {
            tracing::warn!(
                origin = store.origin(),
                ?unused,
                "unused tensors in GPT-2 weights"
            );
        }
        vs.freeze();
        if kind != Kind::Float {
            vs.set_kind(kind);
        }
        let act = Activation::parse(&config.activation_function).unwrap_or(Activation::GeluTanh);
        Ok(GPT2ForSequenceClassification {
            config,
            tokenizer,
            origin,
            vs,
            wte,
            wpe,
            blocks,
            ln_f,
            score,
            act,
            pad_id,
        })
    }

    /// The model's config.
    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// The weights (frozen), under Hugging Face's names.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
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
        self.wte.device()
    }

    /// The weights' floating-point kind.
    pub fn kind(&self) -> Kind {
        self.wte.kind()
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
            .map_err(|source| Error::Tokenizer {
                origin: format!("{} (pair {index})", self.origin),
                source,
            })?;
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
            let bad = |problem: String| Error::Input { index, problem };
            if ids.is_empty() {
                return Err(bad("no tokens (query and response are both empty)".into()));
            }
            if ids.len() as i64 > self.config.n_positions {
                return Err(bad(format!(
                    "{} tokens, more than n_positions = {}",
                    ids.len(),
                    self.config.n_positions
                )));
            }
            if let Some(&id) = ids.iter().find(|&&i| i < 0 || i >= self.config.vocab_size) {
                return Err(bad(format!(
                    "token id {id}, outside the vocabulary of {}",
                    self.config.vocab_size
                )));
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
            .to_device(self.device());
        let mask = if lengths.iter().all(|&l| l == t) {
            None
        } else {
            let pos = Tensor::arange(t, (Kind::Int64, self.device()));
            let lens = Tensor::from_slice(&lengths).to_device(self.device());
            let key_ok = pos.unsqueeze(0).f_lt_tensor(&lens.unsqueeze(1))?; // [B, T]
            let causal = Tensor::ones([t, t], (Kind::Bool, self.device())).tril(0);
            Some(
                causal
                    .unsqueeze(0)
                    .unsqueeze(0)
                    .logical_and(&key_ok.view([b, 1, 1, t])),
            )
        };
        let pos = Tensor::arange(t, (Kind::Int64, self.device()));
        let mut x = Tensor::f_embedding(&self.wte, &ids, -1, false, false)?
            + Tensor::f_embedding(&self.wpe, &pos, -1, false, false)?.unsqueeze(0);
        for block in &self.blocks {
            x = block.forward(&x, mask.as_ref(), self.config.n_head, self.act);
        }
        let idx = Tensor::from_slice(&last).to_device(self.device());
        let rows = Tensor::arange(b, (Kind::Int64, self.device()));
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
            // Errors name the pair's position in `pairs`, not in its length-sorted batch.
            let s = self.score_ids(&batch).map_err(|e| match e {
                Error::Input { index, problem } => Error::Input {
                    index: chunk[index],
                    problem,
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
        let e = resolve_dir("no-such-model-folder").unwrap_err();
        assert!(matches!(e, Error::ModelNotFound { .. }), "{e}");
    }
}
