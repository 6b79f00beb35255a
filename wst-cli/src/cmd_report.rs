//! `wst report RUN_DIR`: the per-step table of a run, from its rollouts and metrics.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

/// `wst report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory (holding `rollouts/step-*.parquet` and `metrics.jsonl`).
    pub run_dir: PathBuf,
    /// One JSON object per step instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `wst report`.
pub fn run(args: ReportArgs) -> Result<()> {
    let report = wst_data::run_report(&args.run_dir)
        .with_context(|| format!("report of run {}", args.run_dir.display()))?;
    if args.json {
        for s in &report.steps {
            println!("{}", serde_json::to_string(s)?);
        }
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}
