//! Reports: the per-step table from rollouts (polars) and `metrics.jsonl`.

use wst_core::RolloutSink;
use wst_data::{run_report, RolloutStore};

use crate::rollouts::records;

#[test]
fn per_step_table_from_rollouts_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RolloutStore::open(dir.path()).unwrap();
    let mut s0 = records("r", 0, 8);
    for r in &mut s0 {
        r.reward_mean = Some(0.5);
        r.reward = Some(0.2);
        r.instruction_tokens = 10;
        r.truncated = false;
    }
    s0[0].truncated = true;
    let mut s1 = records("r", 1, 4);
    for r in &mut s1 {
        r.reward_mean = Some(0.75);
        r.reward = Some(0.45);
        r.instruction_tokens = 20;
    }
    s1[3].reward_mean = None;
    s1[3].reward = None;
    // Written out of order: the report sorts by step.
    store.write_step(1, &s1).unwrap();
    store.write_step(0, &s0).unwrap();
    std::fs::write(
        dir.path().join("metrics.jsonl"),
        "{\"step\":0,\"loss\":0.5,\"kl\":0.0,\"lr\":1e-6}\n{\"step\":1,\"loss\":0.25,\"kl\":0.01,\"lr\":1e-6}\n",
    )
    .unwrap();

    let rep = run_report(dir.path()).unwrap();
    assert_eq!(rep.steps.len(), 2);
    let (a, b) = (&rep.steps[0], &rep.steps[1]);
    assert_eq!((a.step, a.samples), (0, 8));
    assert_eq!(a.reward_mean, Some(0.5));
    assert!((a.uplift.unwrap() - 0.2).abs() < 1e-12);
    assert_eq!(a.baseline, Some(0.3));
    assert_eq!(a.instruction_tokens, Some(10.0));
    assert_eq!(a.truncated_frac, Some(1.0 / 8.0));
    assert_eq!((a.replies, a.failures), (24, 2));
    assert_eq!(a.metrics["loss"], 0.5);
    // Samples with no reward (all replies failed) are left out of the means.
    assert_eq!(b.reward_mean, Some(0.75));
    assert!((b.uplift.unwrap() - 0.45).abs() < 1e-12);
    assert_eq!(b.instruction_tokens, Some(20.0));
    assert_eq!(rep.frame.height(), 2);

    let table = rep.to_table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[1].contains("uplift") && lines[1].contains("loss") && lines[1].contains("instr_tok"),
        "{table}"
    );
    assert!(
        lines[2].trim_start().starts_with('0') && lines[2].contains("0.2000"),
        "{table}"
    );
    assert!(
        lines[3].contains("0.4500") && lines[3].contains("0.2500"),
        "{table}"
    );
    assert!(table.contains("2 steps"), "{table}");
}

#[test]
fn report_without_metrics_and_with_bad_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let store = RolloutStore::open(dir.path()).unwrap();
    store.write(0, &records("r", 0, 3)).unwrap();
    let rep = run_report(dir.path()).unwrap();
    assert!(rep.steps[0].metrics.is_empty());
    assert!(!rep.to_table().contains("loss"));
    std::fs::write(dir.path().join("metrics.jsonl"), "{\"step\":0}\n{oops\n").unwrap();
    let e = run_report(dir.path()).unwrap_err().to_string();
    assert!(e.contains("metrics.jsonl") && e.contains("line 2"), "{e}");
}
