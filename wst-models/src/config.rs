//! [`DecoderConfig`]: the runtime config of a decoder LM, read from a Hugging Face
//! `config.json` (Llama, Qwen2, Gemma) or the equivalent built from GGUF metadata.

use std::path::Path;

use serde_json::Value;

use crate::error::read_json;
use crate::{Error, Result};

/// The decoder families [`crate::DecoderLm`] implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama (SmolLM2, Llama 3): optional attention/MLP biases, tied or untied head.
    Llama,
    /// Qwen2 / Qwen2.5: biases on q/k/v.
    Qwen2,
    /// Gemma (1): embeddings scaled by sqrt(hidden), RMSNorm times (1 + w), GeGLU.
    Gemma,
}

/// The MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU MLP).
    Silu,
    /// GELU with the tanh approximation (GeGLU, Gemma).
    GeluTanh,
    /// Exact GELU.
    Gelu,
}

/// RoPE frequency scaling, as transformers' `ROPE_INIT_FUNCTIONS`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor` (all frequencies divided by it).
    Linear {
        /// Scale factor.
        factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        /// Scale factor of the low frequencies.
        factor: f64,
        /// Wavelengths above `original / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// Context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

impl RopeScaling {
    /// Applies the scaling to one inverse frequency.
    pub fn scale(&self, inv_freq: f64) -> f64 {
        match *self {
            RopeScaling::Linear { factor } => inv_freq / factor,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
                if wavelen < old / high_freq_factor {
                    inv_freq
                } else if wavelen > old / low_freq_factor {
                    inv_freq / factor
                } else {
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
                }
            }
        }
    }
}

/// What a decoder needs to know about its shape, read from `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// Model family.
    pub arch: Arch,
    /// Rows of the embedding matrix.
    pub vocab_size: i64,
    /// Residual width.
    pub hidden_size: i64,
    /// MLP width.
    pub intermediate_size: i64,
    /// Number of decoder layers.
    pub num_hidden_layers: i64,
    /// Query heads.
    pub num_attention_heads: i64,
    /// Key/value heads (GQA); equal to the query heads for plain multi-head attention.
    pub num_key_value_heads: i64,
    /// Size of one head (Gemma: not `hidden / heads`).
    pub head_dim: i64,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE frequency scaling (`rope_scaling` / `rope_parameters`), `None` for the default.
    pub rope_scaling: Option<RopeScaling>,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// The output head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on the q/k/v projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the attention output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    /// Biases in the MLP (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// MLP activation.
    pub hidden_act: Activation,
    /// Longest context the model was trained for.
    pub max_position_embeddings: i64,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (`eos_token_id` may be a list).
    pub eos_token_ids: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
}

impl DecoderConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_json(&read_json(path)?, &path.display().to_string())
    }

    /// Parses a `config.json` value; `origin` names it in errors.
    pub fn from_json(v: &Value, origin: &str) -> Result<Self> {
        let err = |field: &str, problem: String| Error::Config {
            origin: origin.to_string(),
            field: field.to_string(),
            problem,
        };
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| err("model_type", "missing (a string is expected)".into()))?;
        let arch = match model_type {
            "llama" | "mistral" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "gemma" => Arch::Gemma,
            other => {
                return Err(err(
                    "model_type",
                    format!("`{other}` is not supported (llama, qwen2, gemma)"),
                ))
            }
        };
        let int = |field: &str| -> Result<i64> {
            match v.get(field) {
                Some(x) => x
                    .as_i64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(field, format!("expected a positive integer, got {x}"))),
                None => Err(err(field, "missing".into())),
            }
        };
        let opt_int = |field: &str| -> Result<Option<i64>> {
            match v.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => int(field).map(Some),
            }
        };
        let opt_bool = |field: &str| -> Result<Option<bool>> {
            match v.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_bool()
                    .map(Some)
                    .ok_or_else(|| err(field, format!("expected a boolean, got {x}"))),
            }
        };
        let opt_f64 = |value: Option<&Value>, field: &str| -> Result<Option<f64>> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(x) => x
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| err(field, format!("expected a number, got {x}"))),
            }
        };
        let token_ids = |field: &str| -> Result<Vec<u32>> {
            let bad = || err(field, "expected a token id or a list of ids".into());
            match v.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(xs)) => xs
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(bad)
                    })
                    .collect(),
                Some(x) => Ok(vec![x
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(bad)?]),
            }
        };

        let hidden_size = int("hidden_size")?;
        let num_attention_heads = int("num_attention_heads")?;
        let num_key_value_heads = opt_int("num_key_value_heads")?.unwrap_or(num_attention_heads);
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(err(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = match opt_int("head_dim")? {
            Some(d) => d,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(err(
                    "head_dim",
                    "missing, and hidden_size is not a multiple of num_attention_heads".into(),
                ))
            }
        };
        if head_dim % 2 != 0 {
            return Err(err(
                "head_dim",
                format!("{head_dim} is odd (RoPE needs pairs)"),
            ));
        }
        // transformers 5 nests the base in `rope_parameters`; older files have `rope_theta`.
        let rope_theta = match opt_f64(v.get("rope_theta"), "rope_theta")? {
            Some(t) => t,
            None => opt_f64(
                v.get("rope_parameters").and_then(|p| p.get("rope_theta")),
                "rope_parameters.rope_theta",
            )?
            .unwrap_or(10_000.0),
        };
        let mut rope_scaling = None;
        for key in ["rope_scaling", "rope_parameters"] {
            let Some(sc) = v.get(key).filter(|s| s.is_object()) else {
                continue;
            };
            let kind = sc
                .get("rope_type")
                .or_else(|| sc.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default");
            let num = |field: &str| -> Result<f64> {
                opt_f64(sc.get(field), &format!("{key}.{field}"))?
                    .ok_or_else(|| err(&format!("{key}.{field}"), "missing".into()))
            };
            rope_scaling = match kind {
                "default" => rope_scaling,
                "linear" => Some(RopeScaling::Linear {
                    factor: num("factor")?,
                }),
                "llama3" => Some(RopeScaling::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_max_position_embeddings: num("original_max_position_embeddings")?,
                }),
                other => {
                    return Err(err(
                        &format!("{key}.rope_type"),
                        format!(
                            "RoPE scaling `{other}` is not supported (default, linear, llama3)"
                        ),
                    ))
                }
            };
        }
        let rms_norm_eps = opt_f64(v.get("rms_norm_eps"), "rms_norm_eps")?.unwrap_or(1e-6);
        let act_field = if v.get("hidden_activation").is_some_and(|a| !a.is_null()) {
            "hidden_activation"
        } else {
            "hidden_act"
        };
        let hidden_act = match v.get(act_field).and_then(Value::as_str) {
            None => match arch {
                Arch::Gemma => Activation::GeluTanh,
                _ => Activation::Silu,
            },
            Some("silu" | "swish") => Activation::Silu,
            Some("gelu_pytorch_tanh" | "gelu_new" | "gelu_fast") => Activation::GeluTanh,
            // transformers' Gemma uses the tanh approximation even when `gelu` is written.
            Some("gelu") if arch == Arch::Gemma => Activation::GeluTanh,
            Some("gelu") => Activation::Gelu,
            Some(other) => {
                return Err(err(
                    act_field,
                    format!("activation `{other}` is not supported"),
                ))
            }
        };
        let attention_bias = opt_bool("attention_bias")?.unwrap_or(false);
        let config = DecoderConfig {
            arch,
            vocab_size: int("vocab_size")?,
            hidden_size,
            intermediate_size: int("intermediate_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rope_theta,
            rope_scaling,
            rms_norm_eps,
            // transformers' defaults: Gemma ties, Llama and Qwen2 do not.
            tie_word_embeddings: opt_bool("tie_word_embeddings")?.unwrap_or(arch == Arch::Gemma),
            qkv_bias: arch == Arch::Qwen2 || attention_bias,
            o_bias: arch == Arch::Llama && attention_bias,
            mlp_bias: arch == Arch::Llama && opt_bool("mlp_bias")?.unwrap_or(false),
            hidden_act,
            max_position_embeddings: opt_int("max_position_embeddings")?.unwrap_or(4096),
            bos_token_id: token_ids("bos_token_id")?.first().copied(),
            eos_token_ids: token_ids("eos_token_id")?,
            pad_token_id: token_ids("pad_token_id")?.first().copied(),
        };
        Ok(config)
    }

    /// A small config for tests and benchmarks.
    pub fn tiny(arch: Arch) -> Self {
        DecoderConfig {
            arch,
            vocab_size: 128,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            head_dim: if arch == Arch::Gemma { 16 } else { 8 },
            rope_theta: 10_000.0,
            rope_scaling: None,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: arch != Arch::Llama,
            qkv_bias: arch == Arch::Qwen2,
            o_bias: false,
            mlp_bias: false,
            hidden_act: if arch == Arch::Gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            max_position_embeddings: 512,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            pad_token_id: Some(0),
        }
    }

    /// Names of the model shapes [`DecoderConfig::preset`] knows.
    pub const PRESETS: &'static [&'static str] = &["qwen2.5-0.5b", "qwen2.5-1.5b", "smollm2-135m"];

    /// The shape of a named model (from its Hugging Face config.json), for benchmarks on random
    /// weights: `qwen2.5-0.5b` (hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocab
    /// 151936), `qwen2.5-1.5b` (1536, 28, 12 / 2, 8960, 151936), `smollm2-135m` (Llama; 576, 30,
    /// 9 / 3, 1536, 49152). `None` for another name ([`DecoderConfig::PRESETS`] lists them).
    pub fn preset(name: &str) -> Option<Self> {
        let (hidden, layers, heads, kv, inter, vocab) = match name {
            "qwen2.5-0.5b" => (896, 24, 14, 2, 4864, 151_936),
            "qwen2.5-1.5b" => (1536, 28, 12, 2, 8960, 151_936),
            "smollm2-135m" => (576, 30, 9, 3, 1536, 49_152),
            _ => return None,
        };
        let mut c = DecoderConfig::tiny(Arch::Qwen2);
        c.hidden_size = hidden;
        c.num_hidden_layers = layers;
        c.num_attention_heads = heads;
        c.num_key_value_heads = kv;
        c.head_dim = hidden / heads;
        c.intermediate_size = inter;
        c.vocab_size = vocab;
        c.tie_word_embeddings = true;
        c.hidden_act = Activation::Silu;
        c.o_bias = false;
        c.mlp_bias = false;
        if name == "smollm2-135m" {
            c.arch = Arch::Llama;
            c.qkv_bias = false;
            c.rope_theta = 100_000.0;
            c.rms_norm_eps = 1e-5;
            c.max_position_embeddings = 8192;
        } else {
            c.qkv_bias = true;
            c.rope_theta = 1_000_000.0;
            c.rms_norm_eps = 1e-6;
            c.max_position_embeddings = 32_768;
        }
        Some(c)
    }

    /// Number of weights of a decoder of this shape (what memory estimates multiply).
    pub fn num_parameters(&self) -> u64 {
        let (h, i, v) = (
            self.hidden_size as u64,
            self.intermediate_size as u64,
            self.vocab_size as u64,
        );
        let q = (self.num_attention_heads * self.head_dim) as u64;
        let kv = (self.num_key_value_heads * self.head_dim) as u64;
        let qkv_bias = if self.qkv_bias { q + 2 * kv } else { 0 };
        let o_bias = if self.o_bias { h } else { 0 };
        let mlp_bias = if self.mlp_bias { 2 * i + h } else { 0 };
        let layer = h * q + 2 * h * kv + qkv_bias + q * h + o_bias + 3 * h * i + mlp_bias + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers as u64 * layer + h + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presets_have_the_published_shapes_and_sizes() {
        let c = DecoderConfig::preset("qwen2.5-0.5b").unwrap();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.head_dim),
            (896, 24, 64)
        );
        // Qwen2.5-0.5B has 0.49B parameters, Qwen2.5-1.5B 1.54B (tied embeddings).
        assert_eq!(c.num_parameters(), 494_032_768);
        let c = DecoderConfig::preset("qwen2.5-1.5b").unwrap();
        assert_eq!(
            (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
            (12, 2, 128)
        );
        assert!(c.qkv_bias && c.tie_word_embeddings);
        assert_eq!(c.num_parameters(), 1_543_714_304);
        let c = DecoderConfig::preset("smollm2-135m").unwrap();
        assert_eq!(
            (c.arch, c.vocab_size, c.qkv_bias),
            (Arch::Llama, 49_152, false)
        );
        assert_eq!(c.num_parameters(), 134_515_008);
        assert!(DecoderConfig::preset("gpt-5").is_none());
        for name in DecoderConfig::PRESETS {
            assert!(DecoderConfig::preset(name).is_some(), "{name}");
        }
        // The count is what the model allocates.
        for arch in [Arch::Llama, Arch::Qwen2, Arch::Gemma] {
            let c = DecoderConfig::tiny(arch);
            let m = crate::DecoderLm::random(c.clone(), tch::Device::Cpu, 0).unwrap();
            let n: i64 = m
                .var_store()
                .variables()
                .values()
                .map(|t| t.numel() as i64)
                .sum();
            assert_eq!(n as u64, c.num_parameters(), "{arch:?}");
        }
    }

    #[test]
    fn reads_nested_rope_and_lists() {
        let v = json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "rope_parameters": {"rope_theta": 5.0, "rope_type": "default"},
            "eos_token_id": [3, 4], "tie_word_embeddings": false
        });
        let c = DecoderConfig::from_json(&v, "c.json").unwrap();
        assert_eq!(c.rope_theta, 5.0);
        assert_eq!(c.head_dim, 4);
        assert_eq!(c.eos_token_ids, vec![3, 4]);
        assert!(!c.tie_word_embeddings && !c.qkv_bias);
    }

    #[test]
    fn reads_llama3_rope_scaling() {
        let v = json!({
            "model_type": "llama", "vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
            "num_hidden_layers": 1, "num_attention_heads": 2, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
        });
        let c = DecoderConfig::from_json(&v, "c.json").unwrap();
        let s = c.rope_scaling.unwrap();
        // High frequency kept, low frequency divided by 8, the ramp in between.
        assert_eq!(s.scale(1.0), 1.0);
        assert!((s.scale(1e-5) - 1.25e-6).abs() < 1e-12);
        let mid = 2.0 * std::f64::consts::PI / 4096.0; // smooth = (2 - 1) / 3
        assert!((s.scale(mid) - (2.0 / 3.0 * mid / 8.0 + mid / 3.0)).abs() < 1e-12);
        let bad = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0}});
        let e = DecoderConfig::from_json(&bad, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("yarn") && e.contains("rope_scaling"), "{e}");
    }

    #[test]
    fn errors_name_file_and_field() {
        let v = json!({"model_type": "qwen2", "vocab_size": 10, "hidden_size": "x"});
        let e = DecoderConfig::from_json(&v, "dir/config.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dir/config.json") && e.contains("hidden_size"),
            "{e}"
        );
        let v = json!({"model_type": "gpt2"});
        let e = DecoderConfig::from_json(&v, "c.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpt2"), "{e}");
    }
}
