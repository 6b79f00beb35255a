//! The loss variants and options of `[grpo]` through the trainer: every loss type learns the tiny
//! task, `steps_per_generation` takes several off-policy steps per generation and resumes
//! exactly, `mask_truncated_completions` keeps cut instructions out of the update.

use std::path::Path;

use tch::Tensor;
use wst_core::{Config, LossType, MemorySink};
use wst_rl::metrics::StepMetrics;
use wst_rl::{checkpoint, Parts, Trainer};

use crate::support::*;

fn train(cfg: Config, dir: &Path) -> Vec<StepMetrics> {
    let seed = cfg.run.seed;
    let mut t = Trainer::new(cfg, mock_parts(seed), dir)
        .unwrap()
        .with_progress(false);
    t.run().unwrap().metrics
}

fn with_loss(lt: LossType, cfg: &mut Config) {
    cfg.grpo.loss_type = lt;
    if lt == LossType::Cispo {
        cfg.grpo.epsilon_high = Some(5.0);
    }
}

#[test]
fn every_loss_type_learns_the_tiny_task_off_policy() {
    for lt in LossType::ALL {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(30, 7);
        with_loss(lt, &mut cfg);
        cfg.grpo.steps_per_generation = 2;
        cfg.grpo.micro_batch_size = 5;
        let m = train(cfg, dir.path());
        let rewards: Vec<f64> = m.iter().map(|m| m.reward).collect();
        let last = rewards[rewards.len() - 3..].iter().sum::<f64>() / 3.0;
        eprintln!("{lt}: rewards {rewards:.2?}");
        assert!(rewards[0] < 0.3, "{lt}: {rewards:?}");
        assert!(last >= 0.8, "{lt}: last 3 steps {last}: {rewards:?}");
        for s in m.iter().filter(|s| s.optimizer_steps > 0) {
            assert!(s.entropy > 0.0 && s.entropy.is_finite(), "{lt}: {s:?}");
            assert!(s.optimizer_steps <= 2, "{lt}: {s:?}");
        }
        // The second mini-batch of a step is scored against the policy before the first
        // step: ratios leave 1.
        assert!(
            m.iter().any(|s| (s.ratio_mean - 1.0).abs() > 1e-4),
            "{lt}: the ratio never moved"
        );
        assert_eq!(m[0].optimizer_steps, 2, "{lt}: {:?}", m[0]);
    }
}

fn final_weights(dir: &Path) -> Vec<(String, Tensor)> {
    let (_, ckpt) = checkpoint::latest(dir).unwrap().unwrap();
    let mut w = Tensor::read_safetensors(ckpt.join(checkpoint::MODEL_FILE)).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn steps_per_generation_with_reuse_resumes_bit_exactly() {
    let cfg = |steps| {
        let mut c = config(steps, 5);
        c.grpo.steps_per_generation = 4;
        c.grpo.num_iterations = 2;
        c.grpo.top_entropy_quantile = 0.5;
        with_loss(LossType::Gspo, &mut c);
        c
    };
    let straight = tempfile::tempdir().unwrap();
    let m = train(cfg(4), straight.path());
    assert!(m.iter().all(|s| s.optimizer_steps <= 8), "{m:?}");
    assert!(
        m.iter().any(|s| s.clip_frac > 0.0),
        "clipping is exercised: {m:?}"
    );

    let split = tempfile::tempdir().unwrap();
    train(cfg(2), split.path());
    let mut t = Trainer::resume(cfg(4), mock_parts(5), split.path())
        .unwrap()
        .with_progress(false);
    let rest = t.run().unwrap().metrics;
    drop(t);
    assert_eq!(rest.len(), 2);
    let (a, b) = (final_weights(straight.path()), final_weights(split.path()));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
    for (x, y) in m[2..].iter().zip(&rest) {
        assert_eq!(x.loss, y.loss);
        assert_eq!(x.entropy, y.entropy);
    }
}

#[test]
fn masked_truncated_completions_leave_the_update() {
    // Over 12 steps the teacher learns; many of its instructions are cut at 4 tokens.
    let run = |mask: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(12, 7);
        cfg.grpo.mask_truncated_completions = mask;
        let mut sink = MemorySink::default();
        let parts = Parts {
            sink: Box::new(&mut sink),
            ..mock_parts(7)
        };
        let mut t = Trainer::new(cfg, parts, dir.path())
            .unwrap()
            .with_progress(false);
        let m = t.run().unwrap().metrics;
        drop(t);
        let mut cut = 0;
        for s in &m {
            let rec = || sink.records.iter().filter(|r| r.step == s.step);
            // The tokens the update should score: samples with an advantage, less the cut ones.
            let expect: u32 = rec()
                .filter(|r| r.advantage != 0.0 && !(mask && r.truncated))
                .map(|r| r.instruction_tokens)
                .sum();
            assert_eq!(s.update_tokens, f64::from(expect), "mask {mask}: {s:?}");
            cut += rec().filter(|r| r.advantage != 0.0 && r.truncated).count();
        }
        cut
    };
    assert!(
        run(true) > 0,
        "no sample with an advantage was cut: the test lost its point"
    );
    assert!(run(false) > 0);
}
