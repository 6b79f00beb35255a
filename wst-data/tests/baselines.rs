//! The Parquet baseline store: lookups, appends, reuse across runs, concurrent appenders.

use wst_core::{stable_hash, BaselineKey, BaselineStore, BaselineValue, SamplingParams};
use wst_data::ParquetBaselines;

fn key(q: usize, temperature: f32) -> BaselineKey {
    BaselineKey {
        student_id: "local:SmolLM2-135M".into(),
        dataset: "arith/single-digit/train".into(),
        query_id: format!("arith/single-digit/{q}+1"),
        template_hash: stable_hash(&["What is {{ query }}?"]),
        sampling: SamplingParams {
            temperature,
            ..SamplingParams::default()
        }
        .cache_key(),
    }
}

fn value(mean: f64) -> BaselineValue {
    BaselineValue {
        mean,
        samples: 10,
        failures: 0,
    }
}

#[test]
fn values_persist_across_runs_and_keys_separate_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ParquetBaselines::open(dir.path()).unwrap();
    assert!(a.is_empty());
    assert_eq!(a.get(&key(1, 0.7)), None);
    a.put(&[(key(1, 0.7), value(0.3)), (key(2, 0.7), value(0.5))])
        .unwrap();
    a.put(&[(key(1, 1.0), value(0.1))]).unwrap();
    assert_eq!(a.get(&key(1, 0.7)), Some(value(0.3)));

    // A later run opens the same folder and reuses the values.
    let b = ParquetBaselines::open(dir.path()).unwrap();
    assert_eq!(b.len(), 3);
    assert_eq!(b.get(&key(1, 0.7)), Some(value(0.3)));
    assert_eq!(b.get(&key(1, 1.0)), Some(value(0.1)));
    assert_eq!(b.get(&key(3, 0.7)), None);
    assert_eq!(b.entries().len(), 3);
}

#[test]
fn concurrent_appenders_keep_each_others_values_and_compaction_merges() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = ParquetBaselines::open(dir.path()).unwrap();
    let mut b = ParquetBaselines::open(dir.path()).unwrap();
    a.put(&[(key(1, 0.7), value(0.2))]).unwrap();
    b.put(&[(key(2, 0.7), value(0.4))]).unwrap();
    // A newer value of the same key wins.
    b.put(&[(key(1, 0.7), value(0.25))]).unwrap();
    let mut c = ParquetBaselines::open(dir.path()).unwrap();
    assert_eq!(c.len(), 2);
    assert_eq!(c.get(&key(1, 0.7)), Some(value(0.25)));
    assert_eq!(c.parts().unwrap().len(), 3);
    c.compact().unwrap();
    assert_eq!(c.parts().unwrap().len(), 1);
    let d = ParquetBaselines::open(dir.path()).unwrap();
    assert_eq!(d.entries(), c.entries());
    a.reload().unwrap();
    assert_eq!(a.get(&key(2, 0.7)), Some(value(0.4)));
}

#[test]
fn a_corrupt_part_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("part-0000000000001-1-000000.parquet"),
        b"PAR1 nope",
    )
    .unwrap();
    let e = ParquetBaselines::open(dir.path()).unwrap_err();
    let msg = wst_core::error_chain(&e);
    assert!(msg.contains("part-0000000000001-1-000000.parquet"), "{msg}");
}
