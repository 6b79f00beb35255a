//! `wst data stats`: load a dataset as training would and print what it holds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use wst_core::{ArithLevel, DataConfig, DatasetKind};

/// `wst data ...`.
#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Load a dataset and print its rows, columns and example queries.
    Stats(StatsArgs),
}

/// `wst data stats`.
#[derive(Args, Debug)]
struct StatsArgs {
    /// The layout: gsm8k, math500, hh-rlhf, arith or generic.
    #[arg(long)]
    dataset: DatasetKind,
    /// A .jsonl, .jsonl.gz or .parquet file, a folder of them, or a hub dataset id in the local
    /// Hugging Face cache (not needed for arith).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Split of a folder or hub dataset (`train`, `test`); arith: `train` or `held-out`.
    #[arg(long)]
    split: Option<String>,
    /// Read at most this many queries.
    #[arg(long)]
    limit: Option<usize>,
    /// Skip malformed rows (they are counted and the first ones printed) instead of failing.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Generic: the query column.
    #[arg(long)]
    query_field: Option<String>,
    /// Generic: the reference-answer column.
    #[arg(long)]
    reference_field: Option<String>,
    /// Generic: the id column.
    #[arg(long)]
    id_field: Option<String>,
    /// Arith: single-digit, two-digit, mixed or word.
    #[arg(long, default_value_t = ArithLevel::SingleDigit)]
    arith_level: ArithLevel,
    /// Arith: problems to generate.
    #[arg(long, default_value_t = 1000)]
    arith_count: usize,
    /// Seed of generated data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Example queries to print.
    #[arg(long, default_value_t = 2)]
    examples: usize,
}

fn clip(s: &str, n: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn indent(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join("\n    ")
}

/// Runs `wst data ...`.
pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Stats(a) => stats(a),
    }
}

fn stats(a: StatsArgs) -> Result<()> {
    let (kind, level) = (a.dataset, a.arith_level);
    let cfg = DataConfig {
        dataset: kind,
        path: a.path.as_ref().map(|p| p.to_string_lossy().into_owned()),
        split: a.split,
        limit: a.limit,
        shuffle: false,
        seed: Some(a.seed),
        query_field: a.query_field,
        reference_field: a.reference_field,
        id_field: a.id_field,
        arith_level: level,
        arith_count: a.arith_count,
        skip_bad_rows: a.skip_bad_rows,
        holdout: None,
    };
    let what = match &cfg.path {
        Some(p) => format!("loading {} from {p}", a.dataset),
        None => format!("generating {}", a.dataset),
    };
    let ds = wst_data::load_dataset(&cfg, a.seed).context(what)?;
    let with_ref = ds.queries.iter().filter(|q| q.reference.is_some()).count();
    println!("dataset     {}", ds.id);
    for f in &ds.files {
        println!("file        {}", f.display());
    }
    println!(
        "rows        {} ({} queries, {} skipped)",
        ds.rows,
        ds.queries.len(),
        ds.skipped.len()
    );
    println!("columns     {}", ds.columns.join(", "));
    println!("references  {with_ref} of {}", ds.queries.len());
    if !ds.skipped.is_empty() {
        println!("skipped {} bad rows; the first ones:", ds.skipped.len());
        for e in ds.skipped.iter().take(5) {
            println!("  {}", wst_core::error_chain(e));
        }
    }
    for (i, q) in ds.queries.iter().take(a.examples).enumerate() {
        println!();
        println!("example {}: {}", i + 1, q.id);
        println!("  query:     {}", indent(&clip(&q.text, 400)));
        if let Some(r) = &q.reference {
            println!("  reference: {}", clip(r, 200));
        }
        for (k, v) in &q.metadata {
            if !matches!(k.as_str(), "chosen" | "rejected" | "solution") {
                println!("  {k}: {}", clip(v, 80));
            }
        }
    }
    Ok(())
}
