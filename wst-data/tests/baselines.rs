//! The Parquet baseline store: lookups, appends, reuse across runs, concurrent appenders.

use wst_core::{stable_hash, BaselineKey, BaselineStore, BaselineValue, SamplingParams};
use wst_data::ParquetBaselines;

fn key(q: usize, temperature: f32) -> BaselineKey {
    BaselineKey {
        student_id: "local:SmolLM2-135M".into(),
        dataset: "arith/single-digit/train".into(),
        query_id: format!("arith/single-digit/{q}+1"),
        query_hash: wst_core::Query::new(format!("arith/single-digit/{q}+1"), format!("{q} + 1"))
            .content_hash(),
        template_hash: stable_hash(&["What is {{ query }}?"]),
        reward_hash: wst_core::reward_hash(&wst_core::RewardConfig::default()),
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

#[test]
fn a_part_of_the_old_format_is_ignored_not_misread() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, UInt32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;

    // The key before it held the query and reward hashes: a row-position id whose value may
    // belong to another question.
    let dir = tempfile::tempdir().unwrap();
    let old = [
        "student_id",
        "dataset",
        "query_id",
        "template_hash",
        "sampling",
    ];
    let k = key(1, 0.7);
    let vals = [
        &k.student_id,
        &k.dataset,
        &k.query_id,
        &k.template_hash,
        &k.sampling,
    ];
    let mut fields: Vec<Field> = old
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect();
    let mut cols: Vec<ArrayRef> = vals
        .iter()
        .map(|v| Arc::new(StringArray::from(vec![v.as_str()])) as ArrayRef)
        .collect();
    fields.push(Field::new("mean", DataType::Float64, false));
    cols.push(Arc::new(Float64Array::from(vec![0.9])));
    fields.push(Field::new("samples", DataType::UInt32, false));
    cols.push(Arc::new(UInt32Array::from(vec![10])));
    fields.push(Field::new("failures", DataType::UInt32, false));
    cols.push(Arc::new(UInt32Array::from(vec![0])));
    fields.push(Field::new("written_ms", DataType::Int64, false));
    cols.push(Arc::new(Int64Array::from(vec![1])));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let path = dir.path().join("part-0000000000001-1-000000.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let mut store = ParquetBaselines::open(dir.path()).unwrap();
    assert!(store.is_empty(), "{:?}", store.entries());
    assert_eq!(store.get(&k), None);
    store.put(&[(k.clone(), value(0.4))]).unwrap();
    let again = ParquetBaselines::open(dir.path()).unwrap();
    assert_eq!(again.get(&k), Some(value(0.4)));
}

#[test]
fn keys_separate_query_content_and_reward_definition() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ParquetBaselines::open(dir.path()).unwrap();
    let k = key(1, 0.7);
    store.put(&[(k.clone(), value(0.3))]).unwrap();
    // Same id, another question (an edited or reordered file).
    let mut other_question = k.clone();
    other_question.query_hash = wst_core::Query::new(k.query_id.clone(), "9 + 9").content_hash();
    assert_eq!(store.get(&other_question), None);
    let mut other_reward = k.clone();
    let r = wst_core::RewardConfig {
        last_number_fallback: false,
        ..Default::default()
    };
    other_reward.reward_hash = wst_core::reward_hash(&r);
    assert_eq!(store.get(&other_reward), None);
    assert_eq!(store.get(&k), Some(value(0.3)));
}
