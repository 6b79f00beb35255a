//! Conversion to the Hugging Face layout of tiny llama and qwen2 files built in memory.

use super::*;

/// A 1-layer llama: hidden 8, 2 heads of 4, 1 KV head, vocab 6, ffn 4. Q and K are written
/// permuted as llama.cpp does, from known `[out, in]` matrices.
fn tiny_llama(
    vocab_in_tokenizer: usize,
    tokenizer_model: &str,
) -> (GgufBuilder, Vec<f32>, Vec<f32>) {
    let q: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let k: Vec<f32> = (0..32).map(|i| 100.0 + i as f32).collect();
    let tokens = ["<|endoftext|>", "<|im_start|>", "a", "b", "ab", "c", "d"];
    let s = |x: &str| GgufValue::String(x.into());
    let u = GgufValue::U32;
    let b = GgufBuilder::new()
        .metadata("general.architecture", s("llama"))
        .metadata("llama.block_count", u(1))
        .metadata("llama.context_length", u(128))
        .metadata("llama.embedding_length", u(8))
        .metadata("llama.feed_forward_length", u(4))
        .metadata("llama.attention.head_count", u(2))
        .metadata("llama.attention.head_count_kv", u(1))
        .metadata("llama.rope.freq_base", GgufValue::F32(5e5))
        .metadata("llama.rope.dimension_count", u(4))
        .metadata(
            "llama.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-6),
        )
        .metadata("tokenizer.ggml.model", s(tokenizer_model))
        .metadata("tokenizer.ggml.pre", s("smollm"))
        .metadata(
            "tokenizer.ggml.tokens",
            GgufValue::Array(
                GgufValueType::String,
                tokens[..vocab_in_tokenizer].iter().map(|t| s(t)).collect(),
            ),
        )
        .metadata(
            "tokenizer.ggml.token_type",
            GgufValue::Array(
                GgufValueType::I32,
                (0..vocab_in_tokenizer)
                    .map(|i| GgufValue::I32(if i < 2 { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .metadata(
            "tokenizer.ggml.merges",
            GgufValue::Array(GgufValueType::String, vec![s("a b")]),
        )
        .metadata("tokenizer.ggml.bos_token_id", u(1))
        .metadata("tokenizer.ggml.eos_token_id", u(0))
        .metadata("tokenizer.chat_template", s("{{ messages[0]['content'] }}"))
        .tensor_f32("token_embd.weight", &[8, 6], &[0.5; 48])
        .tensor_f32("blk.0.attn_norm.weight", &[8], &[1.0; 8])
        .tensor_f32(
            "blk.0.attn_q.weight",
            &[8, 8],
            &permute_rows(&q, 2, 8).unwrap(),
        )
        .tensor_f32(
            "blk.0.attn_k.weight",
            &[8, 4],
            &permute_rows(&k, 1, 8).unwrap(),
        )
        .tensor_f32("blk.0.attn_v.weight", &[8, 4], &[0.0; 32])
        .tensor_f32("blk.0.attn_output.weight", &[8, 8], &[0.0; 64])
        .tensor_f32("blk.0.ffn_norm.weight", &[8], &[1.0; 8])
        .tensor_f32("blk.0.ffn_gate.weight", &[8, 4], &[0.0; 32])
        .tensor_f32("blk.0.ffn_up.weight", &[8, 4], &[0.0; 32])
        .tensor_f32("blk.0.ffn_down.weight", &[4, 8], &[0.0; 32])
        .tensor_f32("output_norm.weight", &[8], &[1.0; 8])
        .tensor_f32("rope_freqs.weight", &[2], &[1.0; 2]);
    (b, q, k)
}

#[test]
fn tiny_llama_converts_to_the_hf_layout() -> TestResult {
    let (b, q, k) = tiny_llama(6, "gpt2");
    let file = GgufFile::from_bytes(b.build(), origin())?;
    let m = GgufModel::from_file(&file)?;
    let c = &m.config;
    assert_eq!(c["architectures"], serde_json::json!(["LlamaForCausalLM"]));
    assert_eq!(c["model_type"], "llama");
    assert_eq!(
        (c["vocab_size"].as_u64(), c["hidden_size"].as_u64()),
        (Some(6), Some(8))
    );
    assert_eq!(c["num_attention_heads"], 2);
    assert_eq!(c["num_key_value_heads"], 1);
    assert_eq!(c["head_dim"], 4);
    assert_eq!(c["rope_theta"], 500000.0);
    assert_eq!(c["rms_norm_eps"].as_f64(), Some(f64::from(1e-6f32)));
    assert_eq!(c["max_position_embeddings"], 128);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(
        (c["bos_token_id"].as_u64(), c["eos_token_id"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(c.get("pad_token_id").is_none());

    let names: Vec<&str> = m.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.len(),
        11,
        "rope_freqs is derived, not a weight: {names:?}"
    );
    let get = |name: &str| &m.tensors.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(get("model.layers.0.mlp.down_proj.weight").size(), [8, 4]);
    assert_eq!(get("model.layers.0.self_attn.k_proj.weight").size(), [4, 8]);
    let q_loaded =
        Vec::<f32>::try_from(get("model.layers.0.self_attn.q_proj.weight").flatten(0, -1))?;
    assert_eq!(
        q_loaded, q,
        "Q rows are back in the order they had before llama.cpp's permute"
    );
    let k_loaded =
        Vec::<f32>::try_from(get("model.layers.0.self_attn.k_proj.weight").flatten(0, -1))?;
    assert_eq!(k_loaded, k);

    let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json)?;
    let enc = tok.encode("<|im_start|>abb", true)?;
    assert_eq!(enc.get_ids(), [1, 4, 3], "added token, merge a+b, then b");
    assert_eq!(
        m.chat_template.as_deref(),
        Some("{{ messages[0]['content'] }}")
    );
    Ok(())
}

#[test]
fn conversion_errors_name_the_problem() {
    let (b, _, _) = tiny_llama(5, "gpt2");
    let file = GgufFile::from_bytes(b.build(), origin()).unwrap();
    let err = GgufModel::from_file(&file).unwrap_err();
    assert!(
        matches!(
            err,
            GgufError::VocabMismatch {
                tokenizer: 5,
                embedding: 6
            }
        ),
        "{err}"
    );

    let (b, _, _) = tiny_llama(6, "llama");
    let file = GgufFile::from_bytes(b.build(), origin()).unwrap();
    let err = GgufModel::from_file(&file).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnsupportedTokenizer { model } if model == "llama"),
        "{err}"
    );

    let no_key = GgufBuilder::new()
        .metadata("general.architecture", GgufValue::String("llama".into()))
        .tensor_f32("token_embd.weight", &[2, 2], &[0.0; 4]);
    let file = GgufFile::from_bytes(no_key.build(), origin()).unwrap();
    let err = GgufModel::from_file(&file).unwrap_err();
    assert!(
        matches!(&err, GgufError::MissingKey { key } if key == "llama.attention.head_count"),
        "{err}"
    );

    let other =
        GgufBuilder::new().metadata("general.architecture", GgufValue::String("rwkv6".into()));
    let file = GgufFile::from_bytes(other.build(), origin()).unwrap();
    let err = GgufModel::from_file(&file).unwrap_err();
    assert!(err.to_string().contains("rwkv6"), "{err}");
}

#[test]
fn tiny_qwen2_keeps_qk_rows_and_maps_biases() -> TestResult {
    let s = |x: &str| GgufValue::String(x.into());
    let u = GgufValue::U32;
    let q: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let q_bias: Vec<f32> = (0..8).map(|i| -(i as f32)).collect();
    let tokens = ["<|endoftext|>", "<|im_start|>", "a", "b", "ab", "Ġ", "1"];
    let b = GgufBuilder::new()
        .metadata("general.architecture", s("qwen2"))
        .metadata("qwen2.block_count", u(1))
        .metadata("qwen2.context_length", u(64))
        .metadata("qwen2.embedding_length", u(8))
        .metadata("qwen2.feed_forward_length", u(4))
        .metadata("qwen2.attention.head_count", u(2))
        .metadata("qwen2.attention.head_count_kv", u(2))
        .metadata("qwen2.rope.freq_base", GgufValue::F32(1e6))
        .metadata(
            "qwen2.attention.layer_norm_rms_epsilon",
            GgufValue::F32(1e-6),
        )
        .metadata("tokenizer.ggml.model", s("gpt2"))
        .metadata("tokenizer.ggml.pre", s("qwen2"))
        .metadata(
            "tokenizer.ggml.tokens",
            GgufValue::Array(GgufValueType::String, tokens.iter().map(|t| s(t)).collect()),
        )
        .metadata(
            "tokenizer.ggml.token_type",
            GgufValue::Array(
                GgufValueType::I32,
                (0..7)
                    .map(|i| GgufValue::I32(if i < 2 { 3 } else { 1 }))
                    .collect(),
            ),
        )
        .metadata(
            "tokenizer.ggml.merges",
            GgufValue::Array(GgufValueType::String, vec![s("a b")]),
        )
        .metadata("tokenizer.ggml.eos_token_id", u(0))
        .tensor_f32("token_embd.weight", &[8, 7], &[0.25; 56])
        .tensor_f32("blk.0.attn_q.weight", &[8, 8], &q)
        .tensor_f32("blk.0.attn_q.bias", &[8], &q_bias)
        .tensor_f32("output.weight", &[8, 7], &[0.5; 56]);
    let m = GgufModel::from_file(&GgufFile::from_bytes(b.build(), origin())?)?;
    assert_eq!(
        m.config["architectures"],
        serde_json::json!(["Qwen2ForCausalLM"])
    );
    assert_eq!(m.config["model_type"], "qwen2");
    assert_eq!(m.config["tie_word_embeddings"], false);
    assert!(m.config.get("head_dim").is_none());
    assert!(m.config.get("bos_token_id").is_none());
    let names: Vec<&str> = m.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.embed_tokens.weight",
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.q_proj.bias",
            "lm_head.weight"
        ]
    );
    // Qwen2 GGUFs are not permuted: rows stay as stored.
    assert_eq!(Vec::<f32>::try_from(m.tensors[1].1.flatten(0, -1))?, q);
    assert_eq!(Vec::<f32>::try_from(&m.tensors[2].1)?, q_bias);
    // Qwen2's split keeps digits apart and lets " " lead a word.
    let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json)?;
    assert_eq!(
        tok.encode("<|im_start|>ab1 b", true)?.get_ids(),
        [1, 4, 6, 5, 3]
    );
    Ok(())
}
