//! `wst generate` on the real SmolLM2 GGUF against the Python reference.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::{failed, read_json, run_ok, shared, tiny_model, wst};

/// The SmolLM2 GGUF, found as `wst` finds its alias `smollm2`.
fn smollm2_path() -> PathBuf {
    wst_models::alias_path(wst_models::SMOLLM2_ALIAS)
        .unwrap_or_else(|e| panic!("{e}: run `eval \"$(bash scripts/setup.sh)\"`"))
        .expect("`smollm2` is an alias")
}

/// `wst generate --model MODEL --system "Be brief." --chat CHAT --greedy --max-tokens N --json
/// --device cpu`, run by `cmd` (a `wst`), which must succeed: its JSON.
fn greedy_chat(mut cmd: Command, model: impl AsRef<OsStr>, chat: &str, max_tokens: &str) -> Value {
    let out = run_ok(
        cmd.args(["generate", "--model"])
            .arg(model)
            .args(["--system", "Be brief.", "--chat", chat, "--greedy"])
            .args(["--max-tokens", max_tokens, "--json", "--device", "cpu"]),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generate_greedy_json_matches_reference() {
    let r = read_json(&shared().join("testvectors/smollm2-135m-instruct-q4_1.json"));
    let v = greedy_chat(wst(), smollm2_path(), "What is 2+2?", "20");
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
    let err = failed(&out);
    assert!(
        err.contains("no-such-org/no-such-model") && err.contains("local"),
        "{err}"
    );
}

#[test]
fn generate_resolves_a_model_id_through_the_hub_cache() {
    let src = tiny_model();
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
    let reference = read_json(&src.join("reference.json"));
    let mut cmd = wst();
    cmd.env("HF_HUB_CACHE", cache.path());
    let v = greedy_chat(cmd, "wst-test/tiny-qwen2", "How many clips?", "12");
    assert_eq!(v["prompt_ids"], reference["greedy_12"]["input_ids"]);
    assert_eq!(v["output_ids"], reference["greedy_12"]["output_ids"]);
    assert_eq!(v["finish_reason"], "length");
}
