//! `wst score` on the random `tiny-gpt2-rm`, from a folder and from a Hugging Face cache.

use serde_json::Value;
use wst_models::testing::{tiny_gpt2_rm_dir as tiny_dir, tiny_gpt2_rm_pairs as reference};

use super::wst;

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "wst score failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn score_prints_the_reference_score() {
    let refs = reference();
    // A plain question and a reply without the leading space: wst adds the HH-RLHF format.
    let out = wst()
        .args(["score", "--device", "cpu", "--reward-model"])
        .arg(tiny_dir())
        .args(["--prompt", "How do I bake bread?", "--response"])
        .arg(refs[0]["response"].as_str().unwrap().trim_start())
        .output()
        .unwrap();
    let score: f64 = stdout_of(&out).trim().parse().unwrap();
    let expect = refs[0]["score"].as_f64().unwrap();
    assert!((score - expect).abs() < 1e-4, "{score} vs {expect}");
}

#[test]
fn score_json_gives_ids_and_score_for_raw_pairs() {
    for r in reference() {
        let out = wst()
            .args([
                "score",
                "--device",
                "cpu",
                "--raw",
                "--json",
                "--reward-model",
            ])
            .arg(tiny_dir())
            .arg("--prompt")
            .arg(r["query"].as_str().unwrap())
            .arg("--response")
            .arg(r["response"].as_str().unwrap())
            .output()
            .unwrap();
        let v: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        assert_eq!(v["input_ids"], r["input_ids"]);
        let (got, expect) = (v["score"].as_f64().unwrap(), r["score"].as_f64().unwrap());
        assert!((got - expect).abs() < 1e-4, "{got} vs {expect}");
    }
}

#[test]
fn score_resolves_hub_ids_in_the_cache_and_names_missing_ones() {
    let cache = tempfile::tempdir().unwrap();
    let snap = cache.path().join("models--org--tiny-rm/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(tiny_dir().join(f), snap.join(f)).unwrap();
    }
    let run = |id: &str| {
        wst()
            .env("HF_HUB_CACHE", cache.path())
            .args(["score", "--device", "cpu", "--reward-model", id])
            .args(["--prompt", "What is 2+2?", "--response", "4"])
            .output()
            .unwrap()
    };
    let score: f64 = stdout_of(&run("org/tiny-rm")).trim().parse().unwrap();
    let expect = reference()[2]["score"].as_f64().unwrap();
    assert!((score - expect).abs() < 1e-4, "{score} vs {expect}");

    let out = run("org/absent-rm");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("org/absent-rm") && err.contains("config.json") && err.contains("local"),
        "{err}"
    );
}

#[test]
fn score_names_a_missing_folder() {
    let out = wst()
        .args(["score", "--device", "cpu", "--reward-model", "./no/such/rm"])
        .args(["--prompt", "q", "--response", "r"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("./no/such/rm"), "{err}");
}
