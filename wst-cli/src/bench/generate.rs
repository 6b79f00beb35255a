//! `wst bench generate`: sampling throughput.

use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tch::Device;
use wst_core::SamplingParams;
use wst_models::Generator;

use super::common::{
    build_model, check_positive, device_of, gib, kind_name, kind_of, median, peak_memory,
    print_report, random_ids, reset_peak, sync, ModelArgs,
};

/// Arguments of `wst bench generate`.
#[derive(Debug, Args)]
pub struct GenerateBench {
    #[command(flatten)]
    model: ModelArgs,
    /// Prompts per batch.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Tokens per prompt.
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Tokens sampled per prompt.
    #[arg(long, default_value_t = 256)]
    new_tokens: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Decode eagerly on CUDA (no CUDA graph).
    #[arg(long)]
    no_cuda_graph: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `wst bench generate`.
pub fn run(a: GenerateBench) -> Result<()> {
    for (name, v) in [
        ("batch", a.batch),
        ("prompt-len", a.prompt_len),
        ("new-tokens", a.new_tokens),
        ("iters", a.iters),
    ] {
        check_positive(name, v)?;
    }
    let device = device_of(a.model.device)?;
    let kind = kind_of(a.model.dtype, device);
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
    for _ in 0..a.warmup {
        generator.generate(&prompts, &params)?;
    }
    sync(device);
    reset_peak(device)?;
    let mut times = Vec::with_capacity(a.iters);
    for _ in 0..a.iters {
        sync(device);
        let t = Instant::now();
        let out = generator.generate(&prompts, &params)?;
        sync(device);
        times.push(t.elapsed().as_secs_f64());
        if let Some(short) = out.iter().find(|g| g.token_ids.len() != a.new_tokens) {
            bail!(
                "a row stopped after {} of {} tokens (benchmarks run without end tokens)",
                short.token_ids.len(),
                a.new_tokens
            );
        }
    }
    let (peak, peak_source) = peak_memory(device)?;
    let secs = median(times.clone());
    let tokens_per_s = (a.batch * a.new_tokens) as f64 / secs;
    let ms_per_step = secs * 1e3 / a.new_tokens as f64;
    let v = json!({
        "bench": "generate",
        "model": name,
        "device": format!("{device:?}"),
        "dtype": kind_name(kind),
        "cuda_graph": graph,
        "batch": a.batch,
        "prompt_len": a.prompt_len,
        "new_tokens": a.new_tokens,
        "iters": a.iters,
        "seconds": secs,
        "seconds_all": times,
        "tokens_per_s": tokens_per_s,
        "ms_per_step": ms_per_step,
        "peak_memory_bytes": peak,
        "peak_memory_source": peak_source,
    });
    print_report(
        &v,
        a.json,
        &[
            format!(
                "generate {name} on {device:?} ({}, cuda graph: {graph}): batch {} prompt {} + \
                 {} new tokens",
                kind_name(kind),
                a.batch,
                a.prompt_len,
                a.new_tokens
            ),
            format!(
                "{tokens_per_s:.0} tokens/s, {ms_per_step:.2} ms/step (median of {} runs, {:.3} s \
                 each), peak memory {:.2} GiB ({peak_source})",
                a.iters,
                secs,
                gib(peak)
            ),
        ],
    );
    Ok(())
}
