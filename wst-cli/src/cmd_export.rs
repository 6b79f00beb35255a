//! `wst export`: a trained teacher (run folder or checkpoint), or any model, as a Hugging Face
//! folder for transformers, vLLM and SGLang.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tch::Kind;
use wst_core::layout::CHECKPOINTS_DIR;
use wst_models::export::{export, ExportOptions};

/// Arguments of `wst export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run folder (its newest checkpoint), a checkpoint folder, a checkpoint's
    /// model.safetensors, or any model (folder, .gguf, hub id, smollm2).
    pub source: String,
    /// The folder to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Dtype of the written weights, whatever the checkpoint holds.
    #[arg(long, value_enum, default_value_t = ExportDtype::Bf16)]
    pub dtype: ExportDtype,
    /// Split the weights into shards above this many bytes (with model.safetensors.index.json).
    #[arg(long, default_value_t = 5_000_000_000)]
    pub max_shard_bytes: u64,
}

/// Export dtypes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportDtype {
    /// bfloat16 (what vLLM and most hub models use).
    Bf16,
    /// float32.
    F32,
}

/// The run folder above a checkpoint path, if the path lies in one (`RUN/checkpoints/step-N`).
fn run_of(source: &Path) -> Option<PathBuf> {
    let mut p = if source.is_file() {
        source.parent()?
    } else {
        source
    };
    if p.join(CHECKPOINTS_DIR).is_dir() {
        return Some(p.to_path_buf());
    }
    p = p.parent()?;
    (p.file_name()? == CHECKPOINTS_DIR).then(|| p.parent().map(Path::to_path_buf))?
}

/// Runs `wst export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let kind = match args.dtype {
        ExportDtype::Bf16 => Kind::BFloat16,
        ExportDtype::F32 => Kind::Float,
    };
    let mut extra = String::new();
    if let Some(run) = run_of(Path::new(&args.source)) {
        extra.push_str(&format!("Training run: `{}`.\n\n", run.display()));
        if let Ok(table) = std::fs::read_to_string(run.join("eval").join("table.md")) {
            extra.push_str("## Evaluation (`wst eval`)\n\n");
            extra.push_str(&table);
        }
    }
    let opts = ExportOptions {
        kind,
        max_shard_bytes: args.max_shard_bytes,
        readme_extra: extra,
    };
    let report = export(&args.source, &args.out, &opts)
        .with_context(|| format!("exporting {} to {}", args.source, args.out.display()))?;
    println!(
        "exported {} ({} tensors in {}){} to {}",
        report.base,
        report.tensors,
        report.weight_files.join(", "),
        report
            .checkpoint
            .map(|c| format!(" with the weights of {}", c.display()))
            .unwrap_or_default(),
        args.out.display()
    );
    Ok(())
}
