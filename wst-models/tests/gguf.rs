//! GGUF: dequantisation on hand-built blocks, reader errors on hand-built files, conversion of
//! tiny models built in memory, and the real SmolLM2-135M-Instruct Q4_1 file against the Python
//! reference's test vectors.

mod convert;
mod dequant;
mod reader;
mod smollm2;

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

/// The little-endian bytes of `x` as an IEEE half.
fn h(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

/// The name given to files built in memory.
fn origin() -> &'static Path {
    Path::new("mem.gguf")
}
