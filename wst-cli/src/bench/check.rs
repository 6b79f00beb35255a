//! `wst bench check`: does the device compute what the CPU computes? A model is loaded on the
//! CPU in f32 and on the device in f32 and bf16; greedy tokens, logits, the static-shape decode
//! step, CUDA-graph decoding and (optionally) the Python reference vectors are compared. Each
//! check prints one line (or one JSON record) and the command fails if any check fails.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};
use wst_core::{DeviceChoice, SamplingParams};
use wst_models::{select_device, ChatMessage, KvCache, LoadedModel};

/// Arguments of `wst bench check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The model: a Hugging Face folder, a .gguf file or a cached hub id.
    #[arg(long)]
    model: String,
    /// Python reference vectors: a tiny model folder's `reference.json` or the SmolLM2 JSON
    /// (greedy tokens and logits are compared on the device).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Device to check against the CPU.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Greedy tokens compared (without a reference).
    #[arg(long, default_value_t = 20)]
    tokens: usize,
    /// Largest relative L2 error `|a - b| / |b|` of f32 logits on the device against the CPU.
    #[arg(long, default_value_t = 1e-4)]
    f32_tolerance: f64,
    /// Largest relative L2 error of bf16 logits against f32 logits on the device (SmolLM2 on
    /// the CPU: 2.1e-2; the tiny reference models: 4e-3 to 6e-3).
    #[arg(long, default_value_t = 5e-2)]
    bf16_tolerance: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The outcome of one comparison.
struct Outcome {
    name: String,
    pass: bool,
    detail: String,
}

/// `|a - b| / |b|` over all elements (f64).
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_device(Device::Cpu).to_kind(Kind::Double);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Double);
    let num = (&a - &b).norm().double_value(&[]);
    let den = b.norm().double_value(&[]).max(1e-30);
    if a.isnan().any().int64_value(&[]) != 0 {
        return f64::INFINITY;
    }
    num / den
}

fn ids_of(v: &Value, what: &str) -> Result<Vec<u32>> {
    v.as_array()
        .with_context(|| format!("reference field {what} is not a list"))?
        .iter()
        .map(|x| {
            x.as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .with_context(|| format!("reference field {what} holds a non-id {x}"))
        })
        .collect()
}

fn floats_of(v: &Value, what: &str) -> Result<Vec<f32>> {
    v.as_array()
        .with_context(|| format!("reference field {what} is not a list"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .map(|x| x as f32)
                .with_context(|| format!("reference field {what} holds a non-number {x}"))
        })
        .collect()
}

fn batch1(ids: &[u32], device: Device) -> Tensor {
    let v: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    Tensor::from_slice(&v)
        .view([1, v.len() as i64])
        .to_device(device)
}

fn greedy(m: &LoadedModel, prompt: &[u32], n: usize, graph: bool) -> Result<Vec<u32>> {
    let out = m
        .generator()
        .cuda_graph(graph)
        .generate(&[prompt.to_vec()], &SamplingParams::greedy(n))?;
    Ok(out
        .into_iter()
        .next()
        .map(|g| g.token_ids)
        .unwrap_or_default())
}

/// Runs `wst bench check`.
pub fn run(a: CheckArgs) -> Result<()> {
    let device = select_device(a.device)?;
    let load = |device, kind| {
        LoadedModel::load(&a.model, device, kind).with_context(|| format!("loading {}", a.model))
    };
    let cpu = load(Device::Cpu, Kind::Float)?;
    let dev = load(device, Kind::Float)?;
    let dev_bf16 = load(device, Kind::BFloat16)?;
    let reference: Option<Value> = match &a.reference {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading reference {}", p.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: invalid JSON", p.display()))?,
            )
        }
        None => None,
    };
    let greedy_ref = reference
        .as_ref()
        .and_then(|r| r.get("greedy_20").or_else(|| r.get("greedy_12")));
    let (prompt, n_tokens) = match greedy_ref {
        Some(g) => (
            ids_of(&g["input_ids"], "greedy input_ids")?,
            ids_of(&g["output_ids"], "greedy output_ids")?.len(),
        ),
        None => {
            let p = if cpu.chat_template.is_some() {
                cpu.encode_chat(&[ChatMessage::user("What is 2+2? Explain briefly.")])?
            } else {
                cpu.tokenizer.encode("The capital of France is", true)?
            };
            (p, a.tokens)
        }
    };
    if prompt.is_empty() {
        bail!("the check prompt has no tokens");
    }
    let mut out = Vec::new();

    // Greedy tokens: device f32 against the CPU, and against the reference.
    let cpu_tokens = greedy(&cpu, &prompt, n_tokens, false)?;
    let dev_tokens = greedy(&dev, &prompt, n_tokens, true)?;
    out.push(Outcome {
        name: "greedy tokens, device f32 == cpu f32".into(),
        pass: dev_tokens == cpu_tokens,
        detail: format!("{} tokens: {dev_tokens:?}", dev_tokens.len()),
    });
    let eager_tokens = greedy(&dev, &prompt, n_tokens, false)?;
    out.push(Outcome {
        name: "greedy tokens, device f32: cuda graph == eager".into(),
        pass: eager_tokens == dev_tokens,
        detail: format!("graph used: {}", dev.generator().uses_cuda_graph(n_tokens)),
    });
    if let Some(g) = greedy_ref {
        let want = ids_of(&g["output_ids"], "greedy output_ids")?;
        out.push(Outcome {
            name: "greedy tokens, device f32 == python reference".into(),
            pass: dev_tokens == want,
            detail: format!("reference {want:?}"),
        });
    }

    // Seeded sampling of a batch: graph and eager decoding draw the same tokens.
    let batch = vec![prompt.clone(), prompt[prompt.len() / 2..].to_vec()];
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 0.95,
        top_k: 50,
        max_new_tokens: n_tokens.max(8),
        seed: Some(5),
        ..SamplingParams::default()
    };
    let sampled = |graph: bool| -> Result<Vec<Vec<u32>>> {
        Ok(dev
            .generator()
            .cuda_graph(graph)
            .generate(&batch, &params)?
            .into_iter()
            .map(|g| g.token_ids)
            .collect())
    };
    let (with_graph, eager) = (sampled(true)?, sampled(false)?);
    out.push(Outcome {
        name: "seeded sampling, device f32: cuda graph == eager".into(),
        pass: with_graph == eager,
        detail: format!("{} rows", batch.len()),
    });

    // Logits over the prompt: device f32 vs CPU, device bf16 vs device f32.
    let cpu_logits = cpu.model.forward(&batch1(&prompt, Device::Cpu), None)?;
    let dev_logits = dev.model.forward(&batch1(&prompt, device), None)?;
    let bf_logits = dev_bf16.model.forward(&batch1(&prompt, device), None)?;
    let e32 = rel_l2(&dev_logits, &cpu_logits);
    out.push(Outcome {
        name: "logits, device f32 vs cpu f32".into(),
        pass: e32 <= a.f32_tolerance,
        detail: format!(
            "relative L2 error {e32:.2e} (tolerance {:.0e})",
            a.f32_tolerance
        ),
    });
    let ebf = rel_l2(&bf_logits, &dev_logits);
    let top_f = dev_logits.argmax(-1, false).to_device(Device::Cpu);
    let top_b = bf_logits.argmax(-1, false).to_device(Device::Cpu);
    let agree = top_f
        .eq_tensor(&top_b)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    out.push(Outcome {
        name: "logits, device bf16 vs device f32".into(),
        pass: ebf <= a.bf16_tolerance,
        detail: format!(
            "relative L2 error {ebf:.2e} (tolerance {:.0e}); top-1 agreement {:.1}% of {} \
             positions",
            a.bf16_tolerance,
            agree * 100.0,
            prompt.len()
        ),
    });

    // The static-shape decode step against the growing-cache path, on the device.
    let split = prompt.len().div_ceil(2).max(1);
    let (head, tail) = prompt.split_at(split);
    if !tail.is_empty() {
        let mut c1 = KvCache::new(&dev.model, 1, prompt.len() as i64)?;
        let mut c2 = KvCache::new(&dev.model, 1, prompt.len() as i64 + 16)?;
        let h = batch1(head, device);
        let _ = dev.model.forward_cached(&h, None, &mut c1)?;
        let _ = dev.model.forward_cached(&h, None, &mut c2)?;
        let mut worst: f64 = 0.0;
        for &t in tail {
            let ids = batch1(&[t], device);
            let a_ = dev.model.last_logits_cached(&ids, None, &mut c1)?;
            let b_ = dev.model.decode_step(&ids, &mut c2)?;
            worst = worst.max(rel_l2(&b_, &a_));
        }
        out.push(Outcome {
            name: "static decode step == growing-cache step, device f32".into(),
            pass: worst <= a.f32_tolerance,
            detail: format!("{} steps, worst relative L2 error {worst:.2e}", tail.len()),
        });
    }

    // Reference logits (tiny models: every last-position logit; SmolLM2: the top 10).
    if let Some(r) = &reference {
        let lr = &r["logits"];
        let input = ids_of(&lr["input_ids"], "logits.input_ids")?;
        let logits = dev.model.forward(&batch1(&input, device), None)?;
        let last = logits
            .get(0)
            .get(input.len() as i64 - 1)
            .to_device(Device::Cpu);
        if lr.get("last_logits").is_some() {
            let want = Tensor::from_slice(&floats_of(&lr["last_logits"], "logits.last_logits")?);
            let d = (&last - &want).abs().max().double_value(&[]);
            out.push(Outcome {
                name: "last logits, device f32 vs python reference".into(),
                pass: d < 1e-4,
                detail: format!("max abs difference {d:.2e} (tolerance 1e-4)"),
            });
        } else if lr.get("last_top10_ids").is_some() {
            let want_ids = ids_of(&lr["last_top10_ids"], "logits.last_top10_ids")?;
            let want = floats_of(&lr["last_top10_logits"], "logits.last_top10_logits")?;
            let (top, idx) = last.topk(10, -1, true, true);
            let idx: Vec<i64> = Vec::try_from(idx)?;
            let same = idx.iter().zip(&want_ids).all(|(a, b)| *a == i64::from(*b));
            let d = (&top - Tensor::from_slice(&want))
                .abs()
                .max()
                .double_value(&[]);
            out.push(Outcome {
                name: "top-10 logits, device f32 vs python reference".into(),
                pass: same && d < 2e-2,
                detail: format!("ids equal: {same}, max abs difference {d:.2e} (tolerance 2e-2)"),
            });
        }
    }

    let failed: Vec<&Outcome> = out.iter().filter(|o| !o.pass).collect();
    if a.json {
        let checks: Vec<Value> = out
            .iter()
            .map(|o| json!({"check": o.name, "pass": o.pass, "detail": o.detail}))
            .collect();
        println!(
            "{}",
            json!({
                "model": a.model,
                "device": format!("{device:?}"),
                "pass": failed.is_empty(),
                "checks": checks,
            })
        );
    } else {
        println!("check {} on {device:?} against the CPU", a.model);
        for o in &out {
            let mark = if o.pass { "PASS" } else { "FAIL" };
            println!("{mark}  {}: {}", o.name, o.detail);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} checks failed: {}",
            failed.len(),
            out.len(),
            failed
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}
