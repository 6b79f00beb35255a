//! [`DecoderLm`]: one decoder-only transformer for Llama, Qwen2 and Gemma on tch.
//!
//! Weights live in a [`tch::nn::VarStore`] under their Hugging Face names
//! (`model.layers.0.self_attn.q_proj.weight`, ...), so safetensors load and save without a
//! renaming table and the trainer can optimise them. Attention is grouped-query with rotary
//! embeddings (non-interleaved halves, as transformers); padding is described by a `[B, T]` mask
//! (1 = token, 0 = pad) from which position ids are derived, so left- and right-padded batches
//! give each row the result it would get alone. The KV cache ([`KvCache`]) is preallocated and
//! written in place.
//!
//! Decoding one token per row ([`DecoderLm::decode_step`], in `decoder/static_step.rs`) attends
//! over the cache's whole capacity with an additive mask instead of a growing slice of it, so
//! every step has the same shapes and reads its position from device tensors: the step can be
//! captured once as a CUDA graph and replayed.

use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

use crate::config::{Activation, Arch, DecoderConfig};
use crate::weights::WeightStore;
use crate::{Error, Result};

mod cache;
mod int8;
pub mod lora;
mod static_step;

pub use cache::KvCache;

/// Weights of one decoder layer (shallow handles to the variables of the store).
struct Layer {
    input_norm: Tensor,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    post_norm: Tensor,
    gate: Proj,
    up: Proj,
    down: Proj,
    /// Int8 copies of the projections ([`DecoderLm::quantize_int8`]), used instead when set.
    int8: Option<int8::QLayer>,
}

impl Layer {
    /// Queries, keys and values of the normed input `h`: `[.., heads * head_dim]`,
    /// `[.., kv_heads * head_dim]` twice.
    fn qkv(&self, h: &Tensor) -> (Tensor, Tensor, Tensor) {
        match self.int8.as_ref().map(|q| &q.qkv) {
            Some(q) => {
                let y = q.apply(h);
                let (nq, nk) = (self.q.w.size()[0], self.k.w.size()[0]);
                (
                    y.narrow(-1, 0, nq),
                    y.narrow(-1, nq, nk),
                    y.narrow(-1, nq + nk, nk),
                )
            }
            None => (lin(h, &self.q), lin(h, &self.k), lin(h, &self.v)),
        }
    }

    /// The attention output projection.
    fn o_proj(&self, attn: &Tensor) -> Tensor {
        match self.int8.as_ref().map(|q| &q.o) {
            Some(q) => q.apply(attn),
            None => lin(attn, &self.o),
        }
    }
}

/// One linear projection: weight `[out, in]`, optional bias, optional LoRA adapter.
struct Proj {
    w: Tensor,
    b: Option<Tensor>,
    lora: Option<lora::Adapter>,
}

/// A decoder-only causal language model (Llama, Qwen2 or Gemma).
pub struct DecoderLm {
    config: DecoderConfig,
    vs: nn::VarStore,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    /// RoPE inverse frequencies, f32, `[head_dim / 2]`.
    inv_freq: Tensor,
    /// The adapters added by [`DecoderLm::add_lora`], if any.
    lora: Option<wst_core::LoraConfig>,
}

impl std::fmt::Debug for DecoderLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecoderLm")
            .field("config", &self.config)
            .field("device", &self.device())
            .field("kind", &self.kind())
            .finish()
    }
}

/// At most how many rows take [`linear`]'s transposed product on the CPU, for `kind`.
///
/// Where the crossover lies depends on the CPU's BLAS path, so it was measured per vendor
/// (SmolLM2's projections, 2 threads, one decoding step of all 30 layers and the head):
/// - Intel (a Xeon with AVX512-BF16 and AMX): the transposed product is faster at 16 rows (f32
///   26.3 against 34.1 ms a step; bf16 11.0 against 11.8), about even at 24-48 in f32, and
///   slower from 64 (f32 at 64 rows: the head alone 30.1 against 18.6 ms; bf16 at 96 rows: 38
///   against 22 ms a step), so f32 takes it up to 32 rows and bf16 up to 16.
/// - Elsewhere (measured on AMD CPUs, AVX2 and Zen 4): it is 1.1-1.9x faster at 16-96 rows and
///   slower only from about 1024 rows, so up to 256 rows take it.
/// - Except bf16 on AMD CPUs from family 26 (Zen 5, full-width AVX-512 and AVX512-BF16), where
///   oneDNN's bf16 product is faster without it at every row count measured (at 16 rows: the
///   head 364 against 210 GFLOP/s; `wst bench generate` at batch 16, bf16: 361-373 against
///   281-313 tokens/s, at batch 64 even), so bf16 never takes it there. f32 keeps 256 rows
///   there (at 16 rows still faster: 82 against 63 GFLOP/s for the head).
///
/// `WST_CPU_TRANSPOSED_ROWS=N` sets the limit for every dtype (0 turns the transposed product
/// off), for measuring on a new CPU; a value that is not a whole number >= 0 is reported once
/// and the measured limits apply.
fn transposed_rows(kind: Kind) -> i64 {
    static LIMITS: std::sync::OnceLock<(i64, i64)> = std::sync::OnceLock::new();
    let (f32_rows, other_rows) = *LIMITS.get_or_init(|| {
        if let Ok(v) = std::env::var("WST_CPU_TRANSPOSED_ROWS") {
            match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => return (n, n),
                _ => eprintln!(
                    "wst: ignoring WST_CPU_TRANSPOSED_ROWS={v:?}: expected a whole number >= 0"
                ),
            }
        }
        let cpu = crate::cpu::cpu();
        if cpu.intel {
            (32, 16)
        } else if cpu.family >= 26 {
            (256, 0)
        } else {
            (256, 256)
        }
    });
    if kind == Kind::Float {
        f32_rows
    } else {
        other_rows
    }
}

/// From how many rows f32 projections on the CPU go through oneDNN ([`onednn_linear`]) instead
/// of MKL; 0: never.
///
/// libtorch's f32 matrix products call MKL, which takes its AVX2 kernels on AMD CPUs even where
/// they have AVX-512; oneDNN, which libtorch also carries, picks its kernels by the instructions
/// the CPU has. Measured on a Zen 5 (EPYC family 26, 2 threads, SmolLM2's projections, forward
/// and backward): 420-500 GFLOP/s through oneDNN against 210-230 through MKL from 256 rows,
/// 300 against 200 at 64 rows; at 16 rows it depends on the shape (91 against 71 for 576 -> 1536,
/// 94 against 154 for 1536 -> 576). For the 49152-row output head oneDNN repacks the whole
/// weight per call, which costs more than it saves below about 256 rows (251 against 165 GFLOP/s
/// at 768 rows, 79 against 130 at 64), so weights of more than 2^24 elements need 4x the rows.
///
/// The default: 64 rows on x86 CPUs with AVX-512 that are not Intel ones (on Intel CPUs MKL
/// uses AVX-512 itself), with more than one thread (with one, libtorch's convolution backward
/// leaves oneDNN for a slower path at one image), and where libtorch was built with oneDNN.
/// `WST_CPU_ONEDNN_ROWS=N` sets it (0 turns the route off), for measuring on a new CPU; a value
/// that is not a whole number >= 0 is reported once and the default applies.
fn onednn_rows() -> i64 {
    static ROWS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        if let Ok(v) = std::env::var("WST_CPU_ONEDNN_ROWS") {
            match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => return n,
                _ => eprintln!(
                    "wst: ignoring WST_CPU_ONEDNN_ROWS={v:?}: expected a whole number >= 0"
                ),
            }
        }
        let cpu = crate::cpu::cpu();
        if tch::utils::has_mkldnn() && !cpu.intel && cpu.avx512f {
            64
        } else {
            0
        }
    })
}

/// Whether an f32 CPU projection of `rows` rows by `w` `[out, in]` takes [`onednn_linear`],
/// given the row threshold `min` ([`onednn_rows`]).
fn takes_onednn(x: &Tensor, w: &Tensor, rows: i64, min: i64) -> bool {
    min > 0
        && rows >= min
        && x.device() == Device::Cpu
        && x.kind() == Kind::Float
        && w.kind() == Kind::Float
        && w.dim() == 2
        && (w.numel() <= 1 << 24 || rows >= 4 * min)
        && tch::get_num_threads() > 1
}

/// `x W^T + b` through oneDNN, as a 1x1 convolution over the rows: `x` `[..., in]` is viewed
/// without a copy as one channels-last image `[1, in, 1, rows]` and `w` as `[out, in, 1, 1]`;
/// the output comes back channels-last, which is `[rows, out]` row-major. Differentiable
/// (libtorch's convolution backward, through oneDNN as well).
fn onednn_linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (rows, k) = rows_and_width(x);
    let mut shape = x.size();
    let out = w.size()[0];
    let image = x.contiguous().view([1, 1, rows, k]).permute([0, 3, 1, 2]);
    let y = image.mkldnn_convolution(&w.reshape([out, k, 1, 1]), b, [0, 0], [1, 1], [1, 1], 1);
    *shape.last_mut().expect("non-empty shape") = out;
    y.permute([0, 2, 3, 1]).reshape(shape.as_slice())
}

/// `x W^T + b` for `x` `[..., in]` and `w` `[out, in]`. On the CPU, for a few rows (decoding
/// steps: one per sequence; [`transposed_rows`] says how few), as `(W x^T)^T`: MKL then streams
/// the weight as the left operand in place, where `x.linear(w)` copies the whole weight into
/// packed panels on every call (on an AMD CPU the copy took 40% of a batch-16 decoding step).
/// In f32 from [`onednn_rows`] rows on, through oneDNN where MKL takes slower kernels.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    let (rows, _) = rows_and_width(x);
    if takes_onednn(x, w, rows, onednn_rows()) {
        return onednn_linear(x, w, b);
    }
    linear_up_to(x, w, b, transposed_rows(x.kind()))
}

/// `(rows, in)` of a projection's input `[..., in]`: the product of the leading dimensions and
/// the last one (no rows when the last is 0).
fn rows_and_width(x: &Tensor) -> (i64, i64) {
    let k = x.size().last().copied().unwrap_or(0);
    let rows = if k > 0 { x.numel() as i64 / k } else { 0 };
    (rows, k)
}

/// [`linear`] with the transposed product taken up to `limit` rows.
fn linear_up_to(x: &Tensor, w: &Tensor, b: Option<&Tensor>, limit: i64) -> Tensor {
    let (rows, k) = rows_and_width(x);
    let mut shape = x.size();
    if x.device() != Device::Cpu || rows == 0 || rows > limit {
        return x.linear(w, b);
    }
    let y = w.mm(&x.reshape([rows, k]).tr()).tr().contiguous();
    let y = match b {
        Some(b) => y + b,
        None => y,
    };
    *shape.last_mut().expect("non-empty shape") = w.size()[0];
    y.view(shape.as_slice())
}

/// `x W^T + b`, plus the LoRA adapter's term when the projection has one.
fn lin(x: &Tensor, p: &Proj) -> Tensor {
    let y = linear(x, &p.w, p.b.as_ref());
    match &p.lora {
        Some(adapter) => y + adapter.apply(x),
        None => y,
    }
}

fn rotate_half(x: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let x1 = x.narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(&[x2.neg(), x1], 3)
}

/// Where attention finds the keys and values of the tokens before those of a forward pass.
enum Past<'a> {
    /// Nowhere: the tokens attend among themselves.
    None,
    /// The preallocated cache, which the forward extends in place.
    Cache(&'a mut KvCache),
    /// Each layer's keys and values `[B, kv_heads, L, head_dim]` of the prefix each row
    /// continues (views of fewer prefixes: their gradients sum over the rows).
    Prefix(&'a [(Tensor, Tensor)]),
    /// Record each layer's keys and values (to be a [`Past::Prefix`] of a later forward).
    Record(&'a mut Vec<(Tensor, Tensor)>),
}

impl DecoderLm {
    /// Creates the variables of `config` in a new store on `device` (f32), filled by `init`
    /// (norm weights: ones, or zeros for Gemma's `1 + w`).
    fn build(config: DecoderConfig, device: Device, init: Init) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let c = &config;
        let (h, d, i) = (c.hidden_size, c.head_dim, c.intermediate_size);
        let norm_init = if c.arch == Arch::Gemma {
            Init::Const(0.0)
        } else {
            Init::Const(1.0)
        };
        let root = vs.root();
        let model = &root / "model";
        let embed = (&model / "embed_tokens").var("weight", &[c.vocab_size, h], init);
        let proj = |p: nn::Path, out: i64, inp: i64, bias: bool| {
            let w = p.var("weight", &[out, inp], init);
            let b = bias.then(|| p.var("bias", &[out], Init::Const(0.0)));
            Proj { w, b, lora: None }
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers as usize);
        for l in 0..c.num_hidden_layers {
            let p = &model / "layers" / l;
            let attn = &p / "self_attn";
            let mlp = &p / "mlp";
            layers.push(Layer {
                input_norm: (&p / "input_layernorm").var("weight", &[h], norm_init),
                q: proj(&attn / "q_proj", c.num_attention_heads * d, h, c.qkv_bias),
                k: proj(&attn / "k_proj", c.num_key_value_heads * d, h, c.qkv_bias),
                v: proj(&attn / "v_proj", c.num_key_value_heads * d, h, c.qkv_bias),
                o: proj(&attn / "o_proj", h, c.num_attention_heads * d, c.o_bias),
                post_norm: (&p / "post_attention_layernorm").var("weight", &[h], norm_init),
                gate: proj(&mlp / "gate_proj", i, h, c.mlp_bias),
                up: proj(&mlp / "up_proj", i, h, c.mlp_bias),
                down: proj(&mlp / "down_proj", h, i, c.mlp_bias),
                int8: None,
            });
        }
        let norm = (&model / "norm").var("weight", &[h], norm_init);
        let lm_head = if c.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            (&root / "lm_head").var("weight", &[c.vocab_size, h], init)
        };
        let inv: Vec<f32> = (0..d / 2)
            .map(|j| {
                let f = 1.0 / c.rope_theta.powf((2 * j) as f64 / d as f64);
                c.rope_scaling.map_or(f, |s| s.scale(f)) as f32
            })
            .collect();
        let inv_freq = Tensor::f_from_slice(&inv)?.to_device(device);
        drop(root);
        Ok(DecoderLm {
            config,
            vs,
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            lora: None,
        })
    }

    /// A model with random weights (normal, std 0.02) drawn from `seed`, in f32; for tests
    /// and benchmarks.
    pub fn random(config: DecoderConfig, device: Device, seed: i64) -> Result<Self> {
        tch::manual_seed(seed);
        Self::build(
            config,
            device,
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )
    }

    /// Loads the weights of `config` from `store` onto `device` in `kind` (f32, bf16 or f16).
    /// Missing or misshapen tensors are errors naming them; tensors left over are logged.
    pub fn load(
        config: DecoderConfig,
        store: &mut WeightStore,
        device: Device,
        kind: Kind,
    ) -> Result<Self> {
        let model = Self::build(config, device, Init::Const(0.0))?;
        store.load_into(&model.vs)?;
        let unused: Vec<String> = store
            .unused()
            .into_iter()
            .filter(|n| !n.ends_with("rotary_emb.inv_freq"))
            .filter(|n| !(model.config.tie_word_embeddings && n == "lm_head.weight"))
            .collect();
        if !unused.is_empty() {
            tracing::warn!(
                origin = store.origin(),
                ?unused,
                "tensors not used by the model"
            );
        }
        let mut model = model;
        if kind != Kind::Float {
            model.vs.set_kind(kind);
        }
        Ok(model)
    }

    /// The config.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Where the weights are.
    pub fn device(&self) -> Device {
        self.embed.device()
    }

    /// The floating-point kind of the weights and activations.
    pub fn kind(&self) -> Kind {
        self.embed.kind()
    }

    /// The variables (trainable, under Hugging Face names); `save` writes safetensors.
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The variables, mutably (to freeze, change kind, or load a checkpoint).
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn check_ids(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<(i64, i64)> {
        let size = ids.size();
        let [b, t] = size[..] else {
            return Err(Error::Invalid(format!(
                "token ids must be [batch, seq], got shape {size:?}"
            )));
        };
        if ids.kind() != Kind::Int64 || b < 1 || t < 1 {
            return Err(Error::Invalid(format!(
                "token ids must be a non-empty Int64 [batch, seq] tensor, got {:?} {size:?}",
                ids.kind()
            )));
        }
        if let Some(m) = mask {
            if m.size() != size {
                return Err(Error::Invalid(format!(
                    "mask shape {:?} differs from ids shape {size:?}",
                    m.size()
                )));
            }
        }
        Ok((b, t))
    }

    /// Token ids outside the vocabulary are an error (an embedding lookup would abort).
    fn check_vocab(&self, ids: &Tensor) -> Result<()> {
        let (lo, hi) = (ids.min().int64_value(&[]), ids.max().int64_value(&[]));
        if lo < 0 || hi >= self.config.vocab_size {
            return Err(Error::Invalid(format!(
                "token ids range over [{lo}, {hi}], outside the vocabulary of {}",
                self.config.vocab_size
            )));
        }
        Ok(())
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Tensor {
        let xf = x.to_kind(Kind::Float);
        let var = xf.pow_tensor_scalar(2).mean_dim(-1, true, Kind::Float);
        let normed = &xf * (var + self.config.rms_norm_eps).rsqrt();
        match self.config.arch {
            Arch::Gemma => (normed * (w.to_kind(Kind::Float) + 1.0)).to_kind(x.kind()),
            _ => normed.to_kind(x.kind()) * w,
        }
    }

    /// `(cos, sin)` of shape `[B, 1, T, head_dim]` in the model kind for `positions` `[B, T]`.
    fn rope(&self, positions: &Tensor) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        (
            emb.cos().to_kind(self.kind()),
            emb.sin().to_kind(self.kind()),
        )
    }

    /// Final-normed hidden states `[B, T, H]`. `allowed` is the `[B, 1, T, S]` bool attention
    /// mask (`None`: plain causal, no cache). `stats` collects the projections' input maxima
    /// per channel (int8 calibration).
    // `x = x + y` on purpose: an in-place add would overwrite tensors autograd saved.
    #[allow(clippy::assign_op_pattern)]
    fn hidden(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        allowed: Option<&Tensor>,
        mut past: Past<'_>,
        mut stats: Option<&mut Vec<int8::LayerStats>>,
    ) -> Tensor {
        let c = &self.config;
        let (b, t) = (ids.size()[0], ids.size()[1]);
        let (nh, nkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let mut x = self.embed_ids(ids);
        let (cos, sin) = self.rope(positions);
        let offset = match &past {
            Past::Cache(c) => c.len,
            _ => 0,
        };
        let scale = 1.0 / (d as f64).sqrt();
        for (l, layer) in self.layers.iter().enumerate() {
            let h = self.rms_norm(&x, &layer.input_norm);
            if let Some(s) = stats.as_deref_mut() {
                int8::observe(s, l, 0, &h);
            }
            let (q, k, v) = layer.qkv(&h);
            let q = q.view([b, t, nh, d]).transpose(1, 2);
            let k = k.view([b, t, nkv, d]).transpose(1, 2);
            let v = v.view([b, t, nkv, d]).transpose(1, 2);
            let q = &q * &cos + rotate_half(&q) * &sin;
            let k = &k * &cos + rotate_half(&k) * &sin;
            let (k, v) = match &mut past {
                Past::Cache(cache) => {
                    let total = offset + t;
                    cache.keys[l].narrow(2, offset, t).copy_(&k);
                    cache.values[l].narrow(2, offset, t).copy_(&v);
                    (
                        cache.keys[l].narrow(2, 0, total),
                        cache.values[l].narrow(2, 0, total),
                    )
                }
                Past::Prefix(kv) => {
                    let (pk, pv) = &kv[l];
                    (Tensor::cat(&[pk, &k], 2), Tensor::cat(&[pv, &v], 2))
                }
                Past::Record(kv) => {
                    kv.push((k.shallow_clone(), v.shallow_clone()));
                    (k, v)
                }
                Past::None => (k, v),
            };
            let attn = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                allowed,
                0.0,
                allowed.is_none(),
                scale,
                nh != nkv,
            );
            let attn = attn.transpose(1, 2).reshape([b, t, nh * d]);
            if let Some(s) = stats.as_deref_mut() {
                int8::observe(s, l, 1, &attn);
            }
            x = x + layer.o_proj(&attn);
            let mlp = self.mlp(&x, layer, stats.as_deref_mut().map(|s| (s, l)));
            x = x + mlp;
        }
        self.rms_norm(&x, &self.norm)
    }

    /// Token embeddings `[B, T, H]` (scaled by `sqrt(H)` for Gemma).
    fn embed_ids(&self, ids: &Tensor) -> Tensor {
        let x = Tensor::embedding(&self.embed, ids, -1, false, false);
        if self.config.arch == Arch::Gemma {
            let scale = Tensor::scalar_tensor(
                (self.config.hidden_size as f64).sqrt(),
                (x.kind(), x.device()),
            );
            x * scale
        } else {
            x
        }
    }

    /// The MLP branch of `layer` for the residual stream `x` (post-attention norm included);
    /// `stats`: int8 calibration maxima and the layer's index.
    fn mlp(
        &self,
        x: &Tensor,
        layer: &Layer,
        mut stats: Option<(&mut Vec<int8::LayerStats>, usize)>,
    ) -> Tensor {
        let h = self.rms_norm(x, &layer.post_norm);
        if let Some((s, l)) = stats.as_mut() {
            int8::observe(s, *l, 2, &h);
        }
        let (g, u) = match layer.int8.as_ref().map(|q| &q.gate_up) {
            Some(q) => {
                let y = q.apply(&h);
                let i = layer.gate.w.size()[0];
                (y.narrow(-1, 0, i), y.narrow(-1, i, i))
            }
            None => (lin(&h, &layer.gate), lin(&h, &layer.up)),
        };
        let g = match self.config.hidden_act {
            Activation::Silu => g.silu(),
            Activation::GeluTanh => g.gelu("tanh"),
            Activation::Gelu => g.gelu("none"),
        };
        let gu = g * u;
        if let Some((s, l)) = stats.as_mut() {
            int8::observe(s, *l, 3, &gu);
        }
        match layer.int8.as_ref().map(|q| &q.down) {
            Some(q) => q.apply(&gu),
            None => lin(&gu, &layer.down),
        }
    }

    /// Position ids `[B, T]` of a padded batch: the index among the row's real tokens.
    fn positions(mask: &Tensor) -> Tensor {
        (mask.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
    }

    /// The `[B, 1, T, T]` mask of a padded batch: causal, real keys only, and each position
    /// always sees itself (so pad rows stay finite).
    fn padded_mask(mask: &Tensor) -> Tensor {
        let t = mask.size()[1];
        let dev = mask.device();
        let idx = Tensor::arange(t, (Kind::Int64, dev));
        let causal = idx.unsqueeze(0).le_tensor(&idx.unsqueeze(1));
        let diag = idx.unsqueeze(0).eq_tensor(&idx.unsqueeze(1));
        let keys = mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1);
        keys.logical_and(&causal).logical_or(&diag)
    }

    /// Hidden states `[B, T, H]` after the final norm, for ids `[B, T]` and an optional padding
    /// mask `[B, T]` (1 = token, 0 = pad; left or right padding).
    pub fn hidden_states(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, t) = self.check_ids(ids, mask)?;
        self.check_inference()?;
        self.check_vocab(ids)?;
        let ids = &ids.to_device(self.device());
        Ok(match mask {
            Some(m) => {
                let m = m.to_device(self.device());
                self.hidden(
                    ids,
                    &Self::positions(&m),
                    Some(&Self::padded_mask(&m)),
                    Past::None,
                    None,
                )
            }
            None => {
                let pos = Tensor::arange(t, (Kind::Int64, self.device()))
                    .unsqueeze(0)
                    .expand([b, t], false);
                self.hidden(ids, &pos, None, Past::None, None)
            }
        })
    }

    /// Hidden states `[B, T, H]` after the final norm of `ids` `[B, T]` (optional padding
    /// mask, left or right padding) when each row continues one of a few prefixes: `prefixes`
    /// `[U, L]` (optional mask, left-padded), row `n` continuing prefix `source[n]` (`source`
    /// `[B]` Int64; `None`: one prefix, `U = 1`, for every row). Each prefix runs once and its
    /// keys and values serve all its rows, so `U` prefixes of `L` tokens and `B` rows of `T`
    /// cost `U * L + B * T` token positions instead of `B * (L + T)` (a system message shared
    /// by a batch; the prompt of a query shared by its group of samples). Equal (up to
    /// rounding) to the last `T` positions of [`DecoderLm::hidden_states`] over each row's
    /// `prefix ++ ids`, gradients included; the prefixes' own hidden states are not returned.
    pub fn hidden_states_after(
        &self,
        prefixes: &Tensor,
        prefix_mask: Option<&Tensor>,
        source: Option<&Tensor>,
        ids: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (u, l) = self.check_ids(prefixes, prefix_mask)?;
        let (b, t) = self.check_ids(ids, mask)?;
        self.check_inference()?;
        self.check_vocab(prefixes)?;
        self.check_vocab(ids)?;
        let dev = self.device();
        let source = match source {
            Some(s) => {
                let ok = s.kind() == Kind::Int64 && s.size() == [b];
                let range = ok.then(|| (s.min().int64_value(&[]), s.max().int64_value(&[])));
                match range {
                    Some((lo, hi)) if lo >= 0 && hi < u => Some(s.to_device(dev)),
                    _ => {
                        return Err(Error::Invalid(format!(
                            "the prefix of each of {b} rows must be an Int64 [{b}] tensor of \
                             indices below {u}, got {:?} {:?}",
                            s.kind(),
                            s.size()
                        )))
                    }
                }
            }
            None if u == 1 => None,
            None => {
                return Err(Error::Invalid(format!(
                    "{u} prefixes need the index of each row's prefix"
                )))
            }
        };
        let pm = match prefix_mask {
            Some(m) => m.to_device(dev),
            None => Tensor::ones([u, l], (Kind::Int64, dev)),
        };
        let mut kv = Vec::with_capacity(self.layers.len());
        let _ = self.hidden(
            &prefixes.to_device(dev),
            &Self::positions(&pm),
            prefix_mask
                .is_some()
                .then(|| Self::padded_mask(&pm))
                .as_ref(),
            Past::Record(&mut kv),
            None,
        );
        // Each row's view of its prefix's keys and values and of its padding.
        let row_view = |t: &Tensor| match &source {
            Some(s) => t.index_select(0, s),
            None => {
                let mut shape = t.size();
                shape[0] = b;
                t.expand(shape.as_slice(), false)
            }
        };
        let kv: Vec<(Tensor, Tensor)> =
            kv.iter().map(|(k, v)| (row_view(k), row_view(v))).collect();
        let pm = row_view(&pm);
        // The real tokens of each row's prefix: the first position after it.
        let lens = pm.sum_dim_intlist(1, true, Kind::Int64);
        let m = match mask {
            Some(m) => m.to_device(dev),
            None => Tensor::ones([b, t], (Kind::Int64, dev)),
        };
        let positions = Self::positions(&m) + lens;
        let before = pm
            .to_kind(Kind::Bool)
            .view([b, 1, 1, l])
            .expand([b, 1, t, l], false);
        let allowed = Tensor::cat(&[before, Self::padded_mask(&m)], 3);
        Ok(self.hidden(
            &ids.to_device(dev),
            &positions,
            Some(&allowed),
            Past::Prefix(&kv),
            None,
        ))
    }

    /// Logits `[B, T, V]` at every position (in the model kind).
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        Ok(self
            .hidden_states(ids, mask)?
            .linear(&self.lm_head, None::<&Tensor>))
    }

    /// Logits `[B, V]` at each row's last real token (the last 1 of `mask`, or `T - 1`).
    pub fn last_logits(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self.hidden_states(ids, mask)?;
        let (b, t) = (h.size()[0], h.size()[1]);
        let last = match mask {
            Some(m) => {
                let m = m.to_device(self.device()).to_kind(Kind::Int64);
                (m * Tensor::arange(t, (Kind::Int64, self.device()))).argmax(1, false)
            }
            None => Tensor::full([b], t - 1, (Kind::Int64, self.device())),
        };
        let idx = last.view([b, 1, 1]).expand([b, 1, h.size()[2]], false);
        Ok(h.gather(1, &idx, false)
            .squeeze_dim(1)
            .linear(&self.lm_head, None::<&Tensor>))
    }

    /// Runs `ids` `[B, T]` (mask: 1 = token, 0 = pad) after what `cache` holds, appends their
    /// keys and values to it, and returns the hidden states `[B, T, H]`.
    fn hidden_cached(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = self.check_ids(ids, mask)?;
        self.check_inference()?;
        let ids = &ids.to_device(self.device());
        if b != cache.batch {
            return Err(Error::Invalid(format!(
                "batch of {b} rows for a KV cache of {}",
                cache.batch
            )));
        }
        if cache.len + t > cache.capacity {
            return Err(Error::Invalid(format!(
                "KV cache full: {} + {t} tokens exceed its capacity {}",
                cache.len, cache.capacity
            )));
        }
        let dev = self.device();
        let m = match mask {
            Some(m) => m.to_device(dev).to_kind(Kind::Bool),
            None => Tensor::ones([b, t], (Kind::Bool, dev)),
        };
        let mi = m.to_kind(Kind::Int64);
        let positions = (cache.next_pos.unsqueeze(1) + mi.cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let _ = cache
            .next_pos
            .g_add_(&mi.sum_dim_intlist(1, false, Kind::Int64));
        let off = cache.len;
        cache.key_mask.narrow(1, off, t).copy_(&m);
        let total = off + t;
        let keys = Tensor::arange(total, (Kind::Int64, dev)).unsqueeze(0);
        let queries = Tensor::arange_start(off, total, (Kind::Int64, dev)).unsqueeze(1);
        let causal = keys.le_tensor(&queries);
        let diag = keys.eq_tensor(&queries);
        let allowed = cache
            .key_mask
            .narrow(1, 0, total)
            .unsqueeze(1)
            .unsqueeze(1)
            .logical_and(&causal)
            .logical_or(&diag);
        let h = self.hidden(ids, &positions, Some(&allowed), Past::Cache(cache), None);
        cache.len = total;
        let _ = cache.slot.fill_(total);
        cache.bias_fresh = false;
        Ok(h)
    }

    /// Fills the first `L` slots of every row of the empty `cache` with the keys and values of
    /// `prefix` `[1, L]`, computed once for all rows: a batch whose prompts share their first
    /// `L` tokens then runs only the rest of each prompt ([`DecoderLm::last_logits_cached`],
    /// left-padded), with the result of running every prompt whole (up to rounding).
    pub fn prefill_shared(&self, prefix: &Tensor, cache: &mut KvCache) -> Result<()> {
        let (pb, l) = self.check_ids(prefix, None)?;
        if pb != 1 {
            return Err(Error::Invalid(format!(
                "a shared prefix is one row [1, L], got {:?}",
                prefix.size()
            )));
        }
        if !cache.is_empty() || l > cache.capacity {
            return Err(Error::Invalid(format!(
                "a shared prefix of {l} tokens needs an empty KV cache of at least that capacity \
                 (this one holds {} of {})",
                cache.len, cache.capacity
            )));
        }
        self.check_vocab(prefix)?;
        let mut one = KvCache::new(self, 1, l)?;
        let _ = self.hidden_cached(prefix, None, &mut one)?;
        for (dst, src) in cache.keys.iter_mut().zip(&one.keys) {
            dst.narrow(2, 0, l).copy_(src);
        }
        for (dst, src) in cache.values.iter_mut().zip(&one.values) {
            dst.narrow(2, 0, l).copy_(src);
        }
        let _ = cache.key_mask.narrow(1, 0, l).fill_(1);
        let _ = cache.next_pos.fill_(l);
        cache.len = l;
        let _ = cache.slot.fill_(l);
        cache.bias_fresh = false;
        Ok(())
    }

    /// Like [`DecoderLm::forward`] but after the tokens in `cache`, which it extends: logits
    /// `[B, T, V]` of the new tokens. Equal to a full forward over everything cached.
    pub fn forward_cached(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        Ok(self
            .hidden_cached(ids, mask, cache)?
            .linear(&self.lm_head, None::<&Tensor>))
    }

    /// Logits `[B, V]` of the last new position only (left-padded prompts, decoding steps).
    pub fn last_logits_cached(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.hidden_cached(ids, mask, cache)?;
        let t = h.size()[1];
        Ok(linear(&h.select(1, t - 1), &self.lm_head, None))
    }

    /// `log p(ids[:, t+1] | ids[:, ..=t])` for every `t`: `[B, T - 1]` f32, zero where the
    /// target is a pad (`mask` 0). Computed `chunk` positions at a time from the hidden states,
    /// so the full `[B, T, V]` f32 log-softmax never exists at once; differentiable.
    pub fn token_logprobs(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        chunk: i64,
    ) -> Result<Tensor> {
        self.token_logprobs_from(ids, mask, 0, chunk)
    }

    /// Like [`DecoderLm::token_logprobs`] for the targets after position `start` only:
    /// `log p(ids[:, t+1] | ids[:, ..=t])` for `t` in `start..T-1`, `[B, T - 1 - start]` f32.
    /// The output head runs on those positions only (a prompt of `start + 1` tokens costs its
    /// forward pass but no vocabulary projection); differentiable.
    pub fn token_logprobs_from(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        start: i64,
        chunk: i64,
    ) -> Result<Tensor> {
        let (b, t) = self.check_ids(ids, mask)?;
        if start < 0 || start > (t - 1).max(0) {
            return Err(Error::Invalid(format!(
                "log-probs from position {start} of a sequence of {t} tokens"
            )));
        }
        if t < 2 || start == t - 1 {
            return Ok(Tensor::zeros([b, 0], (Kind::Float, self.device())));
        }
        let chunk = chunk.max(1);
        let h = self.hidden_states(ids, mask)?;
        let ids = ids.to_device(self.device());
        let mut parts = Vec::new();
        let mut at = start;
        while at < t - 1 {
            let n = chunk.min(t - 1 - at);
            parts.push(self.head_logprobs(&h.narrow(1, at, n), &ids.narrow(1, at + 1, n))?);
            at += n;
        }
        let lp = Tensor::cat(&parts, 1);
        Ok(match mask {
            Some(m) => {
                lp * m
                    .to_device(self.device())
                    .narrow(1, start + 1, t - 1 - start)
                    .to_kind(Kind::Float)
            }
            None => lp,
        })
    }

    /// `log softmax(head(hidden))[targets]`: `hidden` `[B, N, H]` (final-normed, from
    /// [`DecoderLm::hidden_states`]), `targets` `[B, N]` Int64; returns `[B, N]` f32,
    /// differentiable. The f32 logits of only these `N` positions exist at once.
    pub fn head_logprobs(&self, hidden: &Tensor, targets: &Tensor) -> Result<Tensor> {
        self.head_logprobs_at(hidden, targets, 1.0)
    }

    /// Like [`DecoderLm::head_logprobs`] under `softmax(logits / temperature)`, the distribution
    /// [`crate::sample`] draws from at that temperature.
    pub fn head_logprobs_at(
        &self,
        hidden: &Tensor,
        targets: &Tensor,
        temperature: f64,
    ) -> Result<Tensor> {
        let hs = hidden.size();
        if hs.len() != 3 || targets.size() != hs[..2] || targets.kind() != Kind::Int64 {
            return Err(Error::Invalid(format!(
                "head_logprobs needs hidden [B, N, H] and Int64 targets [B, N], got {hs:?} and \
                 {:?} {:?}",
                targets.kind(),
                targets.size()
            )));
        }
        let logits = self.head_logits_at(hidden, temperature)?;
        Ok(target_logprobs(&logits, targets))
    }

    /// `head(hidden) / temperature` as f32 `[B, N, V]`, differentiable: the logits of the
    /// distribution [`crate::sample`] draws from at that temperature, at `N` positions of
    /// `hidden` `[B, N, H]` (final-normed).
    pub fn head_logits_at(&self, hidden: &Tensor, temperature: f64) -> Result<Tensor> {
        if temperature <= 0.0 || !temperature.is_finite() {
            return Err(Error::Invalid(format!(
                "log-probs at temperature {temperature} (must be > 0)"
            )));
        }
        let hs = hidden.size();
        if hs.len() != 3 {
            return Err(Error::Invalid(format!(
                "the output head needs hidden [B, N, H], got {hs:?}"
            )));
        }
        let logits = linear(hidden, &self.lm_head, None).to_kind(Kind::Float);
        Ok(if temperature != 1.0 {
            logits / temperature
        } else {
            logits
        })
    }
}

/// `log softmax(logits)[targets]`: `logits` `[N, n, V]` f32, `targets` `[N, n]` Int64; `[N, n]`,
/// differentiable.
pub fn target_logprobs(logits: &Tensor, targets: &Tensor) -> Tensor {
    let picked = logits
        .gather(2, &targets.to_device(logits.device()).unsqueeze(-1), false)
        .squeeze_dim(-1);
    picked - logits.logsumexp([-1], false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The oneDNN route gives `Tensor::linear`'s projection and gradients (input, weight, bias)
    /// for a batched input, contiguous or a strided view, with and without a bias; and
    /// `takes_onednn` keeps f32 CPU projections of enough rows only.
    #[test]
    fn the_onednn_route_equals_linear_with_gradients() {
        if !tch::utils::has_mkldnn() {
            eprintln!("libtorch without oneDNN: nothing to compare");
            return;
        }
        let opts = (Kind::Float, Device::Cpu);
        let w0 = ((Tensor::arange(96 * 40, opts).view([96, 40]) * 0.37).sin() * 0.2).detach();
        let b0 = (Tensor::arange(96, opts) * 0.01).detach();
        let x0 = (Tensor::arange(3 * 7 * 40, opts).view([3, 7, 40]) * 0.11).cos();
        let g = (Tensor::arange(3 * 5 * 96, opts).view([3, 5, 96]) * 0.05).sin();
        for bias in [false, true] {
            let mut grads = Vec::new();
            for route in [false, true] {
                let w = w0.copy().set_requires_grad(true);
                let b = b0.copy().set_requires_grad(true);
                let x = x0.copy().set_requires_grad(true);
                // A strided view: 5 of the 7 positions of each row.
                let xv = x.narrow(1, 1, 5);
                let bb = bias.then_some(&b);
                let y = if route {
                    onednn_linear(&xv, &w, bb)
                } else {
                    xv.linear(&w, bb)
                };
                assert_eq!(y.size(), vec![3, 5, 96]);
                (&y * &g).sum(Kind::Float).backward();
                grads.push((y.detach(), x.grad(), w.grad(), bias.then(|| b.grad())));
            }
            let close = |a: &Tensor, b: &Tensor, what: &str| {
                let err = (a - b).abs().max().double_value(&[]);
                let scale = b.abs().max().double_value(&[]).max(1.0);
                assert!(err <= 1e-5 * scale, "bias {bias}, {what}: max error {err}");
            };
            let (plain, onednn) = (&grads[0], &grads[1]);
            close(&onednn.0, &plain.0, "output");
            close(&onednn.1, &plain.1, "input gradient");
            close(&onednn.2, &plain.2, "weight gradient");
            if let (Some(a), Some(b)) = (&onednn.3, &plain.3) {
                close(a, b, "bias gradient");
            }
        }
        let x = Tensor::zeros([2, 40, 40], opts);
        let head = Tensor::zeros([(1 << 24) / 40 + 1, 40], opts);
        let threads = tch::get_num_threads() > 1;
        assert_eq!(takes_onednn(&x, &w0, 80, 64), threads);
        assert!(!takes_onednn(&x, &w0, 80, 0), "0 turns the route off");
        assert!(!takes_onednn(&x, &w0, 80, 81), "too few rows");
        assert!(
            !takes_onednn(&x.to_kind(Kind::BFloat16), &w0, 80, 64),
            "f32 only"
        );
        assert!(
            !takes_onednn(&x, &head, 80, 64),
            "a large weight needs 4x the rows"
        );
        assert_eq!(takes_onednn(&x, &head, 256, 64), threads);
    }

    /// The transposed product and `Tensor::linear` give the same projection, with and without a
    /// bias, for a batched `[B, T, in]` input, in f32 and bf16.
    #[test]
    fn the_transposed_product_equals_linear_in_f32_and_bf16() {
        let _guard = tch::no_grad_guard();
        for (kind, tol) in [(Kind::Float, 1e-5), (Kind::BFloat16, 2e-2)] {
            let opts = (Kind::Float, Device::Cpu);
            let gen_w = Tensor::arange(96 * 40, opts).view([96, 40]);
            let w = ((gen_w * 0.37).sin() * 0.2).to_kind(kind);
            let b = (Tensor::arange(96, opts) * 0.01).to_kind(kind);
            let x =
                ((Tensor::arange(3 * 5 * 40, opts).view([3, 5, 40]) * 0.11).cos()).to_kind(kind);
            for bias in [None, Some(&b)] {
                let plain = linear_up_to(&x, &w, bias, 0);
                let transposed = linear_up_to(&x, &w, bias, 256);
                assert_eq!(plain.size(), vec![3, 5, 96]);
                assert_eq!(transposed.size(), plain.size());
                assert_eq!(transposed.kind(), kind);
                let err = (transposed.to_kind(Kind::Float) - plain.to_kind(Kind::Float))
                    .abs()
                    .max()
                    .double_value(&[]);
                let scale = plain.to_kind(Kind::Float).abs().max().double_value(&[]);
                assert!(
                    err <= tol * scale.max(1.0),
                    "{kind:?} bias {}: max error {err}",
                    bias.is_some()
                );
            }
        }
    }
}
