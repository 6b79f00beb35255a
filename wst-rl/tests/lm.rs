//! The decoder-LM teacher ([`LmPolicy`]) on the tiny random Qwen2 of the reference vectors:
//! sampling is seeded and grouped, the scorer agrees with the sampler and with full logits, and
//! the trainer runs, checkpoints and reloads it.

use tch::{Device, Kind, Tensor};
use wst_core::{ChatPrompt, MemoryBaselines, MemorySink, SamplingParams};
use wst_models::LoadedModel;
use wst_rl::{completion_logprobs, Draw, LmPolicy, Parts, Policy, TokenBatch, Trainer};

use crate::support::*;

fn teacher() -> LmPolicy {
    let model = LoadedModel::load(tiny_qwen2().to_str().unwrap(), Device::Cpu, Kind::Float)
        .expect("tiny-qwen2 loads");
    LmPolicy::new(model)
}

fn prompt(text: &str) -> ChatPrompt {
    ChatPrompt {
        system: Some("Write an instruction.".into()),
        user: text.into(),
    }
}

/// The teacher and its prompts for `questions`.
fn encoded(questions: &[&str]) -> (LmPolicy, Vec<Vec<i64>>) {
    let p = teacher();
    let prompts = questions
        .iter()
        .map(|q| p.encode_prompt(&prompt(q)).unwrap())
        .collect();
    (p, prompts)
}

fn sampling(max_new: usize) -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        max_new_tokens: max_new,
        ..SamplingParams::default()
    }
}

#[test]
fn lm_policy_samples_grouped_and_seeded() {
    let (mut p, prompts) = encoded(&["What is 2 + 3?", "A longer question: what is 7 + 8?"]);
    assert_ne!(prompts[0].len(), prompts[1].len());
    let params = sampling(12);
    let draw = |seed| Draw {
        n: 3,
        params: &params,
        seed,
    };
    let a = p.sample(&prompts, draw(42)).unwrap();
    let b = p.sample(&prompts, draw(42)).unwrap();
    let c = p.sample(&prompts, draw(43)).unwrap();
    assert_eq!(a.len(), 2);
    assert!(a.iter().all(|g| g.len() == 3));
    assert_eq!(a, b, "same seed, same samples");
    assert_ne!(a, c, "another seed, other samples");
    let eos: Vec<i64> = p
        .model()
        .eos_token_ids
        .iter()
        .map(|&t| i64::from(t))
        .collect();
    for s in a.iter().flatten() {
        assert_eq!(s.tokens.len(), s.logprobs.len());
        assert!(!s.tokens.is_empty() && s.tokens.len() <= 12);
        let stopped = eos.contains(s.tokens.last().unwrap());
        assert_eq!(s.truncated, !stopped, "{s:?}");
        assert!(s.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0));
    }
}

#[test]
fn lm_policy_scores_what_it_sampled() {
    let (mut p, prompts) = encoded(&["What is 1 + 1?", "Add nine and four, then say the sum."]);
    let draw = Draw {
        n: 2,
        params: &sampling(10),
        seed: 5,
    };
    let groups = p.sample(&prompts, draw).unwrap();
    let mut pairs = Vec::new();
    let mut sampled = Vec::new();
    for (prompt, group) in prompts.iter().zip(&groups) {
        for s in group {
            pairs.push((prompt.as_slice(), s.tokens.as_slice()));
            sampled.push(s.logprobs.clone());
        }
    }
    let batch = TokenBatch::new(&pairs, p.pad_id(), Device::Cpu).unwrap();
    let fast = p.token_logprobs(&batch).unwrap();
    let full = completion_logprobs(&p.logits(&batch).unwrap(), &batch);
    let mask = &batch.completion_mask;
    let diff = ((&fast - &full) * mask).abs().max().double_value(&[]);
    assert!(
        diff < 1e-4,
        "chunked log-probs differ from full logits by {diff}"
    );
    // The scorer (temperature 1) gives the sampler's log-probabilities.
    for (row, lps) in sampled.iter().enumerate() {
        for (j, &lp) in lps.iter().enumerate() {
            let got = fast.double_value(&[row as i64, j as i64]);
            assert!(
                (got - f64::from(lp)).abs() < 1e-3,
                "row {row} token {j}: scored {got}, sampled {lp}"
            );
        }
    }
    // Differentiable with respect to the weights.
    let loss = (fast * mask).sum(Kind::Float);
    loss.backward();
    let grads: f64 = p
        .vars()
        .trainable_variables()
        .iter()
        .map(|v| v.grad().abs().sum(Kind::Float).double_value(&[]))
        .sum();
    assert!(grads > 0.0);
}

#[test]
fn trainer_runs_the_lm_teacher_and_its_checkpoint_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(2, 3);
    cfg.teacher.sampling = sampling(6);
    cfg.grpo.batch_size = 2;
    cfg.grpo.group_size = 4;
    cfg.grpo.lr = 1e-3;
    cfg.grpo.beta = 0.05;
    let mut sink = MemorySink::default();
    let mut baselines = MemoryBaselines::default();
    let mut reference = teacher();
    let before: Vec<(String, Tensor)> = {
        let mut v: Vec<_> = reference.vars().variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
    };
    reference = LmPolicy::frozen(reference.into_model());
    let parts = Parts {
        reference: Some(Box::new(reference)),
        sink: Box::new(&mut sink),
        baselines: Box::new(&mut baselines),
        ..parts_with(teacher(), parity_student(), 3)
    };
    let mut t = Trainer::new(cfg, parts, dir.path())
        .unwrap()
        .with_progress(false);
    let summary = t.run().unwrap();
    assert_eq!(summary.steps, 2);
    assert!(summary.metrics[0].kl.abs() < 1e-6, "KL to itself at step 1");
    assert!(
        summary.metrics.iter().any(|m| m.tied_groups < m.groups),
        "every group tied: no gradient to test"
    );
    let after: Vec<(String, Tensor)> = {
        let mut v: Vec<_> = t.policy().vars().variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    drop(t);
    assert_eq!(sink.records.len(), 2 * 2 * 4);
    let ckpt = summary.checkpoint.unwrap().join("model.safetensors");
    let mut reloaded = teacher();
    reloaded.load_weights(&ckpt).unwrap();
    let mut reloaded_vars: Vec<_> = reloaded.vars().variables().into_iter().collect();
    reloaded_vars.sort_by(|a, b| a.0.cmp(&b.0));
    for ((n, a), (_, b)) in after.iter().zip(&reloaded_vars) {
        assert!(a.equal(b), "{n} differs after reload");
    }
    let changed = before
        .iter()
        .zip(&after)
        .filter(|((_, a), (_, b))| !a.equal(b))
        .count();
    assert!(changed > 0, "two steps at lr 1e-3 changed no weight");
    // A wrong file is a named error, not a panic.
    let err = reloaded
        .load_weights(&dir.path().join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.safetensors"), "{err}");
}
