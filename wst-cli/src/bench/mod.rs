//! `wst bench`: throughput of generation and of a GRPO training step, on random weights with the
//! shapes of a named model (`--preset`, [`wst_models::DecoderConfig::preset`]) or on a real model
//! (`--model`), on the CPU or a CUDA GPU; and `wst bench check`, the device-correctness check run
//! before benchmarking.
//!
//! Timings wait for the device before reading the clock; the median of `--iters` runs after
//! `--warmup` runs is reported. Peak memory is the CUDA caching allocator's peak on CUDA (as
//! `torch.cuda.max_memory_allocated`) and the process's peak resident set (VmHWM) on the CPU.
//!
//! `common` holds what the three share; `generate`, `train_step` and `check` use it and not each
//! other.

mod check;
mod common;
mod generate;
mod train_step;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Arguments of `wst bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Sampling throughput: `--batch` prompts of `--prompt-len` random tokens, `--new-tokens`
    /// sampled per row (temperature 1, no early stop).
    Generate(generate::GenerateBench),
    /// One GRPO update as `wst train` runs it: log-probs of the completion tokens with the
    /// output head backpropagated chunk by chunk, the GRPO loss, backward over micro-batches,
    /// clipping and one AdamW step (f32 state).
    TrainStep(train_step::TrainBench),
    /// Device correctness: a model's greedy tokens and logits on the device against the CPU
    /// (f32 and bf16), CUDA-graph decoding against eager, and reference vectors if given.
    Check(check::CheckArgs),
}

/// Runs `wst bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Generate(a) => generate::run(a),
        BenchCommand::TrainStep(a) => train_step::run(a),
        BenchCommand::Check(a) => check::run(a),
    }
}
