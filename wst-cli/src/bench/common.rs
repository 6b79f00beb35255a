//! What the benchmarks share: the model flags, device and dtype choices, timing and
//! peak-memory helpers.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;
use tch::{Device, Kind, Tensor};
use wst_core::DeviceChoice;
use wst_models::{
    cuda_peak_memory, cuda_reset_peak_memory, select_device, DecoderConfig, DecoderLm, LoadedModel,
};

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
pub struct ModelArgs {
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
    /// Weight kind.
    #[arg(long, value_enum, default_value = "auto")]
    pub dtype: BenchDtype,
    /// Device.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: BenchDevice,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The device for a `--device` choice.
pub fn device_of(choice: BenchDevice) -> Result<Device> {
    Ok(select_device(match choice {
        BenchDevice::Auto => DeviceChoice::Auto,
        BenchDevice::Cpu => DeviceChoice::Cpu,
        BenchDevice::Cuda => DeviceChoice::Cuda,
    })?)
}

pub fn kind_of(dtype: BenchDtype, device: Device) -> Kind {
    match dtype {
        BenchDtype::Auto if device.is_cuda() => Kind::BFloat16,
        BenchDtype::Auto | BenchDtype::F32 => Kind::Float,
        BenchDtype::Bf16 => Kind::BFloat16,
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::BFloat16 => "bf16",
        Kind::Half => "f16",
        _ => "f32",
    }
}

/// The model of `args` (kept with its loader, if any) and a name for reports.
pub fn build_model(args: &ModelArgs, device: Device, kind: Kind) -> Result<(DecoderLm, String)> {
    match (&args.preset, &args.model) {
        (Some(p), _) => {
            let config = DecoderConfig::preset(p).with_context(|| format!("unknown preset {p}"))?;
            let mut m = DecoderLm::random(config, device, args.seed as i64)?;
            if kind != Kind::Float {
                m.var_store_mut().set_kind(kind);
            }
            Ok((m, p.clone()))
        }
        (None, Some(path)) => {
            let m = LoadedModel::load(path, device, kind)
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
