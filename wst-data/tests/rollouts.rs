//! The rollout store: atomic step files, identical round trips (also through proptest), an
//! external reader (pyarrow), and a writer killed mid-write.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use wst_core::{RewardComponents, RolloutRecord, RolloutSink};
use wst_data::{read_rollouts, rollout_files, RolloutStore};

/// `n` realistic records of one step: K = 3 replies, the second of sample 1 failed.
pub fn records(run: &str, step: u64, n: usize) -> Vec<RolloutRecord> {
    (0..n)
        .map(|i| {
            let failed = i % 4 == 1;
            let replies = vec![
                Some(format!("The answer is {i}. ünïcødé ✓")),
                (!failed).then(|| "I think 7".to_string()),
                Some(String::new()),
            ];
            let comp = |c: f64| RewardComponents::from_pairs([("correct", c), ("format", 0.5)]);
            let reward_components = vec![
                comp(1.0),
                if failed {
                    RewardComponents::default()
                } else {
                    comp(0.0)
                },
                comp(0.0),
            ];
            let rewards = vec![Some(1.0), (!failed).then_some(0.0), Some(0.0)];
            let done: Vec<f64> = rewards.iter().flatten().copied().collect();
            let reward_mean = done.iter().sum::<f64>() / done.len() as f64;
            RolloutRecord {
                run_id: run.into(),
                step,
                query_id: format!("arith/single-digit/{}+{}", i % 10, i % 7),
                query: format!("What is {} + {}?", i % 10, i % 7),
                group_index: (i % 4) as u32,
                instruction: format!("Add carefully, sample {i}."),
                instruction_tokens: 5 + i as u32,
                truncated: i % 5 == 0,
                replies,
                reward_components,
                rewards,
                reward_mean: Some(reward_mean),
                baseline: 0.3,
                reward: Some(reward_mean - 0.3),
                advantage: (i as f64 - 2.0) / 3.0,
                teacher_logprob_sum: -1.25 * i as f64,
                created_ms: 1_700_000_000_000 + i as i64,
                scored_ms: 1_700_000_000_500 + i as i64,
            }
        })
        .collect()
}

#[test]
fn steps_round_trip_identically_and_rewrites_replace() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RolloutStore::open(dir.path()).unwrap();
    let s0 = records("run-a", 0, 9);
    let s1 = records("run-a", 1, 4);
    store.write_step(0, &s0).unwrap();
    store.write_step(1, &s1).unwrap();
    assert!(store.step_path(1).ends_with("rollouts/step-000001.parquet"));
    assert_eq!(store.steps().unwrap(), vec![0, 1]);
    assert_eq!(store.read_step(0).unwrap(), s0);
    let all = read_rollouts(dir.path()).unwrap();
    assert_eq!(all, [s0.clone(), s1].concat());

    // A resumed run redoing step 1 replaces its file.
    let redo = records("run-a", 1, 2);
    store.write_step(1, &redo).unwrap();
    assert_eq!(store.read_all().unwrap(), [s0, redo].concat());
    let names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "no temp files remain: {names:?}");

    // Records must belong to the step they are written as.
    let e = store
        .write(5, &records("run-a", 4, 1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("step 4") && e.contains("step 5"), "{e}");
    // An empty step is a valid (empty) file.
    let before = store.read_all().unwrap().len();
    store.write(6, &[]).unwrap();
    assert!(store.read_step(6).unwrap().is_empty());
    assert_eq!(store.read_all().unwrap().len(), before);
    assert_eq!(wst_data::run_report(dir.path()).unwrap().steps.len(), 2);
}

#[test]
fn missing_run_and_foreign_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = read_rollouts(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("rollouts"), "{e}");
    let store = RolloutStore::open(dir.path()).unwrap();
    let e = read_rollouts(dir.path()).unwrap_err().to_string();
    assert!(e.contains("no data files"), "{e}");
    // A Parquet file of another schema in the rollout folder names the missing column.
    std::fs::copy(
        crate::common::shared("gsm8k/test.parquet"),
        store.step_path(3),
    )
    .unwrap();
    let e = read_rollouts(dir.path()).unwrap_err();
    let msg = wst_core::error_chain(&e);
    assert!(
        msg.contains("step-000003.parquet") || msg.contains("run_id"),
        "{msg}"
    );
}

#[test]
fn pyarrow_reads_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let store = RolloutStore::open(dir.path()).unwrap();
    let recs = records("run-py", 3, 6);
    let path = store.write(3, &recs).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ensure-pyarrow.sh");
    let out = Command::new("bash").arg(script).output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let code = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
print(json.dumps({
    "rows": t.num_rows,
    "columns": t.column_names,
    "types": {f.name: str(f.type) for f in t.schema},
    "step": t.column("step").to_pylist(),
    "replies": t.column("replies").to_pylist(),
    "rewards": t.column("rewards").to_pylist(),
    "names": t.column("reward_component_names").to_pylist(),
    "values": t.column("reward_component_values").to_pylist(),
    "reward_mean": t.column("reward_mean").to_pylist(),
    "failures": t.column("failures").to_pylist(),
}))
"#;
    let out = Command::new(&python)
        .args(["-c", code])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 6);
    let cols: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = wst_data::ROLLOUT_SCHEMA_DOC.iter().map(|c| c.0).collect();
    assert_eq!(cols, ours);
    assert_eq!(v["types"]["replies"], "list<item: string>");
    assert_eq!(
        v["types"]["reward_component_values"],
        "list<item: list<item: double>>"
    );
    assert_eq!(v["types"]["step"], "uint64");
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(v["step"][i], 3);
        let replies: Vec<Option<String>> = serde_json::from_value(v["replies"][i].clone()).unwrap();
        assert_eq!(replies, r.replies);
        let rewards: Vec<Option<f64>> = serde_json::from_value(v["rewards"][i].clone()).unwrap();
        assert_eq!(rewards, r.rewards);
        assert_eq!(v["names"][i], serde_json::json!(["correct", "format"]));
        assert_eq!(v["values"][i][0], serde_json::json!([1.0, 0.5]));
        assert_eq!(v["reward_mean"][i].as_f64(), r.reward_mean);
        assert_eq!(v["failures"][i], r.failures());
    }
    assert_eq!(
        v["values"][1][1],
        serde_json::json!([null, null]),
        "failed reply has no components"
    );
}

const CHILD_ENV: &str = "WST_DATA_KILL_TEST_DIR";

/// In the child: writes big steps forever, until killed.
fn child_writer(dir: &Path) -> ! {
    let store = RolloutStore::open(dir).unwrap();
    let mut recs = records("run-kill", 0, 3000);
    for r in &mut recs {
        r.instruction = r.instruction.repeat(40);
    }
    for step in 0.. {
        for r in &mut recs {
            r.step = step;
        }
        store.write(step, &recs).unwrap();
    }
    unreachable!()
}

#[test]
fn killed_writer_leaves_no_partial_parquet() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child_writer(Path::new(&dir));
    }
    let mut killed_mid_write = 0;
    for attempt in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rollouts::killed_writer_leaves_no_partial_parquet",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let rdir = dir.path().join("rollouts");
        let start = Instant::now();
        // Wait until one step is complete and the next is being written, then kill.
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "child wrote nothing"
            );
            let names: Vec<String> = std::fs::read_dir(&rdir)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let complete = names.iter().any(|n| n.ends_with(".parquet"));
            let writing = names.iter().any(|n| n.contains(".tmp-"));
            if complete && writing {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("child writer exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let names: Vec<String> = std::fs::read_dir(&rdir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if names.iter().any(|n| n.contains(".tmp-")) {
            killed_mid_write += 1;
        }
        // Every `.parquet` file is whole: it reads back with all its rows.
        let files = rollout_files(dir.path()).unwrap();
        assert!(!files.is_empty());
        for (step, path) in &files {
            let recs = wst_data::read_rollout_file(path)
                .unwrap_or_else(|e| panic!("attempt {attempt}: {}: {e}", path.display()));
            assert_eq!(recs.len(), 3000);
            assert!(recs.iter().all(|r| r.step == *step));
        }
        assert_eq!(
            names.iter().filter(|n| n.ends_with(".parquet")).count(),
            files.len(),
            "{names:?}"
        );
        // Reopening (a resumed run) clears the partial temp file.
        RolloutStore::open(dir.path()).unwrap();
        let left = std::fs::read_dir(&rdir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .count();
        assert_eq!(left, 0);
        if killed_mid_write >= 2 {
            break;
        }
    }
    assert!(killed_mid_write >= 1, "never caught the writer mid-write");
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s).{0,40}").unwrap()
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        -1e9f64..1e9,
        Just(f64::MIN_POSITIVE),
        Just(f64::MAX)
    ]
}

prop_compose! {
    fn record()(
        run_id in text(),
        query_id in text(),
        query in text(),
        group_index in any::<u32>(),
        instruction in text(),
        instruction_tokens in any::<u32>(),
        truncated in any::<bool>(),
        replies in proptest::collection::vec(proptest::option::of(text()), 0..5),
        reward_components in proptest::collection::vec(
            proptest::collection::btree_map("[a-z]{1,8}", finite(), 0..4).prop_map(RewardComponents),
            0..5,
        ),
        rewards in proptest::collection::vec(proptest::option::of(finite()), 0..5),
        reward_mean in proptest::option::of(finite()),
        baseline in finite(),
        reward in proptest::option::of(finite()),
        advantage in finite(),
        teacher_logprob_sum in finite(),
        created_ms in any::<i64>(),
        scored_ms in any::<i64>(),
    ) -> RolloutRecord {
        RolloutRecord {
            run_id, step: 2, query_id, query, group_index, instruction, instruction_tokens,
            truncated, replies, reward_components, rewards, reward_mean, baseline, reward,
            advantage, teacher_logprob_sum, created_ms, scored_ms,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_records_round_trip_through_parquet(recs in proptest::collection::vec(record(), 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let store = RolloutStore::open(dir.path()).unwrap();
        store.write(2, &recs).unwrap();
        prop_assert_eq!(store.read_step(2).unwrap(), recs);
    }
}
