//! `wst bench train-step`: one GRPO update through [`wst_rl::update::update`], the function
//! `wst train` runs (chunked output-head backward, clipping and AdamW with f32 state).

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;
use tch::{Device, Kind, Tensor};
use wst_core::{GrpoConfig, LoraConfig};
use wst_rl::adamw::{AdamW, AdamWConfig};
use wst_rl::loss::{LossDenom, LossParams};
use wst_rl::update::{update, DecoderScorer, MicroBatch, MiniBatch, UpdateOptions};
use wst_rl::TokenBatch;

use super::common::{
    build_model, check_positive, device_and_kind, gib, kind_name, print_report, random_ids,
    time_runs, BenchModelArgs, TimingArgs,
};

/// Arguments of `wst bench train-step`.
#[derive(Debug, Args)]
pub struct TrainBench {
    #[command(flatten)]
    model: BenchModelArgs,
    /// Sequences per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Tokens per sequence (prompt + completion).
    #[arg(long, default_value_t = 384)]
    seq: usize,
    /// Prompt tokens per sequence (the loss covers the rest).
    #[arg(long, default_value_t = 128)]
    prompt_len: usize,
    /// Sequences per forward/backward.
    #[arg(long, default_value_t = 16)]
    micro_batch: usize,
    /// Consecutive sequences that share their prompt, as the G samples of a query do in GRPO
    /// (1: every prompt differs). The update runs a shared prompt once per micro-batch
    /// (`TokenBatch::shared`); the work of a reference without that sharing does not change.
    #[arg(long, default_value_t = 1)]
    group: usize,
    /// Positions whose f32 logits exist at once in the output head.
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// Backpropagate through all chunks of the output head at once (one autograd graph over
    /// every chunk's f32 logits) instead of one chunk at a time.
    #[arg(long)]
    one_pass_head: bool,
    /// Train rank-R LoRA adapters (alpha = 2R) on every attention and MLP projection, the base
    /// frozen, instead of every weight (0: full training).
    #[arg(long, default_value_t = 0)]
    lora_rank: i64,
    #[command(flatten)]
    timing: TimingArgs,
}

/// Runs `wst bench train-step`.
pub fn run(a: TrainBench) -> Result<()> {
    for (name, v) in [
        ("batch", a.batch),
        ("seq", a.seq),
        ("micro-batch", a.micro_batch),
        ("group", a.group),
        ("chunk", a.chunk),
        ("iters", a.timing.iters),
    ] {
        check_positive(name, v)?;
    }
    if a.prompt_len == 0 || a.prompt_len >= a.seq {
        bail!(
            "--prompt-len must be in [1, --seq), got {} with --seq {}",
            a.prompt_len,
            a.seq
        );
    }
    let (device, kind) = device_and_kind(a.model.on)?;
    if a.model.on.dtype == wst_core::DType::Int8 {
        bail!("--dtype int8 is for inference only (no gradients): train in f32, bf16 or f16");
    }
    if a.lora_rank < 0 {
        bail!(
            "--lora-rank must be >= 0 (0: full training), got {}",
            a.lora_rank
        );
    }
    let (mut model, name) = build_model(&a.model, device, kind)?;
    let total_params: i64 = model
        .var_store()
        .variables()
        .values()
        .map(|t| t.numel() as i64)
        .sum();
    if a.lora_rank > 0 {
        let lora = LoraConfig {
            rank: a.lora_rank,
            alpha: 2.0 * a.lora_rank as f64,
            ..LoraConfig::default()
        };
        model.add_lora(&lora, a.model.seed as i64)?;
    }
    let trainable_params: i64 = wst_rl::adamw::trainable(model.var_store())
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();
    let training = if a.lora_rank > 0 {
        format!("LoRA rank {}", a.lora_rank)
    } else {
        "full".to_string()
    };
    let ids = random_ids(
        a.batch,
        a.seq,
        model.config().vocab_size,
        a.model.seed,
        Device::Cpu,
    );
    let mut rows = Vec::<Vec<i64>>::try_from(&ids)?;
    for g in 0..rows.len() {
        let first = g - g % a.group;
        if first != g {
            let prompt = rows[first][..a.prompt_len].to_vec();
            rows[g][..a.prompt_len].copy_from_slice(&prompt);
        }
    }
    tch::manual_seed(a.model.seed as i64 + 1);
    let adv = Tensor::randn([a.batch as i64], (Kind::Float, Device::Cpu));
    // The same sequences are scored every step: prompt tokens, then completion tokens.
    let micro: Vec<MicroBatch> = rows
        .chunks(a.micro_batch)
        .enumerate()
        .map(|(i, chunk)| {
            let pairs: Vec<(&[i64], &[i64])> = chunk
                .iter()
                .map(|r| (&r[..a.prompt_len], &r[a.prompt_len..]))
                .collect();
            let start = (i * a.micro_batch) as i64;
            Ok(MicroBatch {
                batch: TokenBatch::new(&pairs, 0, device)?,
                advantages: adv.narrow(0, start, chunk.len() as i64).to_device(device),
                old_logprobs: None,
                ref_logprobs: None,
            })
        })
        .collect::<Result<_>>()?;
    let grpo = GrpoConfig::default();
    let mut opt = AdamW::new(
        model.var_store(),
        AdamWConfig {
            betas: grpo.betas,
            eps: grpo.adam_eps,
            weight_decay: 0.01,
        },
    );
    let completion = (a.seq - a.prompt_len) as f64;
    let micro = [MiniBatch {
        denom: LossDenom {
            sequences: a.batch as f64,
            tokens: a.batch as f64 * completion,
            max_len: completion,
            micro_batches: micro.len() as f64,
        },
        micro,
    }];
    let opts = UpdateOptions {
        loss: LossParams::from_config(&grpo),
        temperature: 1.0,
        head_chunk: a.chunk as i64,
        one_pass_head: a.one_pass_head,
        max_grad_norm: grpo.max_grad_norm,
        top_entropy_quantile: grpo.top_entropy_quantile,
    };
    let state_bytes = opt.state_bytes();
    let scorer = DecoderScorer(&model);
    let mut losses = Vec::new();
    let timed = time_runs(device, &a.timing, || {
        losses.push(update(&scorer, &mut opt, &micro, &opts, 1e-6, 1)?.loss);
        Ok(())
    })?;
    if let Some(bad) = losses.iter().find(|l| !l.is_finite()) {
        bail!("the surrogate loss is not finite ({bad})");
    }
    let (secs, (peak, peak_source)) = (timed.seconds, timed.peak);
    let tokens_per_s = (a.batch * a.seq) as f64 / secs;
    let v = json!({
        "bench": "train-step",
        "model": name,
        "device": format!("{device:?}"),
        "dtype": kind_name(kind),
        "batch": a.batch,
        "seq": a.seq,
        "prompt_len": a.prompt_len,
        "micro_batch": a.micro_batch,
        "group": a.group,
        "chunk": a.chunk,
        "head": if a.one_pass_head { "one-pass" } else { "chunked-backward" },
        "iters": a.timing.iters,
        "seconds": secs,
        "seconds_all": timed.all,
        "ms_per_step": secs * 1e3,
        "tokens_per_s": tokens_per_s,
        "loss": losses.last().copied().unwrap_or(0.0),
        "peak_memory_bytes": peak,
        "peak_memory_source": peak_source,
        "optimizer_state_bytes": state_bytes,
        "training": training,
        "params": total_params,
        "trainable_params": trainable_params,
    });
    print_report(
        &v,
        a.timing.json,
        &[
            format!(
                "train-step {name} on {device:?} ({}, {training}: {:.1}M of {:.1}M weights \
                 trained): {} x {} tokens, micro-batch {}, prompts shared by {}",
                kind_name(kind),
                trainable_params as f64 / 1e6,
                total_params as f64 / 1e6,
                a.batch,
                a.seq,
                a.micro_batch,
                a.group
            ),
            format!(
                "{:.1} ms/step, {tokens_per_s:.0} tokens/s (median of {} steps), peak memory \
                 {:.2} GiB ({peak_source}), optimizer state {:.2} GiB",
                secs * 1e3,
                a.timing.iters,
                gib(peak),
                gib(state_bytes)
            ),
        ],
    );
    Ok(())
}
