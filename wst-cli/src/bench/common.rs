//! What the benchmarks share: the model flags, device and dtype choices, timing and
//! peak-memory helpers.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use crate::args::DeviceArgs;
use wst_core::DType;
use wst_models::{
    cuda_peak_memory, cuda_reset_peak_memory, dtype_kind, select_device, DecoderConfig, DecoderLm,
    LoadedModel,
};

/// The model a benchmark runs.
#[derive(Debug, Args)]
pub struct BenchModelArgs {
    /// Random weights with the shapes of this model.
    #[arg(
        long,
        value_parser = clap::builder::PossibleValuesParser::new(DecoderConfig::PRESETS.iter().copied()),
        conflicts_with = "model",
        required_unless_present = "model"
    )]
    pub preset: Option<String>,
    /// A real model instead: a Hugging Face folder, a .gguf file or a cached hub id.
    #[arg(long)]
    pub model: Option<String>,
    #[command(flatten)]
    pub on: DeviceArgs,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The device and tensor kind of `--device` and `--dtype`.
pub fn device_and_kind(on: DeviceArgs) -> Result<(Device, Kind)> {
    let device = select_device(on.device)?;
    Ok((device, dtype_kind(on.dtype, device)))
}

/// The name of the weight type a benchmark ran: `int8` for `--dtype int8`, else that of `kind`.
pub fn dtype_name(on: DeviceArgs, kind: Kind) -> &'static str {
    if on.dtype == DType::Int8 {
        "int8"
    } else {
        kind_name(kind)
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        _ => "f32",
    }
}

/// The model of `args` (kept with its loader, if any) and a name for reports; `--dtype int8`
/// quantises it (a real model calibrated on its chat template, random weights without
/// smoothing).
pub fn build_model(
    args: &BenchModelArgs,
    device: Device,
    kind: Kind,
) -> Result<(DecoderLm, String)> {
    match (&args.preset, &args.model) {
        (Some(p), _) => {
            let config = DecoderConfig::preset(p).with_context(|| format!("unknown preset {p}"))?;
            let mut m = DecoderLm::random(config, device, args.seed as i64)?;
            if kind != Kind::Float {
                m.var_store_mut().set_kind(kind);
            }
            if args.on.dtype == DType::Int8 {
                m.quantize_int8(None)?;
            }
            Ok((m, p.clone()))
        }
        (None, Some(path)) => {
            let m = LoadedModel::load_dtype(path, device, args.on.dtype)
                .with_context(|| format!("loading model {path}"))?;
            Ok((m.model, path.clone()))
        }
        (None, None) => bail!("give --preset or --model"),
    }
}

pub fn check_positive(name: &str, v: usize) -> Result<()> {
    if v == 0 {
        bail!("--{name} must be at least 1");
    }
    Ok(())
}

/// `--warmup`, `--iters` and `--json`.
#[derive(Debug, Args)]
pub struct TimingArgs {
    /// Untimed runs first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Wall-clock times of the timed runs and the peak memory over them.
pub struct Timed {
    /// The median run, in seconds.
    pub seconds: f64,
    /// Every timed run, in seconds.
    pub all: Vec<f64>,
    /// Peak memory in bytes, and where the figure comes from.
    pub peak: (u64, &'static str),
}

/// Runs `f` `warmup` times untimed, then `iters` times timed (the device synchronised around
/// each), with the peak memory reset before the timed runs.
pub fn time_runs(
    device: Device,
    t: &TimingArgs,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timed> {
    for _ in 0..t.warmup {
        f()?;
    }
    sync(device);
    reset_peak(device)?;
    let mut all = Vec::with_capacity(t.iters);
    for _ in 0..t.iters {
        sync(device);
        let start = Instant::now();
        f()?;
        sync(device);
        all.push(start.elapsed().as_secs_f64());
    }
    Ok(Timed {
        seconds: median(all.clone()),
        all,
        peak: peak_memory(device)?,
    })
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Waits for the device (a no-op on the CPU).
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Resets the peak-memory counter of `device` (CPU: the process's VmHWM, where the kernel
/// allows it).
pub fn reset_peak(device: Device) -> Result<()> {
    if device.is_cuda() {
        cuda_reset_peak_memory(device)?;
    } else {
        // "5" resets the peak resident set size (Linux >= 4.0); ignored where not allowed.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    Ok(())
}

/// Peak memory in bytes and where it comes from.
pub fn peak_memory(device: Device) -> Result<(u64, &'static str)> {
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
pub fn random_ids(rows: usize, cols: usize, vocab: i64, seed: u64, device: Device) -> Tensor {
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

pub fn print_report(v: &Value, json: bool, lines: &[String]) {
    if json {
        println!("{v}");
    } else {
        for l in lines {
            println!("{l}");
        }
    }
}

pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}
