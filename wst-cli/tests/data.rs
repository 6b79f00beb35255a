//! `wst data stats` and `wst report`.

use std::path::PathBuf;
use std::process::Output;

use crate::{ok, write_file, wst};

fn shared(rel: &str) -> PathBuf {
    let p = crate::shared().join("data").join(rel);
    assert!(p.exists(), "offline test asset {} is missing", p.display());
    p
}

/// The stdout of a command that succeeded.
fn ok_stdout(out: Output) -> String {
    String::from_utf8(ok(out).stdout).unwrap()
}

/// `wst data stats ARGS...`, run to its end.
fn data_stats(args: &[&str]) -> Output {
    wst().args(["data", "stats"]).args(args).output().unwrap()
}

#[test]
fn data_stats_prints_rows_columns_and_examples() {
    let gsm8k = shared("gsm8k/test.jsonl");
    let text = ok_stdout(data_stats(&[
        "--dataset",
        "gsm8k",
        "--path",
        gsm8k.to_str().unwrap(),
    ]));
    assert!(text.contains("rows        1319"), "{text}");
    assert!(text.contains("columns     answer, question"), "{text}");
    assert!(
        text.contains("example 1: gsm8k/test/0") && text.contains("example 2: gsm8k/test/1"),
        "{text}"
    );
    assert!(text.contains("reference: 18"), "{text}");

    let hh = shared("hh-rlhf/helpful-base/test.parquet");
    let out = data_stats(&["--dataset", "hh-rlhf", "--path", hh.to_str().unwrap()]);
    assert!(ok_stdout(out).contains("rows        2354"));

    let text = ok_stdout(data_stats(&[
        "--dataset",
        "arith",
        "--split",
        "held-out",
        "--arith-level",
        "two-digit",
    ]));
    assert!(
        text.contains("dataset     arith/two-digit/held-out") && text.contains("What is "),
        "{text}"
    );
}

#[test]
fn data_stats_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_file(
        dir.path(),
        "g.jsonl",
        "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": 1}\n",
    );
    let p = p.to_str().unwrap();
    let out = data_stats(&["--dataset", "gsm8k", "--path", p]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("g.jsonl") && err.contains("line 2"), "{err}");

    let out = data_stats(&["--skip-bad-rows", "--dataset", "gsm8k", "--path", p]);
    let text = ok_stdout(out);
    assert!(
        text.contains("(1 queries, 1 skipped)") && text.contains("line 2"),
        "{text}"
    );
}

#[test]
fn report_prints_the_step_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = wst_data::RolloutStore::open(dir.path()).unwrap();
    for step in 0..3u64 {
        let recs: Vec<wst_core::RolloutRecord> = (0..4)
            .map(|i| wst_core::RolloutRecord {
                run_id: "cli".into(),
                step,
                query_id: format!("q{i}"),
                query: "What is 1 + 1?".into(),
                group_index: i,
                instruction: "Add.".into(),
                instruction_tokens: 3,
                truncated: false,
                replies: vec![Some("2".into()), None],
                reward_components: vec![
                    wst_core::RewardComponents::from_pairs([("correct", 1.0)]),
                    Default::default(),
                ],
                rewards: vec![Some(1.0), None],
                reward_mean: Some(1.0),
                baseline: 0.25,
                reward: Some(0.75),
                advantage: 0.0,
                teacher_logprob_sum: -3.0,
                created_ms: 0,
                scored_ms: 0,
            })
            .collect();
        store.write(step, &recs).unwrap();
    }
    let out = wst().arg("report").arg(dir.path()).output().unwrap();
    let text = ok_stdout(out);
    assert!(
        text.contains("uplift") && text.contains("0.7500") && text.contains("4/8"),
        "{text}"
    );
    assert!(text.contains("3 steps"), "{text}");

    let out = wst()
        .arg("report")
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("none"));
}
