//! `wst generate` on the real SmolLM2 GGUF against the Python reference.

use std::path::{Path, PathBuf};

use super::wst;

fn smollm2_path() -> PathBuf {
    let path = std::env::var_os("WST_SMOLLM2_GGUF")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/wst/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        })
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "SmolLM2 GGUF not found at {path:?}: run `eval \"$(bash scripts/setup.sh)\"`"
    );
    path
}

fn reference() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testvectors/smollm2-135m-instruct-q4_1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test asset {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn generate_greedy_json_matches_reference() {
    let r = reference();
    let out = wst()
        .args(["generate", "--model"])
        .arg(smollm2_path())
        .args([
            "--system",
            "Be brief.",
            "--chat",
            "What is 2+2?",
            "--greedy",
            "--max-tokens",
            "20",
            "--json",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["prompt_ids"], r["greedy_20"]["input_ids"]);
    assert_eq!(v["output_ids"], r["greedy_20"]["output_ids"]);
    assert_eq!(v["finish_reason"], "stop");
    assert_eq!(v["text"], "The answer to this classic math problem is 4.");
}

#[test]
fn generate_reports_a_missing_model() {
    let out = wst()
        .args([
            "generate",
            "--model",
            "no-such-org/no-such-model",
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no-such-org/no-such-model") && err.contains("local"),
        "{err}"
    );
}

#[test]
fn generate_resolves_a_model_id_through_the_hub_cache() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testvectors/tiny-qwen2");
    assert!(src.is_dir(), "test asset {} is missing", src.display());
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--wst-test--tiny-qwen2");
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, snap.join(p.file_name().unwrap())).unwrap();
    }
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("reference.json")).unwrap())
            .unwrap();
    let out = wst()
        .env("HF_HUB_CACHE", cache.path())
        .args([
            "generate",
            "--model",
            "wst-test/tiny-qwen2",
            "--system",
            "Be brief.",
            "--chat",
            "How many clips?",
            "--greedy",
            "--max-tokens",
            "12",
            "--json",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["prompt_ids"], reference["greedy_12"]["input_ids"]);
    assert_eq!(v["output_ids"], reference["greedy_12"]["output_ids"]);
    assert_eq!(v["finish_reason"], "length");
}
