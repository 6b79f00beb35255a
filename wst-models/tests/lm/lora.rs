//! LoRA adapters on random decoders of each family: the adapted forward equals the merged
//! model's, fresh adapters change nothing, only adapters train, files round-trip under PEFT's
//! names, dropout acts only where gradients are recorded.

use super::*;
use wst_core::LoraConfig;
use wst_models::lora::{from_peft_name, merge_adapters, to_peft_name};
use wst_models::{Arch, DecoderConfig, DecoderLm, WeightStore};

const ARCHS: [Arch; 3] = [Arch::Llama, Arch::Qwen2, Arch::Gemma];

fn ids(b: i64, t: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint_low(3, 128, [b, t], (Kind::Int64, Device::Cpu))
}

fn lora(rank: i64) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        ..LoraConfig::default()
    }
}

/// A random model in `kind` with adapters whose B is random too (a fresh B is zero).
fn adapted(arch: Arch, kind: Kind, cfg: &LoraConfig) -> Result<DecoderLm, wst_models::Error> {
    let base = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 11)?;
    let mut store =
        WeightStore::from_tensors(base.var_store().variables().into_iter().collect(), "random");
    let mut m = DecoderLm::load(DecoderConfig::tiny(arch), &mut store, Device::Cpu, kind)?;
    m.add_lora(cfg, 5)?;
    tch::manual_seed(6);
    tch::no_grad(|| {
        for (n, mut t) in m.adapters() {
            if n.contains("lora_B") {
                let r = Tensor::randn(t.size(), (Kind::Float, Device::Cpu)) * 0.05;
                t.copy_(&r.to_kind(t.kind()));
            }
        }
    });
    Ok(m)
}

/// Copies of the weights of `m` without its adapters.
fn base_weights(m: &DecoderLm) -> Vec<(String, Tensor)> {
    m.var_store()
        .variables()
        .into_iter()
        .filter(|(n, _)| !n.contains(".lora_"))
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

/// A plain model with the base weights of `m` (tests run in parallel threads sharing torch's
/// generator, so two random models of one seed may differ).
fn base_of(m: &DecoderLm) -> Result<DecoderLm, wst_models::Error> {
    let mut store = WeightStore::from_tensors(base_weights(m), "base");
    DecoderLm::load(m.config().clone(), &mut store, Device::Cpu, Kind::Float)
}

fn merged(m: &DecoderLm, kind: Kind) -> Result<DecoderLm, wst_models::Error> {
    let mut store = WeightStore::from_tensors(m.merged_weights()?, "merged");
    DecoderLm::load(m.config().clone(), &mut store, Device::Cpu, kind)
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    max_abs_diff(a, b) / b.to_kind(Kind::Float).abs().max().double_value(&[])
}

#[test]
fn lora_forward_equals_the_merged_models_forward() -> TestResult {
    for arch in ARCHS {
        let x = ids(2, 9, 1);
        // f32: equal to rounding.
        let m = adapted(arch, Kind::Float, &lora(4))?;
        let plain = merged(&m, Kind::Float)?;
        let (a, b) = (m.forward(&x, None)?, plain.forward(&x, None)?);
        let d = rel_diff(&a, &b);
        assert!(d < 1e-5, "{arch:?} f32: adapted vs merged {d}");
        // The adapters matter: the base weights alone answer otherwise; merged by hand they
        // give the merged model's weights.
        let mut base_weights = base_weights(&m);
        let base = base_of(&m)?;
        let moved = rel_diff(&base.forward(&x, None)?, &b);
        assert!(
            moved > 1e-3,
            "{arch:?}: the adapters change the output by {moved}"
        );
        let scale = lora(4).scale();
        assert_eq!(
            merge_adapters(&mut base_weights, &m.adapters(), scale)?,
            2 * 7
        );
        base_weights.sort_by(|a, b| a.0.cmp(&b.0));
        for ((n1, t1), (n2, t2)) in base_weights.iter().zip(&m.merged_weights()?) {
            assert_eq!(n1, n2);
            assert!(max_abs_diff(t1, t2) < 1e-6, "{n1}");
        }

        // bf16: the adapted and the merged bf16 models are both within bf16 rounding of f32.
        let m16 = adapted(arch, Kind::BFloat16, &lora(4))?;
        let plain16 = merged(&m16, Kind::BFloat16)?;
        let ref32 = merged(&m16, Kind::Float)?.forward(&x, None)?;
        let a16 = m16.forward(&x, None)?;
        assert_eq!(a16.kind(), Kind::BFloat16);
        let (da, dm) = (
            rel_diff(&a16, &ref32),
            rel_diff(&plain16.forward(&x, None)?, &ref32),
        );
        assert!(
            da < 0.05 && dm < 0.05,
            "{arch:?} bf16: adapted {da}, merged {dm}"
        );
    }
    Ok(())
}

#[test]
fn fresh_adapters_change_nothing_and_only_they_train() -> TestResult {
    for arch in ARCHS {
        let x = ids(2, 7, 2);
        let mut m = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 3)?;
        let before = m.forward(&x, None)?;
        let cfg = LoraConfig {
            targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
            ..lora(2)
        };
        m.add_lora(&cfg, 4)?;
        assert!(m.add_lora(&cfg, 4).is_err(), "adapters twice");
        assert_eq!(max_abs_diff(&m.forward(&x, None)?, &before), 0.0);
        let trainable: Vec<String> = m
            .var_store()
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(trainable.len(), 2 * 3 * 2, "{trainable:?}");
        assert!(trainable.iter().all(|n| n.contains(".lora_")));
        assert!(trainable.contains(&"model.layers.1.mlp.down_proj.lora_A.weight".to_string()));
        // A backward pass reaches B (A's gradient is zero while B is) and no base weight.
        m.forward(&x, None)?.square().sum(Kind::Float).backward();
        for (n, t) in m.var_store().variables() {
            let g = t.grad();
            if n.contains("lora_B") {
                assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{n}");
            } else if !n.contains("lora_") {
                assert!(!g.defined(), "{n} got a gradient");
            }
        }
        let bad = LoraConfig { rank: 0, ..lora(2) };
        let mut other = DecoderLm::random(DecoderConfig::tiny(arch), Device::Cpu, 3)?;
        let e = other.add_lora(&bad, 0).unwrap_err().to_string();
        assert!(e.contains("rank must be >= 1"), "{e}");
    }
    Ok(())
}

#[test]
fn adapter_files_round_trip_under_peft_names() -> TestResult {
    let dir = tempfile::tempdir()?;
    let m = adapted(Arch::Qwen2, Kind::Float, &lora(4))?;
    let named: Vec<(String, Tensor)> = m
        .adapters()
        .into_iter()
        .map(|(n, t)| (to_peft_name(&n), t))
        .collect();
    assert_eq!(
        named[0].0,
        "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"
    );
    assert_eq!(
        from_peft_name(&named[0].0),
        "model.layers.0.mlp.down_proj.lora_A.weight"
    );
    let file = dir.path().join("adapter_model.safetensors");
    Tensor::write_safetensors(&named, &file)?;

    // Loaded into other fresh adapters (other seed), the model computes the same.
    let x = ids(1, 6, 3);
    let mut again = base_of(&m)?;
    again.add_lora(&lora(4), 99)?;
    again.load_adapters(&file)?;
    let d = max_abs_diff(&again.forward(&x, None)?, &m.forward(&x, None)?);
    assert!(d < 1e-6, "round trip: {d}");

    // Another rank: an error naming the tensor and both shapes.
    let mut r8 = DecoderLm::random(DecoderConfig::tiny(Arch::Qwen2), Device::Cpu, 11)?;
    r8.add_lora(&lora(8), 0)?;
    let e = r8.load_adapters(&file).unwrap_err().to_string();
    assert!(
        e.contains("lora_A.weight") && e.contains('8') && e.contains('4'),
        "{e}"
    );
    // Fewer targets than the file: the extra adapters are named.
    let mut q_only = DecoderLm::random(DecoderConfig::tiny(Arch::Qwen2), Device::Cpu, 11)?;
    let q = LoraConfig {
        targets: vec!["q_proj".into()],
        ..lora(4)
    };
    q_only.add_lora(&q, 0)?;
    let e = q_only.load_adapters(&file).unwrap_err().to_string();
    assert!(e.contains("k_proj.lora_A"), "{e}");
    // A model without adapters cannot take them.
    let mut plain = DecoderLm::random(DecoderConfig::tiny(Arch::Qwen2), Device::Cpu, 11)?;
    assert!(plain.load_adapters(&file).is_err());
    Ok(())
}

#[test]
fn dropout_acts_only_where_gradients_are_recorded() -> TestResult {
    let cfg = LoraConfig {
        dropout: 0.5,
        ..lora(4)
    };
    let mut m = DecoderLm::random(DecoderConfig::tiny(Arch::Llama), Device::Cpu, 1)?;
    m.add_lora(&cfg, 2)?;
    tch::no_grad(|| {
        for (n, mut t) in m.adapters() {
            if n.contains("lora_B") {
                let _ = t.fill_(0.05);
            }
        }
    });
    let x = ids(2, 8, 4);
    let a = tch::no_grad(|| m.forward(&x, None))?;
    let b = tch::no_grad(|| m.forward(&x, None))?;
    assert_eq!(max_abs_diff(&a, &b), 0.0, "no dropout without gradients");
    let plain = merged(&m, Kind::Float)?;
    assert!(rel_diff(&a, &plain.forward(&x, None)?) < 1e-5);
    // (That a seeded generator repeats the masks is checked by the trainer's resume test, in a
    // process of its own: these tests share torch's generator.)
    let g1 = m.forward(&x, None)?;
    assert!(
        max_abs_diff(&g1, &a) > 1e-4,
        "dropout acts in a recorded forward"
    );
    Ok(())
}
