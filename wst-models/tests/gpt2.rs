//! GPT-2 sequence classifier: the random `tiny-gpt2-rm` against the Python reference's pair ids
//! and scores, batching, bf16, and load errors on damaged copies of its folder.

use serde_json::Value;
use tch::{Device, Kind, Tensor};
use wst_models::testing::{tiny_gpt2_rm_dir as tiny_dir, tiny_gpt2_rm_reference};
use wst_models::{Error, GPT2ForSequenceClassification};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `(query, response, input_ids, score)` of every reference pair.
fn reference() -> Vec<(String, String, Vec<i64>, f64)> {
    tiny_gpt2_rm_reference()
        .into_iter()
        .map(|p| (p.query, p.response, p.input_ids, p.score))
        .collect()
}

fn load(kind: Kind) -> GPT2ForSequenceClassification {
    GPT2ForSequenceClassification::from_dir(&tiny_dir(), Device::Cpu, kind).unwrap()
}

#[test]
fn pair_ids_are_exact() {
    let m = load(Kind::Float);
    let refs = reference();
    assert_eq!(refs.len(), 4);
    for (q, r, ids, _) in &refs {
        assert_eq!(&m.encode_pair(q, r).unwrap(), ids, "pair {q:?} + {r:?}");
    }
    assert_eq!(m.pad_token_id(), 0);
    assert_eq!(m.num_labels(), 1);
}

#[test]
fn single_scores_match_the_reference() -> TestResult {
    let m = load(Kind::Float);
    for (q, r, ids, score) in reference() {
        let got = m.score_ids(&[ids])?[0] as f64;
        assert!((got - score).abs() < 1e-4, "{q:?}+{r:?}: {got} vs {score}");
        let via_text = m.score_pairs(&[(&q, &r)], 1)?[0] as f64;
        assert!((via_text - score).abs() < 1e-4, "{via_text} vs {score}");
    }
    Ok(())
}

#[test]
fn batched_scores_equal_single_scores() -> TestResult {
    let m = load(Kind::Float);
    let refs = reference();
    let singles: Vec<f32> = refs
        .iter()
        .map(|(_, _, ids, _)| m.score_ids(std::slice::from_ref(ids)).map(|s| s[0]))
        .collect::<Result<_, _>>()?;
    let all: Vec<Vec<i64>> = refs.iter().map(|r| r.2.clone()).collect();
    let batched = m.score_ids(&all)?;
    // Reversed order too: the padded rows sit in other places.
    let mut rev = all.clone();
    rev.reverse();
    let mut batched_rev = m.score_ids(&rev)?;
    batched_rev.reverse();
    let pairs: Vec<(&str, &str)> = refs.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    for bs in [0, 1, 2, 3] {
        let by_pairs = m.score_pairs(&pairs, bs)?;
        for i in 0..refs.len() {
            assert!(
                (by_pairs[i] - singles[i]).abs() < 1e-5,
                "batch size {bs}, pair {i}: {} vs {}",
                by_pairs[i],
                singles[i]
            );
        }
    }
    for i in 0..refs.len() {
        assert!(
            (batched[i] - singles[i]).abs() < 1e-5,
            "{i}: {batched:?} vs {singles:?}"
        );
        assert!((batched_rev[i] - singles[i]).abs() < 1e-5, "{i}");
        assert!((singles[i] as f64 - refs[i].3).abs() < 1e-4, "{i}");
    }
    Ok(())
}

#[test]
fn logits_have_one_row_per_input() -> TestResult {
    let m = load(Kind::Float);
    let l = m.logits_ids(&[vec![1, 2, 3], vec![4]])?;
    assert_eq!(l.size(), [2, 1]);
    assert_eq!(m.logits_ids(&[])?.size(), [0, 1]);
    assert!(m.score_pairs(&[], 4)?.is_empty());
    Ok(())
}

#[test]
fn bf16_is_close_to_f32() -> TestResult {
    let m = load(Kind::BFloat16);
    assert_eq!(m.kind(), Kind::BFloat16);
    let refs = reference();
    let all: Vec<Vec<i64>> = refs.iter().map(|r| r.2.clone()).collect();
    let s = m.score_ids(&all)?;
    for (got, r) in s.iter().zip(&refs) {
        assert!(
            (*got as f64 - r.3).abs() < 0.05,
            "bf16 {got} vs f32 {}",
            r.3
        );
    }
    Ok(())
}

#[test]
fn cuda_matches_the_reference_when_present() -> TestResult {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return Ok(());
    }
    let m = GPT2ForSequenceClassification::from_dir(&tiny_dir(), Device::Cuda(0), Kind::Float)?;
    let refs = reference();
    let all: Vec<Vec<i64>> = refs.iter().map(|r| r.2.clone()).collect();
    for (got, r) in m.score_ids(&all)?.iter().zip(&refs) {
        assert!((*got as f64 - r.3).abs() < 1e-3, "cuda {got} vs {}", r.3);
    }
    Ok(())
}

#[test]
fn long_pairs_are_truncated_to_n_positions() -> TestResult {
    let m = load(Kind::Float);
    let long_q = "\n\nHuman: ".to_string() + &"tell me more about bread ".repeat(40);
    let ids = m.encode_pair(&long_q, " Sure.")?;
    assert_eq!(ids.len() as i64, m.config().n_positions);
    let s = m.score_pairs(&[(&long_q, " Sure."), ("a", "b")], 2)?;
    assert!(s.iter().all(|v| v.is_finite()));
    Ok(())
}

#[test]
fn bad_inputs_are_errors() {
    let m = load(Kind::Float);
    let e = m.score_ids(&[vec![1], vec![]]).unwrap_err();
    assert!(
        matches!(&e, Error::Input { index: 1, problem } if problem.contains("no tokens")),
        "{e}"
    );
    let e = m.score_ids(&[vec![1, 99_999]]).unwrap_err();
    assert!(e.to_string().contains("99999"), "{e}");
    let e = m.score_ids(&[vec![1; 129]]).unwrap_err();
    assert!(
        matches!(&e, Error::Input { index: 0, problem } if problem.contains("129 tokens")),
        "{e}"
    );
    // The position in the pairs given, not in the length-sorted batch.
    let e = m.score_pairs(&[("a", "b"), ("", "")], 2).unwrap_err();
    assert!(matches!(e, Error::Input { index: 1, .. }), "{e}");
}

/// A copy of the tiny model folder whose weights went through `edit`.
fn damaged_copy(edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> tempfile::TempDir {
    let src = tiny_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let mut tensors = Tensor::read_safetensors(src.join("model.safetensors")).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let dir = damaged_copy(|t| t.retain(|(n, _)| n != "transformer.h.1.attn.c_proj.bias"));
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(matches!(e, Error::MissingTensor { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("transformer.h.1.attn.c_proj.bias") && msg.contains("model.safetensors"),
        "{msg}"
    );

    let dir = damaged_copy(|t| t.retain(|(n, _)| n != "score.weight"));
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(e.to_string().contains("score.weight"), "{e}");
}

#[test]
fn misshapen_tensor_is_named_with_both_shapes() {
    let dir = damaged_copy(|t| {
        for (n, v) in t.iter_mut() {
            if n == "transformer.h.0.mlp.c_fc.weight" {
                // The nn.Linear layout [out, in] instead of Conv1D's [in, out].
                *v = v.tr().contiguous();
            }
        }
    });
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("transformer.h.0.mlp.c_fc.weight")
            && msg.contains("[256, 64]")
            && msg.contains("[64, 256]")
            && msg.contains("model.safetensors"),
        "{msg}"
    );
}

#[test]
fn missing_files_and_bad_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e =
        GPT2ForSequenceClassification::load(dir.path().to_str().unwrap(), Device::Cpu, Kind::Float)
            .unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");

    let e = GPT2ForSequenceClassification::load("./no/such/folder", Device::Cpu, Kind::Float)
        .unwrap_err();
    assert!(e.to_string().contains("./no/such/folder"), "{e}");

    let dir = damaged_copy(|_| {});
    std::fs::write(dir.path().join("config.json"), "{\"n_embd\": 64}").unwrap();
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(e.to_string().contains("config.json"), "{e}");

    let dir = damaged_copy(|_| {});
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn vocab_and_merges_stand_in_for_tokenizer_json() -> TestResult {
    let dir = damaged_copy(|_| {});
    std::fs::remove_file(dir.path().join("tokenizer.json"))?;
    let e =
        GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");

    // vocab.json and merges.txt as GPT-2 repositories ship them, from the tokenizer.json.
    let tok: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("tokenizer.json"))?)?;
    std::fs::write(
        dir.path().join("vocab.json"),
        serde_json::to_string(&tok["model"]["vocab"])?,
    )?;
    let mut merges = String::from("#version: 0.2\n");
    for m in tok["model"]["merges"].as_array().unwrap() {
        let line = match m {
            Value::String(s) => s.clone(),
            Value::Array(p) => format!("{} {}", p[0].as_str().unwrap(), p[1].as_str().unwrap()),
            other => panic!("merge {other}"),
        };
        merges.push_str(&line);
        merges.push('\n');
    }
    std::fs::write(dir.path().join("merges.txt"), merges)?;

    let m = GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float)?;
    for (q, r, ids, score) in reference() {
        assert_eq!(m.encode_pair(&q, &r)?, ids);
        let got = m.score_pairs(&[(&q, &r)], 1)?[0] as f64;
        assert!((got - score).abs() < 1e-4);
    }
    assert_eq!(m.encode_pair("a<|endoftext|>", "")?.last(), Some(&0));
    Ok(())
}

#[test]
fn ragged_random_batches_equal_singles_and_trailing_pads_are_skipped() -> TestResult {
    let m = load(Kind::Float);
    // Deterministic pseudo-random ids of lengths 1..=40, some with pad ids (0) inside.
    let mut state = 0x9e37_79b9_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as i64
    };
    let batch: Vec<Vec<i64>> = (0..12)
        .map(|_| {
            let len = 1 + next() % 40;
            (0..len).map(|_| next() % 512).collect()
        })
        .collect();
    let together = m.score_ids(&batch)?;
    for (ids, got) in batch.iter().zip(&together) {
        let alone = m.score_ids(std::slice::from_ref(ids))?[0];
        assert!(
            (alone - got).abs() < 1e-5,
            "len {}: {alone} vs {got}",
            ids.len()
        );
    }
    // The score is read at the last token that is not the pad id, as transformers does.
    let a = m.score_ids(&[vec![5, 6, 0, 0]])?[0];
    let b = m.score_ids(&[vec![5, 6]])?[0];
    assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    Ok(())
}

#[test]
fn sharded_weights_load_through_the_shared_loader() -> TestResult {
    let src = tiny_dir();
    let dir = tempfile::tempdir()?;
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f))?;
    }
    let tensors = Tensor::read_safetensors(src.join("model.safetensors"))?;
    let (a, b) = tensors.split_at(tensors.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        Tensor::write_safetensors(part, dir.path().join(file))?;
        for (n, _) in part {
            map.insert(n.clone(), file.into());
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )?;
    let sharded = GPT2ForSequenceClassification::from_dir(dir.path(), Device::Cpu, Kind::Float)?;
    let whole = load(Kind::Float);
    let ids = vec![vec![5, 9, 33, 7], vec![1, 2]];
    assert_eq!(sharded.score_ids(&ids)?, whole.score_ids(&ids)?);
    assert!(sharded
        .var_store()
        .variables()
        .values()
        .all(|t| !t.requires_grad()));
    Ok(())
}
