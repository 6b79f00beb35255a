//! The `wst` command: a thin layer that parses flags and TOML and calls the library crates.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod args;
mod cmd_data;
mod cmd_demo;
mod cmd_eval;
mod cmd_export;
mod cmd_report;
mod cmd_train;
mod cmd_verify;
mod plots;
mod wiring;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod bench;
mod cmd_generate;
mod cmd_score;
mod serve;

/// Weak-to-Strong Transfer: train a small teacher to write instructions that make a larger
/// student answer better.
#[derive(Parser)]
#[command(name = "wst", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job on the embedded default: train SmolLM2 to instruct itself on arithmetic,
    /// then compare student alone / untrained / trained teacher on held-out problems.
    Demo(cmd_demo::DemoArgs),
    /// Train the teacher with GRPO (`--dry-run` checks data, models and endpoints only).
    Train(cmd_train::TrainArgs),
    /// Compute and cache the student's no-instruction baselines of a config's training queries.
    Baseline(cmd_train::BaselineArgs),
    /// Compare conditions on held-out queries: student alone, local teachers, API teachers.
    Eval(cmd_eval::EvalArgs),
    /// Validate a config (with overrides) and print it fully resolved, defaults included.
    Config {
        /// The TOML config.
        #[arg(long)]
        config: PathBuf,
        /// Override a key: `--set grpo.lr=1e-5` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Print the libtorch build wst runs on: CUDA devices, cuDNN, threads.
    Info,
    /// Check math answers: `--gold G --pred P` prints true/false; `--jsonl FILE` checks a file.
    Verify(cmd_verify::VerifyArgs),
    /// Inspect datasets: `wst data stats --dataset gsm8k --path P`.
    Data(cmd_data::DataArgs),
    /// Per-step table of a run (reward, uplift over baseline, instruction length, failures).
    Report(cmd_report::ReportArgs),
    /// Sample from a model (folder, .gguf file, hub id, run folder or checkpoint).
    Generate(cmd_generate::GenerateArgs),
    /// Write a trained teacher (run folder or checkpoint) or a model as a Hugging Face folder.
    Export(cmd_export::ExportArgs),
    /// Score a (prompt, response) pair with a GPT-2 reward model.
    Score(cmd_score::ScoreArgs),
    /// Benchmarks and device checks: `wst bench generate|train-step|check`.
    Bench(bench::BenchArgs),
    /// OpenAI-compatible server: a local model (`--model`), or the trained teacher in front of
    /// a config's student (`--config CFG --teacher T`).
    Serve(serve::ServeArgs),
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Config { config, set } => {
            let cfg = wst_core::Config::load(&config, &set)?;
            cfg.validate()
                .with_context(|| format!("config {}", config.display()))?;
            print!("{}", cfg.to_toml());
            Ok(())
        }
        Command::Demo(args) => cmd_demo::run(args),
        Command::Train(args) => cmd_train::run(args),
        Command::Baseline(args) => cmd_train::run_baseline(args),
        Command::Eval(args) => cmd_eval::run(args),
        Command::Info => {
            println!("wst {}", env!("CARGO_PKG_VERSION"));
            println!("{}", wst_models::torch_info());
            Ok(())
        }
        Command::Verify(args) => cmd_verify::run(args),
        Command::Data(args) => cmd_data::run(args),
        Command::Report(args) => cmd_report::run(args),
        Command::Generate(args) => cmd_generate::run(args),
        Command::Export(args) => cmd_export::run(args),
        Command::Score(args) => cmd_score::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

fn main() -> ExitCode {
    wst_models::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let causes = e.chain().skip(1).map(|c| c.to_string());
            eprintln!("error: {}", wst_core::join_causes(e.to_string(), causes));
            ExitCode::FAILURE
        }
    }
}
