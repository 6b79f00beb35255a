//! GGUF to Hugging Face: the `config.json` equivalent, tensor names and the llama Q/K row
//! permutation, driven by one table per architecture.

use serde_json::{json, Map, Value};

use super::error::{GgufError, Result};
use super::reader::GgufFile;

/// How one GGUF architecture maps onto its Hugging Face counterpart.
#[derive(Clone, Copy, Debug)]
pub struct ArchSpec {
    /// `general.architecture` value, also the prefix of its metadata keys.
    pub arch: &'static str,
    /// Hugging Face class in `config.json`'s `architectures`.
    pub hf_class: &'static str,
    /// Hugging Face `model_type`.
    pub model_type: &'static str,
    /// Whether llama.cpp's converter permuted the Q and K rows (llama, mistral), so that they
    /// must be un-permuted for transformers' non-interleaved rotary layout.
    pub permuted_qk: bool,
    /// Whether `rope.dimension_count` is the attention head size (llama, mistral).
    pub rope_dim_is_head_dim: bool,
    /// Fixed `config.json` entries of the architecture.
    pub fixed: &'static [(&'static str, FixedValue)],
}

/// A constant `config.json` value in an [`ArchSpec`].
#[derive(Clone, Copy, Debug)]
pub enum FixedValue {
    /// A bool.
    Bool(bool),
    /// A string.
    Str(&'static str),
}

/// The architectures that convert.
pub const ARCHITECTURES: &[ArchSpec] = &[
    ArchSpec {
        arch: "llama",
        hf_class: "LlamaForCausalLM",
        model_type: "llama",
        permuted_qk: true,
        rope_dim_is_head_dim: true,
        fixed: &[
            ("hidden_act", FixedValue::Str("silu")),
            ("attention_bias", FixedValue::Bool(false)),
            ("mlp_bias", FixedValue::Bool(false)),
        ],
    },
    ArchSpec {
        arch: "qwen2",
        hf_class: "Qwen2ForCausalLM",
        model_type: "qwen2",
        permuted_qk: false,
        rope_dim_is_head_dim: false,
        fixed: &[
            ("hidden_act", FixedValue::Str("silu")),
            ("use_sliding_window", FixedValue::Bool(false)),
        ],
    },
];

/// GGUF names of tensors outside the blocks and their Hugging Face names.
const GLOBAL_TENSORS: &[(&str, &str)] = &[
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
];

/// Per-block GGUF names (after `blk.N.`, before `.weight`/`.bias`) and their Hugging Face names
/// (after `model.layers.N.`).
const BLOCK_TENSORS: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// GGUF tensors with no Hugging Face weight: transformers derives them from the config
/// (llama 3.1's `rope_freqs` from `rope_scaling`).
const DERIVED_TENSORS: &[&str] = &["rope_freqs.weight"];

/// Which rotary permutation a tensor needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkRole {
    /// Not Q or K: stored as is.
    None,
    /// The query projection (`n_head` = attention heads).
    Query,
    /// The key projection (`n_head` = key/value heads).
    Key,
}

/// The conversion table of `arch`.
pub fn arch_spec(arch: &str) -> Result<&'static ArchSpec> {
    ARCHITECTURES
        .iter()
        .find(|s| s.arch == arch)
        .ok_or_else(|| GgufError::UnsupportedArchitecture {
            arch: arch.to_string(),
            supported: ARCHITECTURES
                .iter()
                .map(|s| s.arch)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The Hugging Face name of GGUF tensor `name` and its Q/K role; `Ok(None)` for tensors that
/// transformers derives from the config; an error for names the table does not know.
pub fn hf_tensor_name(spec: &ArchSpec, name: &str) -> Result<Option<(String, QkRole)>> {
    if DERIVED_TENSORS.contains(&name) {
        return Ok(None);
    }
    if let Some((_, hf)) = GLOBAL_TENSORS.iter().find(|(g, _)| *g == name) {
        return Ok(Some((hf.to_string(), QkRole::None)));
    }
    let unmapped = || GgufError::UnmappedTensor {
        tensor: name.to_string(),
        arch: spec.arch.to_string(),
    };
    let rest = name.strip_prefix("blk.").ok_or_else(unmapped)?;
    let (layer, rest) = rest.split_once('.').ok_or_else(unmapped)?;
    layer.parse::<u32>().map_err(|_| unmapped())?;
    let (part, kind) = rest.rsplit_once('.').ok_or_else(unmapped)?;
    if kind != "weight" && kind != "bias" {
        return Err(unmapped());
    }
    let (_, hf) = BLOCK_TENSORS
        .iter()
        .find(|(g, _)| *g == part)
        .ok_or_else(unmapped)?;
    let role = match (spec.permuted_qk, part) {
        (true, "attn_q") => QkRole::Query,
        (true, "attn_k") => QkRole::Key,
        _ => QkRole::None,
    };
    Ok(Some((format!("model.layers.{layer}.{hf}.{kind}"), role)))
}

/// The Hugging Face `config.json` equivalent of the file's metadata.
pub fn hf_config(file: &GgufFile) -> Result<Value> {
    let arch = file.require_str("general.architecture")?;
    let spec = arch_spec(arch)?;
    let key = |k: &str| format!("{arch}.{k}");
    let heads = file.require_u64(&key("attention.head_count"))?;
    let embd = file
        .tensor_info("token_embd.weight")
        .ok_or(GgufError::MissingTensor {
            tensor: "token_embd.weight".into(),
        })?;
    let vocab_size = match file.opt_u64(&key("vocab_size"))? {
        Some(v) => v,
        None => match file.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            Some(tokens) => tokens.len() as u64,
            None => embd.dims.get(1).copied().unwrap_or(0),
        },
    };

    let mut c = Map::new();
    c.insert("architectures".into(), json!([spec.hf_class]));
    c.insert("model_type".into(), json!(spec.model_type));
    c.insert("vocab_size".into(), json!(vocab_size));
    c.insert(
        "hidden_size".into(),
        json!(file.require_u64(&key("embedding_length"))?),
    );
    c.insert(
        "intermediate_size".into(),
        json!(file.require_u64(&key("feed_forward_length"))?),
    );
    c.insert(
        "num_hidden_layers".into(),
        json!(file.require_u64(&key("block_count"))?),
    );
    c.insert("num_attention_heads".into(), json!(heads));
    c.insert(
        "num_key_value_heads".into(),
        json!(file
            .opt_u64(&key("attention.head_count_kv"))?
            .unwrap_or(heads)),
    );
    let head_dim = match file.opt_u64(&key("attention.key_length"))? {
        Some(d) => Some(d),
        None if spec.rope_dim_is_head_dim => file.opt_u64(&key("rope.dimension_count"))?,
        None => None,
    };
    if let Some(d) = head_dim {
        c.insert("head_dim".into(), json!(d));
    }
    c.insert(
        "rms_norm_eps".into(),
        json!(file.require_f64(&key("attention.layer_norm_rms_epsilon"))?),
    );
    c.insert(
        "rope_theta".into(),
        json!(file.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0)),
    );
    if let Some(kind) = file.opt_str(&key("rope.scaling.type"))? {
        if kind != "none" {
            let mut s = Map::new();
            s.insert("rope_type".into(), json!(kind));
            if let Some(f) = file.opt_f64(&key("rope.scaling.factor"))? {
                s.insert("factor".into(), json!(f));
            }
            if let Some(n) = file.opt_u64(&key("rope.scaling.original_context_length"))? {
                s.insert("original_max_position_embeddings".into(), json!(n));
            }
            c.insert("rope_scaling".into(), Value::Object(s));
        }
    }
    c.insert(
        "max_position_embeddings".into(),
        json!(file.require_u64(&key("context_length"))?),
    );
    c.insert(
        "tie_word_embeddings".into(),
        json!(file.tensor_info("output.weight").is_none()),
    );
    for (gguf, hf) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
        ("tokenizer.ggml.padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = file.opt_u64(gguf)? {
            c.insert(hf.into(), json!(id));
        }
    }
    for (k, v) in spec.fixed {
        let v = match *v {
            FixedValue::Bool(b) => json!(b),
            FixedValue::Str(s) => json!(s),
        };
        c.insert((*k).into(), v);
    }
    c.insert("torch_dtype".into(), json!("float32"));
    Ok(Value::Object(c))
}

/// Applies llama.cpp's Q/K permutation (`convert_hf_to_gguf.py`'s `permute`) to a row-major
/// `[rows, row_len]` matrix (or a bias, `row_len == 1`): within each of the `n_head` heads, row
/// `t * half + d` moves to `2 * d + t` (`half` = head size / 2, `t` in {0, 1}), which
/// interleaves the two rotary halves.
///
/// `None` when `w.len()` is not `rows * row_len` with `rows` a multiple of `2 * n_head`.
pub fn permute_rows(w: &[f32], n_head: usize, row_len: usize) -> Option<Vec<f32>> {
    move_rows(w, n_head, row_len, |t, d, half| (t * half + d, 2 * d + t))
}

/// Undoes [`permute_rows`] (transformers' `reverse_permute_weights`): within each head, row
/// `2 * d + t` goes back to `t * half + d`.
pub fn reverse_permute_rows(w: &[f32], n_head: usize, row_len: usize) -> Option<Vec<f32>> {
    move_rows(w, n_head, row_len, |t, d, half| (2 * d + t, t * half + d))
}

/// Copies row `from` to row `to` of each head for every `(t, d)`, `map(t, d, half) = (from, to)`.
fn move_rows(
    w: &[f32],
    n_head: usize,
    row_len: usize,
    map: impl Fn(usize, usize, usize) -> (usize, usize),
) -> Option<Vec<f32>> {
    if n_head == 0 || row_len == 0 || w.len() % row_len != 0 {
        return None;
    }
    let rows = w.len() / row_len;
    if rows % (2 * n_head) != 0 {
        return None;
    }
    let head = rows / n_head;
    let half = head / 2;
    let mut out = vec![0f32; w.len()];
    for h in 0..n_head {
        for t in 0..2 {
            for d in 0..half {
                let (from, to) = map(t, d, half);
                let src = (h * head + from) * row_len;
                let dst = (h * head + to) * row_len;
                out[dst..dst + row_len].copy_from_slice(&w[src..src + row_len]);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table() {
        let llama = arch_spec("llama").unwrap();
        let name = |n| hf_tensor_name(llama, n).unwrap();
        assert_eq!(
            name("blk.12.attn_q.weight"),
            Some((
                "model.layers.12.self_attn.q_proj.weight".into(),
                QkRole::Query
            ))
        );
        assert_eq!(
            name("blk.0.attn_k.weight"),
            Some(("model.layers.0.self_attn.k_proj.weight".into(), QkRole::Key))
        );
        assert_eq!(
            name("blk.3.ffn_down.weight"),
            Some(("model.layers.3.mlp.down_proj.weight".into(), QkRole::None))
        );
        assert_eq!(
            name("output.weight"),
            Some(("lm_head.weight".into(), QkRole::None))
        );
        assert_eq!(name("rope_freqs.weight"), None);
        for bad in [
            "blk.x.attn_q.weight",
            "blk.0.attn_qq.weight",
            "blk.0.attn_q.scale",
            "foo",
        ] {
            let err = hf_tensor_name(llama, bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let qwen = arch_spec("qwen2").unwrap();
        assert_eq!(
            hf_tensor_name(qwen, "blk.1.attn_q.bias").unwrap(),
            Some(("model.layers.1.self_attn.q_proj.bias".into(), QkRole::None))
        );
        let err = arch_spec("mamba").unwrap_err();
        assert!(err.to_string().contains("mamba") && err.to_string().contains("llama"));
    }

    #[test]
    fn permutation_matches_the_reference_formula_on_a_small_matrix() {
        // Two heads of size 4 (half = 2), rows of length 1: numpy's
        // w.reshape(2, 2, 2).swapaxes(1, 2).reshape(8) on [0..8] gives [0, 2, 1, 3, 4, 6, 5, 7].
        let w: Vec<f32> = (0..8).map(|x| x as f32).collect();
        let p = permute_rows(&w, 2, 1).unwrap();
        assert_eq!(p, [0., 2., 1., 3., 4., 6., 5., 7.]);
        assert_eq!(reverse_permute_rows(&p, 2, 1).unwrap(), w);
        // One head of size 6 (half = 3), rows of length 2: rows [r0 r1 r2 | r3 r4 r5] interleave
        // to [r0 r3 r1 r4 r2 r5].
        let w: Vec<f32> = (0..12).map(|x| x as f32).collect();
        let p = permute_rows(&w, 1, 2).unwrap();
        assert_eq!(p, [0., 1., 6., 7., 2., 3., 8., 9., 4., 5., 10., 11.]);
        assert_eq!(reverse_permute_rows(&p, 1, 2).unwrap(), w);
        assert_eq!(permute_rows(&w, 4, 2), None);
        assert_eq!(permute_rows(&w, 1, 5), None);
    }
}
