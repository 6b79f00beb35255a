//! `wst bench generate`: sampling throughput.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tch::Device;
use wst_core::SamplingParams;
use wst_models::Generator;

use super::common::{
    build_model, check_positive, device_and_kind, dtype_name, gib, print_report, random_ids,
    time_runs, BenchModelArgs, TimingArgs,
};

/// Arguments of `wst bench generate`.
#[derive(Debug, Args)]
pub struct GenerateBench {
    #[command(flatten)]
    model: BenchModelArgs,
    /// Prompts per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Tokens per prompt.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Tokens sampled per prompt.
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Decode eagerly on CUDA (no CUDA graph).
    #[arg(long)]
    no_cuda_graph: bool,
    #[command(flatten)]
    timing: TimingArgs,
}

/// Runs `wst bench generate`.
pub fn run(a: GenerateBench) -> Result<()> {
    for (name, v) in [
        ("batch", a.batch),
        ("prompt-len", a.prompt_len),
        ("new-tokens", a.new_tokens),
        ("iters", a.timing.iters),
    ] {
        check_positive(name, v)?;
    }
    let (device, kind) = device_and_kind(a.model.on)?;
    let dtype = dtype_name(a.model.on, kind);
    let (model, name) = build_model(&a.model, device, kind)?;
    let vocab = model.config().vocab_size;
    let ids = random_ids(a.batch, a.prompt_len, vocab, a.model.seed, Device::Cpu);
    let prompts: Vec<Vec<u32>> = Vec::<Vec<i64>>::try_from(&ids)?
        .into_iter()
        .map(|row| row.into_iter().map(|t| t as u32).collect())
        .collect();
    let generator = Generator::without_tokenizer(&model, &[], 0).cuda_graph(!a.no_cuda_graph);
    let graph = generator.uses_cuda_graph(a.new_tokens);
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: a.new_tokens,
        stop: Vec::new(),
        seed: Some(a.model.seed),
    };
    let timed = time_runs(device, &a.timing, || {
        let out = generator.generate(&prompts, &params)?;
        if let Some(short) = out.iter().find(|g| g.token_ids.len() != a.new_tokens) {
            bail!(
                "a row stopped after {} of {} tokens (benchmarks run without end tokens)",
                short.token_ids.len(),
                a.new_tokens
            );
        }
        Ok(())
    })?;
    let (secs, (peak, peak_source)) = (timed.seconds, timed.peak);
    let tokens_per_s = (a.batch * a.new_tokens) as f64 / secs;
    let ms_per_step = secs * 1e3 / a.new_tokens as f64;
    let v = json!({
        "bench": "generate",
        "model": name,
        "device": format!("{device:?}"),
        "dtype": dtype,
        "cuda_graph": graph,
        "batch": a.batch,
        "prompt_len": a.prompt_len,
        "new_tokens": a.new_tokens,
        "iters": a.timing.iters,
        "seconds": secs,
        "seconds_all": timed.all,
        "tokens_per_s": tokens_per_s,
        "ms_per_step": ms_per_step,
        "peak_memory_bytes": peak,
        "peak_memory_source": peak_source,
    });
    print_report(
        &v,
        a.timing.json,
        &[
            format!(
                "generate {name} on {device:?} ({}, cuda graph: {graph}): batch {} prompt {} + \
                 {} new tokens",
                dtype, a.batch, a.prompt_len, a.new_tokens
            ),
            format!(
                "{tokens_per_s:.0} tokens/s, {ms_per_step:.2} ms/step (median of {} runs, {:.3} s \
                 each), peak memory {:.2} GiB ({peak_source})",
                a.timing.iters,
                secs,
                gib(peak)
            ),
        ],
    );
    Ok(())
}
