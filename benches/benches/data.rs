//! wst-data: rollout rows written per second, and GSM8K train loading time.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput};
use wst_core::{DataConfig, DatasetKind, RewardComponents, RolloutRecord};
use wst_data::RolloutStore;

/// One step of realistic rollouts: B x G = 256 rows, K = 4 replies of ~300 characters.
fn step_records(n: usize) -> Vec<RolloutRecord> {
    (0..n)
        .map(|i| RolloutRecord {
            run_id: "bench".into(),
            step: 0,
            query_id: format!("gsm8k/train/{i}"),
            query:
                "Natalia sold clips to 48 of her friends in April, and then she sold half as many \
                    clips in May. How many clips did Natalia sell altogether in April and May?"
                    .into(),
            group_index: (i % 4) as u32,
            instruction: "Work out the May sales first, then add both months carefully.".repeat(2),
            instruction_tokens: 24,
            truncated: false,
            replies: (0..4)
                .map(|k| Some(format!("In May she sold 48 / 2 = 24 clips. {k} ").repeat(8)))
                .collect(),
            reward_components: (0..4)
                .map(|k| RewardComponents::from_pairs([("correct", (k % 2) as f64)]))
                .collect(),
            rewards: (0..4).map(|k| Some((k % 2) as f64)).collect(),
            reward_mean: Some(0.5),
            baseline: 0.3,
            reward: Some(0.2),
            advantage: 0.1,
            teacher_logprob_sum: -30.0,
            created_ms: 1,
            scored_ms: 2,
        })
        .collect()
}

/// Rollout store throughput (rows per second) and GSM8K train load time.
pub fn data(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = RolloutStore::open(dir.path()).unwrap();
    let recs = step_records(256);
    let mut g = c.benchmark_group("rollouts");
    g.throughput(Throughput::Elements(recs.len() as u64));
    g.bench_function("write step of 256 rows (atomic parquet)", |b| {
        b.iter(|| store.write(0, black_box(&recs)).unwrap())
    });
    g.bench_function("read step of 256 rows (polars)", |b| {
        b.iter(|| black_box(store.read_step(0).unwrap()))
    });
    g.finish();

    let train = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/gsm8k/train"
    ));
    let mut g = c.benchmark_group("gsm8k train (7473 rows)");
    g.sample_size(10);
    for ext in ["jsonl", "parquet"] {
        let path = train.with_extension(ext);
        if !path.exists() {
            eprintln!("skipping: {} is missing", path.display());
            continue;
        }
        let cfg = DataConfig {
            dataset: DatasetKind::Gsm8k,
            path: Some(path.to_string_lossy().into_owned()),
            ..DataConfig::default()
        };
        g.bench_function(format!("load {ext}"), |b| {
            b.iter(|| black_box(wst_data::load_dataset(&cfg, 0).unwrap().queries.len()))
        });
    }
    g.finish();
}
