//! Sampling throughput of a local model: SmolLM2-135M-Instruct (GGUF, f32 on the CPU),
//! chat-formatted arithmetic prompts, left-padded batches of 16 and 64, 64 new tokens per row
//! (end tokens ignored, so every row runs to the limit), temperature 0.7.
//!
//! One generation takes seconds on a CPU, too long for criterion's ten samples, so this module
//! times one warm run per batch size itself and prints `generate/smollm2/bB: X tok/s` (the
//! line `scripts/bench/compare-generate.sh` reads). Batch sizes: `WST_BENCH_BATCHES` (default
//! `16,64`); new tokens: `WST_BENCH_NEW_TOKENS` (64); `WST_BENCH_BF16=1` for bfloat16.

use std::path::PathBuf;
use std::time::Instant;

use criterion::Criterion;
use tch::{Device, Kind};
use wst_core::SamplingParams;
use wst_models::{ChatMessage, LoadedModel};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Times sampling on SmolLM2 (skipped with a message when the GGUF is absent).
pub fn generate(_c: &mut Criterion) {
    let Some(path) = std::env::var_os("WST_SMOLLM2_GGUF").map(PathBuf::from) else {
        eprintln!("generate: WST_SMOLLM2_GGUF is not set; skipped");
        return;
    };
    let kind = if env_or("WST_BENCH_BF16", 0) == 1 {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    let model = LoadedModel::load(&path.to_string_lossy(), Device::Cpu, kind).expect("SmolLM2");
    let new_tokens: usize = env_or("WST_BENCH_NEW_TOKENS", 64);
    let batches: String = env_or("WST_BENCH_BATCHES", "16,64".to_string());
    // No end tokens: every row generates `new_tokens`, like transformers' `min_new_tokens`.
    let generator =
        wst_models::Generator::new(&model.model, &model.tokenizer, &[], model.pad_token_id);
    for b in batches
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        let prompts: Vec<Vec<u32>> = wst_benches::sample_queries(b)
            .iter()
            .map(|q| model.encode_chat(&[ChatMessage::user(q.text.clone())]))
            .collect::<Result<_, _>>()
            .expect("prompts");
        let params = SamplingParams {
            temperature: 0.7,
            max_new_tokens: new_tokens,
            seed: Some(0),
            ..SamplingParams::default()
        };
        let warm = SamplingParams {
            max_new_tokens: 4,
            ..params.clone()
        };
        generator.generate(&prompts, &warm).expect("warm-up");
        let start = Instant::now();
        let out = generator.generate(&prompts, &params).expect("generate");
        let secs = start.elapsed().as_secs_f64();
        let n: usize = out.iter().map(|g| g.token_ids.len()).sum();
        println!(
            "generate/smollm2/b{b}: {:.2} tok/s ({n} tokens in {secs:.3} s, {:?}, {} threads)",
            n as f64 / secs,
            kind,
            tch::get_num_threads()
        );
    }
}
