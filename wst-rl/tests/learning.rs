//! The trainer learns: a tiny random teacher discovers the instruction that makes the mock
//! student succeed.

use wst_core::{MemoryBaselines, MemorySink};
use wst_rl::{Parts, Trainer};

use crate::support::*;

const STEPS: u64 = 40;

#[test]
fn tiny_teacher_learns_to_instruct_the_mock_student() {
    let metrics = learns(false);
    assert!(metrics.iter().all(|m| m.staleness == 0));
}

/// Under `grpo.async` every update but the first trains on samples one update old, and the
/// teacher learns the same instruction.
#[test]
fn tiny_teacher_learns_with_asynchronous_rollouts() {
    let metrics = learns(true);
    let staleness: Vec<u64> = metrics.iter().map(|m| m.staleness).collect();
    assert_eq!(staleness[0], 0);
    assert!(staleness[1..].iter().all(|&s| s == 1), "{staleness:?}");
    assert!(metrics.iter().all(|m| m.t_teacher_wait >= 0.0));
    // Off-policy by one update: the ratios are not all exactly 1.
    assert!(
        metrics.iter().any(|m| (m.ratio_mean - 1.0).abs() > 1e-7),
        "{:?}",
        metrics.iter().map(|m| m.ratio_mean).collect::<Vec<_>>()
    );
}

fn learns(async_rollouts: bool) -> Vec<wst_rl::StepMetrics> {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(STEPS, 7);
    cfg.grpo.async_rollouts = async_rollouts;
    let mut sink = MemorySink::default();
    let mut baselines = MemoryBaselines::default();
    let parts = Parts {
        sink: Box::new(&mut sink),
        baselines: Box::new(&mut baselines),
        ..mock_parts(7)
    };
    let mut t = Trainer::new(cfg, parts, dir.path())
        .unwrap()
        .with_progress(false);
    let summary = t.run().unwrap();
    drop(t);
    let rewards: Vec<f64> = summary.metrics.iter().map(|m| m.reward).collect();
    let first = rewards[0];
    let last = rewards[rewards.len() - 3..].iter().sum::<f64>() / 3.0;
    eprintln!("rewards: {rewards:.2?}");
    assert!(
        first < 0.3,
        "the untrained teacher already succeeds: {first}"
    );
    assert!(
        last >= 0.9,
        "mean reward of the last 3 steps {last} < 0.9: {rewards:?}"
    );
    // Baselines: the student alone never succeeds, so the uplift equals the reward.
    let m = summary.metrics.last().unwrap();
    assert!((m.uplift - m.reward).abs() < 1e-12 && m.baseline == 0.0);
    assert_eq!(baselines.0.len(), 20);
    assert_eq!(sink.records.len(), STEPS as usize * 4 * 8);
    // Metrics were written, one line per step.
    let lines = wst_rl::metrics::read(&dir.path().join(wst_rl::METRICS_FILE)).unwrap();
    assert_eq!(lines.len() as u64, STEPS);
    assert!(dir
        .path()
        .join("checkpoints/step-00000040/model.safetensors")
        .exists());
    // The run's last checkpoint has nothing pending.
    assert!(!dir
        .path()
        .join("checkpoints/step-00000040")
        .join(wst_rl::checkpoint::PENDING_FILE)
        .exists());
    lines
}

#[test]
fn kl_to_a_frozen_reference_starts_at_zero_and_grows() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(6, 11);
    cfg.grpo.beta = 0.05;
    let parts = Parts {
        reference: Some(Box::new(policy(11))),
        ..mock_parts(11)
    };
    let mut t = Trainer::new(cfg, parts, dir.path())
        .unwrap()
        .with_progress(false);
    let m = t.run().unwrap().metrics;
    assert_eq!(m[0].kl, 0.0, "the policy starts as its reference");
    assert!(m[5].kl > 0.0 && m[5].kl.is_finite(), "{:?}", m[5]);
    assert!(!t.policy().vars().is_empty());

    // Without a reference, beta > 0 is refused.
    let mut cfg = config(1, 11);
    cfg.grpo.beta = 0.05;
    let e = Trainer::new(cfg, mock_parts(11), dir.path().join("b")).unwrap_err();
    assert!(e.to_string().contains("reference"), "{e}");
}

#[test]
fn baselines_are_computed_once_and_cached() {
    let cfg = config(1, 2);
    let mut student = mock_student();
    let mut store = MemoryBaselines::default();
    let baselines = |student: &mut MockStudent, store: &mut MemoryBaselines, limit| {
        let src = &mut source(2);
        wst_rl::collect::compute_baselines(&cfg, student, &mut ExactReward, src, store, limit, 8)
            .unwrap()
    };
    let r = baselines(&mut student, &mut store, None);
    assert_eq!(r.values.len(), 20);
    assert_eq!(r.computed, 20);
    assert_eq!(student.calls, 3); // 8 + 8 + 4
    assert!(r.values.iter().all(|(_, s)| *s == 0.0)); // the mock student fails alone
    let again = baselines(&mut student, &mut store, Some(5));
    assert_eq!(
        (again.computed, again.values.len(), student.calls),
        (0, 5, 3)
    );
}
