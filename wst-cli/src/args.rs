//! Flags several commands share: the model to load, its device and weight type. The names are
//! those of the config (`run.device`, `teacher.dtype`), parsed by their `FromStr` in wst-core.

use clap::Args;
use wst_core::{DType, DeviceChoice};

/// `--device` and `--dtype`.
#[derive(Debug, Clone, Copy, Args)]
pub struct DeviceArgs {
    /// Device: auto (CUDA when available, else the CPU), cpu or cuda.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Weight type: auto (bf16 on CUDA and on CPUs with AVX512-BF16, else f32), f32, bf16, f16
    /// or int8 (CPU inference: int8 projections, f32 embeddings, norms and output head).
    #[arg(long, default_value_t = DType::Auto)]
    pub dtype: DType,
}

/// `--model` with `--device` and `--dtype`.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// A Hugging Face model folder, a .gguf file, a model id in the local hub cache, `smollm2`,
    /// a run folder (its newest checkpoint) or a checkpoint.
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub on: DeviceArgs,
}
