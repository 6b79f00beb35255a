//! The files of a run folder, named once for every crate that reads or writes them (the
//! trainer, the rollout store, `wst report`, model loading from checkpoints, export).
//!
//! ```text
//! RUN/config.toml                       the resolved configuration
//! RUN/metrics.jsonl                     one line per step
//! RUN/rollouts/                         Parquet, one file per step
//! RUN/checkpoints/step-00000014/        model.safetensors, optimizer.safetensors,
//!                                       trainer.json, config.toml
//!                                       (LoRA runs: adapter_model.safetensors and
//!                                       adapter_config.json instead of model.safetensors)
//! ```

use std::path::{Path, PathBuf};

/// The resolved configuration, in a run folder and in each checkpoint.
pub const CONFIG_FILE: &str = "config.toml";
/// Per-step metrics, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Folder of the rollout Parquet files.
pub const ROLLOUTS_DIR: &str = "rollouts";
/// Folder of checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// Teacher weights inside a checkpoint (f32 masters for a bf16/f16 teacher).
pub const MODEL_FILE: &str = "model.safetensors";
/// The LoRA adapters of a checkpoint of a `[teacher.lora]` run, under PEFT's names (f32
/// masters), in place of [`MODEL_FILE`].
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// PEFT's `adapter_config.json` beside [`ADAPTER_FILE`] (rank, alpha, dropout, targets, base).
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// Optimiser state inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Trainer state inside a checkpoint (its presence marks a complete checkpoint).
pub const STATE_FILE: &str = "trainer.json";

/// The paths of one run folder.
///
/// ```
/// let run = wst_core::RunLayout::new("runs/demo");
/// assert_eq!(run.checkpoint(14), std::path::Path::new("runs/demo/checkpoints/step-00000014"));
/// assert_eq!(run.metrics(), std::path::Path::new("runs/demo/metrics.jsonl"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    /// The run folder.
    pub dir: PathBuf,
}

impl RunLayout {
    /// The layout of the run folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RunLayout { dir: dir.into() }
    }

    /// `RUN/config.toml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// `RUN/metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join(METRICS_FILE)
    }

    /// `RUN/rollouts`.
    pub fn rollouts(&self) -> PathBuf {
        self.dir.join(ROLLOUTS_DIR)
    }

    /// `RUN/checkpoints`.
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS_DIR)
    }

    /// `RUN/checkpoints/step-NNNNNNNN`.
    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("step-{step:08}"))
    }

    /// True when `dir` holds a complete checkpoint (weights and trainer state).
    pub fn is_checkpoint(dir: &Path) -> bool {
        (dir.join(MODEL_FILE).is_file() || dir.join(ADAPTER_FILE).is_file())
            && dir.join(STATE_FILE).is_file()
    }
}
