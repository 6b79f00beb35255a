//! The math verifier against the shared test data.

mod gsm8k;
mod math500;
mod public_set;
mod robustness;

use std::path::PathBuf;

/// A file under the shared assets directory that sits beside the repository.
pub fn shared(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/")).join(rel);
    assert!(
        p.exists(),
        "test asset {} is missing (the shared/ directory must sit beside the repository)",
        p.display()
    );
    p
}

/// Rows of a JSON-lines file.
pub fn read_jsonl(rel: &str) -> Vec<serde_json::Value> {
    let p = shared(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", p.display(), i + 1))
        })
        .collect()
}
