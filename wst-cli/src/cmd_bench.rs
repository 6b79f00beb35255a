//! `wst bench`: throughput of generation and of a GRPO-shaped training step, on random weights
//! with the shapes of a named model (`--preset`) or on a real model (`--model`), on the CPU or
//! a CUDA GPU; and `wst bench check`, the device-correctness check run before benchmarking.
//!
//! Timings wait for the device before reading the clock; the median of `--iters` runs after
//! `--warmup` runs is reported. Peak memory is the CUDA caching allocator's peak on CUDA (as
//! `torch.cuda.max_memory_allocated`) and the process's peak resident set (VmHWM) on the CPU.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};
use wst_core::{DeviceChoice, SamplingParams};
use wst_models::{
    cuda_peak_memory, cuda_reset_peak_memory, select_device, Activation, Arch, DecoderConfig,
    DecoderLm, Generator, LoadedModel,
};
use wst_rl::adamw::{zero_grad, AdamW, AdamWConfig};

use crate::cmd_check::{self, CheckArgs};

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
    Generate(GenerateBench),
    /// One GRPO-shaped update: log-probs of the completion tokens with gradients, a
    /// ratio-times-advantage surrogate loss, backward over micro-batches, one AdamW step.
    TrainStep(TrainBench),
    /// Device correctness: a model's greedy tokens and logits on the device against the CPU
    /// (f32 and bf16), CUDA-graph decoding against eager, and reference vectors if given.
    Check(CheckArgs),
}

/// Named model shapes (from the models' Hugging Face config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864, vocab 151936.
    #[value(name = "qwen2.5-0.5b")]
    Qwen05b,
    /// Qwen2.5-1.5B: hidden 1536, 28 layers, 12 heads / 2 KV heads, MLP 8960, vocab 151936.
    #[value(name = "qwen2.5-1.5b")]
    Qwen15b,
    /// SmolLM2-135M: hidden 576, 30 layers, 9 heads / 3 KV heads, MLP 1536, vocab 49152.
    #[value(name = "smollm2-135m")]
    Smollm2,
}

impl Preset {
    /// The decoder config of the preset.
    pub fn config(self) -> DecoderConfig {
        let mut c = DecoderConfig::tiny(Arch::Qwen2);
        let (hidden, layers, heads, kv, inter, vocab) = match self {
            Preset::Qwen05b => (896, 24, 14, 2, 4864, 151_936),
            Preset::Qwen15b => (1536, 28, 12, 2, 8960, 151_936),
            Preset::Smollm2 => (576, 30, 9, 3, 1536, 49_152),
        };
        c.hidden_size = hidden;
        c.num_hidden_layers = layers;
        c.num_attention_heads = heads;
        c.num_key_value_heads = kv;
        c.head_dim = hidden / heads;
        c.intermediate_size = inter;
        c.vocab_size = vocab;
        c.tie_word_embeddings = true;
        c.hidden_act = Activation::Silu;
        c.o_bias = false;
        c.mlp_bias = false;
        if self == Preset::Smollm2 {
            c.arch = Arch::Llama;
            c.qkv_bias = false;
            c.rope_theta = 100_000.0;
            c.rms_norm_eps = 1e-5;
            c.max_position_embeddings = 8192;
        } else {
            c.qkv_bias = true;
            c.rope_theta = 1_000_000.0;
            c.rms_norm_eps = 1e-6;
            c.max_position_embeddings = 32_768;
        }
        c
    }

    fn name(self) -> &'static str {
        match self {
            Preset::Qwen05b => "qwen2.5-0.5b",
            Preset::Qwen15b => "qwen2.5-1.5b",
            Preset::Smollm2 => "smollm2-135m",
        }
    }
}

/// Floating-point kind of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDtype {
    /// bf16 on CUDA, f32 on the CPU.
    Auto,
    /// bfloat16.
    Bf16,
    /// float32.
    F32,
}

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchDevice {
    /// CUDA when available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device 0 (an error without one).
    Cuda,
}

/// The model a benchmark runs.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Random weights with the shapes of this model.
    #[arg(
        long,
        value_enum,
        conflicts_with = "model",
        required_unless_present = "model"
    )]
    preset: Option<Preset>,
    /// A real model instead: a Hugging Face folder, a .gguf file or a cached hub id.
    #[arg(long)]
    model: Option<String>,
    /// Weight kind.
    #[arg(long, value_enum, default_value = "auto")]
    dtype: BenchDtype,
    /// Device.
    #[arg(long, value_enum, default_value = "auto")]
    device: BenchDevice,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// Arguments of `wst bench generate`.
#[derive(Debug, Args)]
struct GenerateBench {
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

/// Arguments of `wst bench train-step`.
#[derive(Debug, Args)]
struct TrainBench {
    #[command(flatten)]
    model: ModelArgs,
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
    /// Positions whose f32 logits exist at once in the output head.
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// Backpropagate through all chunks of the output head at once (one autograd graph over
    /// every chunk's f32 logits) instead of one chunk at a time.
    #[arg(long)]
    one_pass_head: bool,
    /// Untimed steps first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `wst bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Generate(a) => generate(a),
        BenchCommand::TrainStep(a) => train_step(a),
        BenchCommand::Check(a) => cmd_check::run(a),
    }
}

/// The device for a `--device` choice.
pub fn device_of(choice: BenchDevice) -> Result<Device> {
    Ok(select_device(match choice {
        BenchDevice::Auto => DeviceChoice::Auto,
        BenchDevice::Cpu => DeviceChoice::Cpu,
        BenchDevice::Cuda => DeviceChoice::Cuda,
    })?)
}

fn kind_of(dtype: BenchDtype, device: Device) -> Kind {
    match dtype {
        BenchDtype::Auto if device.is_cuda() => Kind::BFloat16,
        BenchDtype::Auto | BenchDtype::F32 => Kind::Float,
        BenchDtype::Bf16 => Kind::BFloat16,
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        _ => "f32",
    }
}

/// The model of `args` (kept with its loader, if any) and a name for reports.
fn build_model(args: &ModelArgs, device: Device, kind: Kind) -> Result<(DecoderLm, String)> {
    match (&args.preset, &args.model) {
        (Some(p), _) => {
            let mut m = DecoderLm::random(p.config(), device, args.seed as i64)?;
            if kind != Kind::Float {
                m.var_store_mut().set_kind(kind);
            }
            Ok((m, p.name().to_string()))
        }
        (None, Some(path)) => {
            let m = LoadedModel::load(path, device, kind)
                .with_context(|| format!("loading model {path}"))?;
            Ok((m.model, path.clone()))
        }
        (None, None) => bail!("give --preset or --model"),
    }
}

fn check_positive(name: &str, v: usize) -> Result<()> {
    if v == 0 {
        bail!("--{name} must be at least 1");
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Waits for the device (a no-op on the CPU).
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Resets the peak-memory counter of `device` (CPU: the process's VmHWM, where the kernel
/// allows it).
fn reset_peak(device: Device) -> Result<()> {
    if device.is_cuda() {
        cuda_reset_peak_memory(device)?;
    } else {
        // "5" resets the peak resident set size (Linux >= 4.0); ignored where not allowed.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    Ok(())
}

/// Peak memory in bytes and where it comes from.
fn peak_memory(device: Device) -> Result<(u64, &'static str)> {
    if device.is_cuda() {
        return Ok((cuda_peak_memory(device)?, "cuda caching allocator peak"));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    Ok(match kb {
        Some(kb) => (kb * 1024, "process VmHWM"),
        None => (0, "unavailable"),
    })
}

/// Random token ids `[rows, cols]` (Int64) in `[lo, hi)`, on `device`.
fn random_ids(rows: usize, cols: usize, vocab: i64, seed: u64, device: Device) -> Tensor {
    let hi = vocab.min(30_000);
    let lo = 100.min(hi - 1);
    tch::manual_seed(seed as i64);
    Tensor::randint_low(
        lo,
        hi,
        [rows as i64, cols as i64],
        (Kind::Int64, Device::Cpu),
    )
    .to_device(device)
}

fn print_report(v: &Value, json: bool, lines: &[String]) {
    if json {
        println!("{v}");
    } else {
        for l in lines {
            println!("{l}");
        }
    }
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn generate(a: GenerateBench) -> Result<()> {
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

fn train_step(a: TrainBench) -> Result<()> {
    for (name, v) in [
        ("batch", a.batch),
        ("seq", a.seq),
        ("micro-batch", a.micro_batch),
        ("chunk", a.chunk),
        ("iters", a.iters),
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
    let device = device_of(a.model.device)?;
    let kind = kind_of(a.model.dtype, device);
    let (model, name) = build_model(&a.model, device, kind)?;
    let ids = random_ids(
        a.batch,
        a.seq,
        model.config().vocab_size,
        a.model.seed,
        device,
    );
    tch::manual_seed(a.model.seed as i64 + 1);
    let adv = Tensor::randn([a.batch as i64], (Kind::Float, device));
    let mut opt = AdamW::new(
        model.var_store(),
        AdamWConfig {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.01,
        },
    );
    let shape = StepShape {
        batch: a.batch as i64,
        seq: a.seq as i64,
        prompt: a.prompt_len as i64,
        micro: a.micro_batch as i64,
        chunk: a.chunk as i64,
        one_pass: a.one_pass_head,
    };
    let mut losses = Vec::new();
    for _ in 0..a.warmup {
        losses.push(grpo_step(&model, &mut opt, &ids, &adv, &shape)?);
    }
    sync(device);
    reset_peak(device)?;
    let mut times = Vec::with_capacity(a.iters);
    for _ in 0..a.iters {
        sync(device);
        let t = Instant::now();
        losses.push(grpo_step(&model, &mut opt, &ids, &adv, &shape)?);
        sync(device);
        times.push(t.elapsed().as_secs_f64());
    }
    if let Some(bad) = losses.iter().find(|l| !l.is_finite()) {
        bail!("the surrogate loss is not finite ({bad})");
    }
    let (peak, peak_source) = peak_memory(device)?;
    let secs = median(times.clone());
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
        "chunk": a.chunk,
        "head": if a.one_pass_head { "one-pass" } else { "chunked-backward" },
        "iters": a.iters,
        "seconds": secs,
        "seconds_all": times,
        "ms_per_step": secs * 1e3,
        "tokens_per_s": tokens_per_s,
        "loss": losses.last().copied().unwrap_or(0.0),
        "peak_memory_bytes": peak,
        "peak_memory_source": peak_source,
    });
    print_report(
        &v,
        a.json,
        &[
            format!(
                "train-step {name} on {device:?} ({}): {} x {} tokens, micro-batch {}",
                kind_name(kind),
                a.batch,
                a.seq,
                a.micro_batch
            ),
            format!(
                "{:.1} ms/step, {tokens_per_s:.0} tokens/s (median of {} steps), peak memory \
                 {:.2} GiB ({peak_source})",
                secs * 1e3,
                a.iters,
                gib(peak)
            ),
        ],
    );
    Ok(())
}

/// Sizes of one GRPO-shaped step.
struct StepShape {
    batch: i64,
    seq: i64,
    prompt: i64,
    micro: i64,
    chunk: i64,
    one_pass: bool,
}

/// One update: [`surrogate_backward`] over the batch, then one AdamW step. Returns the loss.
fn grpo_step(
    model: &DecoderLm,
    opt: &mut AdamW,
    ids: &Tensor,
    adv: &Tensor,
    s: &StepShape,
) -> Result<f64> {
    zero_grad(model.var_store());
    let loss = surrogate_backward(model, ids, adv, s)?;
    opt.step(1e-6);
    Ok(loss)
}

/// For each micro-batch: the completion tokens' log-probs `lp` with gradients, the loss
/// `-mean(exp(lp - lp.detach()) * advantage)` (mean over the whole batch's completion tokens)
/// and backward, accumulating into the variables' gradients. Returns the loss.
///
/// By default the output head is backpropagated chunk by chunk: the decoder runs once with
/// gradients up to its final hidden states `h`; each chunk of positions then computes its f32
/// logits from a detached copy of `h`, backpropagates its share of the loss into that copy's
/// gradient and frees its logits; finally `h` is backpropagated with the gathered gradient.
/// So only one chunk's `[micro, chunk, vocab]` f32 logits exist at a time, where a single
/// autograd graph (`one_pass`) keeps every chunk's until its backward.
fn surrogate_backward(model: &DecoderLm, ids: &Tensor, adv: &Tensor, s: &StepShape) -> Result<f64> {
    let completion = s.seq - s.prompt;
    // Each token's share of the batch mean.
    let weight = 1.0 / (s.batch * completion) as f64;
    // Summed on the device: reading it back per chunk would stall the queue.
    let mut total = Tensor::zeros([], (Kind::Float, ids.device()));
    let mut start = 0;
    while start < s.batch {
        let mb = s.micro.min(s.batch - start);
        let x = ids.narrow(0, start, mb);
        let a = adv.narrow(0, start, mb).unsqueeze(1);
        if s.one_pass {
            let lp = model.token_logprobs_from(&x, None, s.prompt - 1, s.chunk)?;
            let loss = -((&lp - lp.detach()).exp() * &a).sum(Kind::Float) * weight;
            total += loss.detach();
            loss.f_backward()?;
        } else {
            let h = model.hidden_states(&x, None)?;
            let hd = h.detach().set_requires_grad(true);
            let mut at = s.prompt - 1;
            while at < s.seq - 1 {
                let n = s.chunk.min(s.seq - 1 - at);
                let lp = model.head_logprobs(&hd.narrow(1, at, n), &x.narrow(1, at + 1, n))?;
                let loss = -((&lp - lp.detach()).exp() * &a).sum(Kind::Float) * weight;
                total += loss.detach();
                loss.f_backward()?;
                at += n;
            }
            let grad = hd.grad();
            (h * grad.detach()).sum(Kind::Float).f_backward()?;
        }
        start += mb;
    }
    Ok(total.double_value(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gradients of every variable, flattened into one f64 vector.
    fn grads(model: &DecoderLm) -> Tensor {
        let parts: Vec<Tensor> = wst_rl::adamw::trainable(model.var_store())
            .into_iter()
            .map(|(_, t)| t.grad().to_kind(Kind::Double).flatten(0, -1))
            .collect();
        Tensor::cat(&parts, 0)
    }

    #[test]
    fn chunked_head_backward_equals_one_autograd_graph() {
        let mut config = DecoderConfig::tiny(Arch::Qwen2);
        config.vocab_size = 64;
        let model = DecoderLm::random(config, Device::Cpu, 3).unwrap();
        let ids = random_ids(4, 10, 64, 1, Device::Cpu);
        let adv = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]);
        let mut shape = StepShape {
            batch: 4,
            seq: 10,
            prompt: 4,
            micro: 3,
            chunk: 2,
            one_pass: true,
        };
        zero_grad(model.var_store());
        let l1 = surrogate_backward(&model, &ids, &adv, &shape).unwrap();
        let g1 = grads(&model);
        shape.one_pass = false;
        zero_grad(model.var_store());
        let l2 = surrogate_backward(&model, &ids, &adv, &shape).unwrap();
        let g2 = grads(&model);
        // The ratio is 1 at the current weights: the loss is minus the mean advantage.
        assert!((l1 - (-0.4375)).abs() < 1e-5, "{l1}");
        assert!((l1 - l2).abs() < 1e-6);
        let norm = g1.norm().double_value(&[]);
        assert!(norm > 0.0);
        let diff = (&g1 - &g2).norm().double_value(&[]) / norm;
        assert!(diff < 1e-5, "relative gradient difference {diff}");
    }

    #[test]
    fn presets_have_the_published_shapes() {
        let c = Preset::Qwen05b.config();
        assert_eq!(
            (c.hidden_size, c.num_hidden_layers, c.head_dim),
            (896, 24, 64)
        );
        let c = Preset::Qwen15b.config();
        assert_eq!(
            (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
            (12, 2, 128)
        );
        assert!(c.qkv_bias && c.tie_word_embeddings);
        let c = Preset::Smollm2.config();
        assert_eq!(
            (c.arch, c.vocab_size, c.qkv_bias),
            (Arch::Llama, 49_152, false)
        );
    }
}
