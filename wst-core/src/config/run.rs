//! `[run]`: identity, output, seed, device, length and checkpointing; and the device and dtype
//! choices every model section shares.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::choice::named_choices;

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

named_choices!(DeviceChoice { Auto => "auto", Cpu => "cpu", Cuda => "cuda" });

/// Floating-point type of model weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// bf16 on CUDA and on CPUs with native bf16 products (AVX512-BF16), f32 on other CPUs
    /// (`WST_CPU_BF16=0` keeps f32 on any CPU).
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
    /// Frozen inference on the CPU only (a local student, `wst generate`, `wst serve`, `wst bench
    /// generate`): the linear projections of every layer in int8 (per-channel weights,
    /// activations quantised per token as they come), the embeddings, norms and output head in
    /// f32. Never for a model that is trained (`teacher.dtype`).
    Int8,
}

named_choices!(DType { Auto => "auto", F32 => "f32", Bf16 => "bf16", F16 => "f16", Int8 => "int8" });

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the run (its directory under `output_dir`).
    pub name: String,
    /// Parent folder of run directories.
    pub output_dir: PathBuf,
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// Device for the teacher and local models.
    pub device: DeviceChoice,
    /// Optimiser steps.
    pub steps: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    /// Keep at most this many checkpoints (0: all).
    pub keep_checkpoints: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: "wst".into(),
            output_dir: "runs".into(),
            seed: 0,
            device: DeviceChoice::Auto,
            steps: 100,
            save_every: 0,
            keep_checkpoints: 2,
        }
    }
}

impl RunConfig {
    /// Problems of `[run]`, keys under `prefix`.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() || self.name.contains(['/', '\\']) {
            p.push(format!(
                "{prefix}.name must be a non-empty folder name, got {:?}",
                self.name
            ));
        }
        if self.steps == 0 {
            p.push(format!("{prefix}.steps must be >= 1"));
        }
        p
    }
}
