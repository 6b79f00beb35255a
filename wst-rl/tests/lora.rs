//! A LoRA teacher (the tiny random Qwen2 with adapters, dropout on) through the trainer: only
//! the adapters move, the checkpoint holds them alone (PEFT's files, a small fraction of the
//! model), a resumed run ends bit for bit where an uninterrupted one does, and the checkpoint
//! loads back as the trained model.
//!
//! One test in its own process: the update's dropout masks come from torch's global generator.

#[allow(dead_code)]
mod support;

use std::path::Path;

use tch::{Device, Kind, Tensor};
use wst_core::{Config, LoraConfig, SamplingParams};
use wst_models::LoadedModel;
use wst_rl::{checkpoint, LmPolicy, Policy, RunSummary, Trainer};

use support::*;

fn lora_config(steps: u64) -> Config {
    let mut c = config(steps, 7);
    c.teacher.model = tiny_qwen2().display().to_string();
    c.teacher.sampling = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 6,
        ..SamplingParams::default()
    };
    c.teacher.lora = Some(LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        ..LoraConfig::default()
    });
    c.run.save_every = 2;
    c.grpo.batch_size = 2;
    c.grpo.group_size = 4;
    c.grpo.lr = 2e-2;
    c.grpo.micro_batch_size = 4;
    // Off-policy mini-batches: the ratio sees the adapters move within a step.
    c.grpo.steps_per_generation = 2;
    c.validate().unwrap();
    c
}

fn teacher(cfg: &Config) -> LmPolicy {
    let mut m =
        LoadedModel::load(&cfg.teacher.model, Device::Cpu, Kind::Float).expect("tiny-qwen2 loads");
    m.model
        .add_lora(cfg.teacher.lora.as_ref().unwrap(), cfg.run.seed as i64)
        .unwrap();
    LmPolicy::new(m)
}

fn run(dir: &Path, steps: u64, resume: bool) -> (RunSummary, Vec<(String, Tensor)>) {
    let cfg = lora_config(steps);
    let parts = parts_with(teacher(&cfg), parity_student(), 7);
    let mut t = if resume {
        Trainer::resume(cfg, parts, dir).unwrap()
    } else {
        Trainer::new(cfg, parts, dir).unwrap()
    }
    .with_progress(false);
    let summary = t.run().unwrap();
    let vars = sorted_copy(t.policy().vars());
    (summary, vars)
}

/// A copy of every variable of `vs`, sorted by name.
fn sorted_copy(vs: &tch::nn::VarStore) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, v)| (n, v.detach().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len()
}

#[test]
fn lora_teacher_trains_checkpoints_small_and_resumes_bit_exact() {
    let whole = tempfile::tempdir().unwrap();
    let (summary, trained) = run(whole.path(), 4, false);
    assert_eq!(summary.steps, 4);
    assert!(
        summary.metrics.iter().any(|m| m.tied_groups < m.groups),
        "every group tied: no gradient to test"
    );
    assert!(summary.metrics.iter().all(|m| m.optimizer_steps == 2));

    // Only the adapters moved.
    let base = sorted_copy(teacher(&lora_config(4)).vars());
    let mut moved = 0;
    for ((n, before), (_, after)) in base.iter().zip(&trained) {
        if n.contains(".lora_") {
            moved += usize::from(!before.equal(after));
        } else {
            assert!(before.equal(after), "base weight {n} changed");
        }
    }
    assert!(moved > 0, "no adapter moved in 4 steps");

    // The checkpoint: PEFT's files, no full weights, a small fraction of the model.
    let ckpt = summary.checkpoint.clone().unwrap();
    assert!(!ckpt.join(checkpoint::MODEL_FILE).exists());
    let adapters = file_size(&ckpt.join(checkpoint::ADAPTER_FILE));
    let optimizer = file_size(&ckpt.join(checkpoint::OPTIMIZER_FILE));
    let model = file_size(&tiny_qwen2().join("model.safetensors"));
    // A full checkpoint holds the f32 weights and two f32 moments of each.
    let fraction = (adapters + optimizer) as f64 / (3 * model) as f64;
    eprintln!(
        "LoRA checkpoint: adapters {adapters} B ({:.1}% of the model's {model} B) + optimizer \
         {optimizer} B = {:.1}% of a full checkpoint",
        100.0 * adapters as f64 / model as f64,
        100.0 * fraction
    );
    // (This model has hidden size 64; at Qwen2.5-0.5B's shapes rank 16 is about 1%.)
    assert!(
        adapters * 10 < model,
        "adapters {adapters} B, model {model} B"
    );
    assert!(
        fraction < 0.1,
        "LoRA checkpoint is {fraction} of a full one"
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join(checkpoint::ADAPTER_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["r"], 4);
    assert_eq!(json["lora_alpha"], 8.0);
    assert_eq!(json["target_modules"].as_array().unwrap().len(), 7);
    let names = Tensor::read_safetensors(ckpt.join(checkpoint::ADAPTER_FILE)).unwrap();
    assert_eq!(names.len(), 2 * 7 * 2);
    assert!(names
        .iter()
        .all(|(n, _)| n.starts_with("base_model.model.model.layers.")));

    // Stopped after 2 steps and resumed: the same adapters, bit for bit, and the same metrics.
    let split = tempfile::tempdir().unwrap();
    let (first, _) = run(split.path(), 2, false);
    assert_eq!(first.steps, 2);
    let (rest, resumed) = run(split.path(), 4, true);
    assert_eq!(rest.metrics.len(), 2);
    for ((n, a), (_, b)) in trained.iter().zip(&resumed) {
        assert!(a.equal(b), "{n} differs after resume");
    }
    for (a, b) in summary.metrics[2..].iter().zip(&rest.metrics) {
        assert_eq!(
            (a.loss, a.reward, a.grad_norm, a.ratio_mean),
            (b.loss, b.reward, b.grad_norm, b.ratio_mean)
        );
    }

    // The checkpoint loads as the trained model: base + adapters, the same log-probabilities.
    let loaded = LoadedModel::load(ckpt.to_str().unwrap(), Device::Cpu, Kind::Float).unwrap();
    assert_eq!(loaded.model.lora().map(|l| l.rank), Some(4));
    let trained_policy = {
        let cfg = lora_config(4);
        let p = teacher(&cfg);
        let mut store = wst_models::WeightStore::from_tensors(
            trained.iter().map(|(n, t)| (n.clone(), t.copy())).collect(),
            "trained",
        );
        store.load_into(p.vars()).unwrap();
        p
    };
    let ids = Tensor::from_slice(&[1i64, 5, 9, 33, 200, 7]).view([1, 6]);
    let a = loaded.model.forward(&ids, None).unwrap();
    let b = tch::no_grad(|| trained_policy.model().model.forward(&ids, None)).unwrap();
    assert!(a.equal(&b), "the loaded checkpoint computes otherwise");
}
