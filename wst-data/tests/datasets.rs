//! Loading the offline datasets of `shared/data/` and the embedded arithmetic task.

use std::collections::BTreeSet;

use wst_core::{ArithLevel, DataConfig, DatasetKind, EvalConfig, PromptSource};
use wst_data::{eval_queries, load_dataset, prompt_source, HH_ASSISTANT};

use crate::common::{cfg, s, shared};

/// Every data file of `shared/data/README.md` with its row count.
const FILES: [(DatasetKind, &str, usize); 10] = [
    (DatasetKind::Gsm8k, "gsm8k/test.jsonl", 1319),
    (DatasetKind::Gsm8k, "gsm8k/test.parquet", 1319),
    (DatasetKind::Gsm8k, "gsm8k/train.jsonl", 7473),
    (DatasetKind::Gsm8k, "gsm8k/train.parquet", 7473),
    (DatasetKind::Math500, "math500/test.jsonl", 500),
    (DatasetKind::Math500, "math500/test.parquet", 500),
    (
        DatasetKind::HhRlhf,
        "hh-rlhf/harmless-base/test.jsonl.gz",
        2312,
    ),
    (
        DatasetKind::HhRlhf,
        "hh-rlhf/harmless-base/test.parquet",
        2312,
    ),
    (
        DatasetKind::HhRlhf,
        "hh-rlhf/helpful-base/test.jsonl.gz",
        2354,
    ),
    (
        DatasetKind::HhRlhf,
        "hh-rlhf/helpful-base/test.parquet",
        2354,
    ),
];

#[test]
fn every_shared_file_loads_with_its_readme_row_count() {
    for (kind, rel, rows) in FILES {
        let ds = load_dataset(&cfg(kind, s(&shared(rel))), 0).unwrap();
        assert_eq!(ds.queries.len(), rows, "{rel}");
        assert_eq!(ds.rows, rows, "{rel}");
        assert!(ds.skipped.is_empty(), "{rel}");
        let ids: BTreeSet<_> = ds.queries.iter().map(|q| &q.id).collect();
        assert_eq!(ids.len(), rows, "{rel}: ids must be unique");
    }
}

#[test]
fn jsonl_and_parquet_copies_give_identical_queries() {
    for (kind, a, b) in [
        (DatasetKind::Gsm8k, "gsm8k/test.jsonl", "gsm8k/test.parquet"),
        (
            DatasetKind::Math500,
            "math500/test.jsonl",
            "math500/test.parquet",
        ),
        (
            DatasetKind::HhRlhf,
            "hh-rlhf/helpful-base/test.jsonl.gz",
            "hh-rlhf/helpful-base/test.parquet",
        ),
    ] {
        let qa = load_dataset(&cfg(kind, s(&shared(a))), 0).unwrap();
        let qb = load_dataset(&cfg(kind, s(&shared(b))), 0).unwrap();
        assert_eq!(qa.id, qb.id);
        assert_eq!(qa.queries, qb.queries, "{a} vs {b}");
    }
}

#[test]
fn gsm8k_test_references_are_integers() {
    let ds = load_dataset(&cfg(DatasetKind::Gsm8k, s(&shared("gsm8k/test.jsonl"))), 0).unwrap();
    assert_eq!(ds.id, "gsm8k/test");
    assert_eq!(ds.queries.len(), 1319);
    for q in &ds.queries {
        let r = q.reference.as_deref().unwrap();
        r.parse::<i64>()
            .unwrap_or_else(|_| panic!("{}: reference {r:?} is not an integer", q.id));
        assert!(!q.text.contains("####"));
    }
    assert_eq!(ds.queries[0].id, "gsm8k/test/0");
    // Janet's ducks: 16 - 3 - 4 = 9 eggs at $2.
    assert!(
        ds.queries[0].text.starts_with("Janet"),
        "{}",
        ds.queries[0].text
    );
    assert_eq!(ds.queries[0].reference.as_deref(), Some("18"));
    // Thousands separators are stripped.
    let with_comma = ds
        .queries
        .iter()
        .filter(|q| {
            q.metadata["solution"]
                .rsplit("####")
                .next()
                .unwrap()
                .contains(',')
        })
        .count();
    assert_eq!(
        with_comma, 14,
        "README: 14 test answers use thousands separators"
    );
}

#[test]
fn math500_keeps_answer_and_metadata() {
    let ds = load_dataset(
        &cfg(DatasetKind::Math500, s(&shared("math500/test.parquet"))),
        0,
    )
    .unwrap();
    let mut subjects = std::collections::BTreeMap::<String, usize>::new();
    for q in &ds.queries {
        assert!(
            q.reference.as_deref().is_some_and(|r| !r.is_empty()),
            "{}",
            q.id
        );
        let uid = &q.metadata["unique_id"];
        assert_eq!(q.id, format!("math500/{uid}"));
        let level: u32 = q.metadata["level"].parse().unwrap();
        assert!((1..=5).contains(&level));
        *subjects.entry(q.metadata["subject"].clone()).or_default() += 1;
    }
    assert_eq!(subjects["Algebra"], 124);
    assert_eq!(subjects["Counting & Probability"], 38);
}

#[test]
fn hh_rlhf_queries_end_with_the_assistant_turn() {
    for rel in [
        "hh-rlhf/harmless-base/test.jsonl.gz",
        "hh-rlhf/helpful-base/test.parquet",
    ] {
        let ds = load_dataset(&cfg(DatasetKind::HhRlhf, s(&shared(rel))), 0).unwrap();
        assert!(
            ds.id.starts_with("hh-rlhf/") && ds.id.ends_with("-base/test"),
            "{}",
            ds.id
        );
        for q in &ds.queries {
            assert!(q.text.ends_with("Assistant:"), "{}: {:?}", q.id, q.text);
            assert!(q.text.ends_with(HH_ASSISTANT));
            assert!(q.reference.is_none());
            let chosen = &q.metadata["chosen"];
            assert!(chosen.starts_with(&q.text) && chosen.len() > q.text.len());
            assert!(q.metadata.contains_key("rejected"));
            assert_eq!(
                q.text.matches(HH_ASSISTANT).count(),
                chosen.matches(HH_ASSISTANT).count(),
                "the prompt keeps every assistant turn but the last reply"
            );
        }
    }
}

#[test]
fn limit_split_and_folder_of_shards() {
    // A folder holding shards named as on the hub: split `test` picks its two files, in order.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("gsm8k");
    std::fs::create_dir_all(d.join("main")).unwrap();
    for (src, dst) in [
        ("gsm8k/test.parquet", "main/test-00000-of-00002.parquet"),
        ("gsm8k/test.jsonl", "main/test-00001-of-00002.jsonl"),
        ("gsm8k/train.parquet", "main/train-00000-of-00001.parquet"),
    ] {
        std::os::unix::fs::symlink(shared(src), d.join(dst)).unwrap();
    }
    let mut c = cfg(DatasetKind::Gsm8k, s(&d));
    c.split = Some("test".into());
    let ds = load_dataset(&c, 0).unwrap();
    assert_eq!(ds.files.len(), 2);
    assert_eq!(ds.queries.len(), 2 * 1319);
    assert_eq!(ds.queries[1319].id, "gsm8k/test/1319");
    assert_eq!(ds.queries[1319].text, ds.queries[0].text);

    c.split = Some("train".into());
    c.limit = Some(100);
    let ds = load_dataset(&c, 0).unwrap();
    assert_eq!(ds.queries.len(), 100);
    assert_eq!(ds.id, "gsm8k/train");

    c.split = Some("validation".into());
    let e = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(e.contains("validation") && e.contains("gsm8k"), "{e}");
}

#[test]
fn hub_dataset_ids_resolve_through_the_cache_layout() {
    // The only test that sets the hub cache variable; nothing else reads it.
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp
        .path()
        .join("datasets--HuggingFaceH4--MATH-500/snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(shared("math500/test.jsonl"), snap.join("test.jsonl")).unwrap();
    std::env::set_var("HF_HUB_CACHE", tmp.path());
    // Cache only: this test binary can download, and there is no network.
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let mut c = cfg(DatasetKind::Math500, "HuggingFaceH4/MATH-500");
    c.split = Some("test".into());
    let ds = load_dataset(&c, 0).unwrap();
    assert_eq!(ds.queries.len(), 500);
    assert_eq!(ds.id, "math500/test");

    let c = DataConfig {
        split: Some("test".into()),
        ..cfg(DatasetKind::Gsm8k, "openai/gsm8k")
    };
    let e = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(
        e.contains("openai/gsm8k")
            && e.contains("datasets--openai--gsm8k")
            && e.contains("Hugging Face cache"),
        "{e}"
    );
    // A file of the snapshot that is a dangling link (interrupted download) is named.
    std::fs::remove_file(snap.join("test.jsonl")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("blobs/missing"), snap.join("test.jsonl")).unwrap();
    let mut c = cfg(DatasetKind::Math500, "HuggingFaceH4/MATH-500");
    c.split = Some("test".into());
    let e = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(
        e.contains("HuggingFaceH4/MATH-500") && e.contains("test.jsonl"),
        "{e}"
    );
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("HF_HUB_OFFLINE");
}

#[test]
fn generic_mapping_names_query_reference_and_id() {
    let mut c = cfg(DatasetKind::Generic, s(&shared("math500/test.parquet")));
    c.query_field = Some("problem".into());
    c.reference_field = Some("level".into());
    c.id_field = Some("unique_id".into());
    let ds = load_dataset(&c, 0).unwrap();
    assert_eq!(ds.queries.len(), 500);
    assert_eq!(ds.id, "test/test");
    assert!(
        ds.queries[0].id.starts_with("test/"),
        "{}",
        ds.queries[0].id
    );
    assert!(ds
        .queries
        .iter()
        .all(|q| q.reference.as_deref().unwrap().parse::<u8>().is_ok()));

    c.query_field = Some("question".into());
    let e = load_dataset(&c, 0).unwrap_err().to_string();
    assert!(
        e.contains("`question`") && e.contains("row 0") && e.contains("problem"),
        "{e}"
    );
}

#[test]
fn prompt_source_is_seeded_and_shuffles_per_epoch() {
    let mut c = cfg(DatasetKind::Gsm8k, s(&shared("gsm8k/test.parquet")));
    c.shuffle = true;
    c.limit = Some(50);
    let mut a = prompt_source(&c, 1).unwrap();
    let mut b = prompt_source(&c, 1).unwrap();
    let mut other = prompt_source(&c, 2).unwrap();
    assert_eq!(a.dataset_id(), "gsm8k/test");
    assert_eq!(a.len(), Some(50));
    let xa = a.next_batch(60).unwrap();
    assert_eq!(xa, b.next_batch(60).unwrap());
    assert_ne!(xa, other.next_batch(60).unwrap());
    // An explicit data seed wins over the run seed.
    c.seed = Some(9);
    let x1 = prompt_source(&c, 1).unwrap().next_batch(10).unwrap();
    let x2 = prompt_source(&c, 2).unwrap().next_batch(10).unwrap();
    assert_eq!(x1, x2);
}

#[test]
fn arith_trains_and_evaluates_on_disjoint_problems() {
    for level in [
        ArithLevel::SingleDigit,
        ArithLevel::TwoDigit,
        ArithLevel::Mixed,
        ArithLevel::Word,
    ] {
        let data = DataConfig {
            arith_level: level,
            arith_count: 1000,
            ..DataConfig::default()
        };
        let mut src = prompt_source(&data, 5).unwrap();
        assert!(src.dataset_id().ends_with("/train"), "{}", src.dataset_id());
        let n = src.len().unwrap();
        let train: BTreeSet<String> = src
            .next_batch(n)
            .unwrap()
            .into_iter()
            .map(|q| q.id)
            .collect();
        let eval = eval_queries(&EvalConfig::default(), &data, 5).unwrap();
        assert!(!eval.is_empty());
        for q in &eval {
            assert!(!train.contains(&q.id), "{level:?}: {} in both", q.id);
            assert_eq!(q.metadata["split"], "held-out");
            assert!(q.reference.as_deref().unwrap().parse::<i64>().is_ok());
        }
        // Asking for the held-out split directly gives the same problems.
        let held = load_dataset(
            &DataConfig {
                split: Some("held-out".into()),
                ..data.clone()
            },
            5,
        )
        .unwrap();
        assert!(held.queries.iter().all(|q| !train.contains(&q.id)));
    }
    // Single-digit sums: 100 problems, 75 for training, 25 held out.
    let data = DataConfig::default();
    assert_eq!(prompt_source(&data, 0).unwrap().len(), Some(75));
    assert_eq!(
        eval_queries(&EvalConfig::default(), &data, 0)
            .unwrap()
            .len(),
        25
    );
}

#[test]
fn eval_defaults_to_the_test_split_of_a_train_source() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["test.jsonl", "train.jsonl"] {
        std::os::unix::fs::symlink(shared(&format!("gsm8k/{f}")), tmp.path().join(f)).unwrap();
    }
    let mut data = cfg(DatasetKind::Gsm8k, s(tmp.path()));
    data.split = Some("train".into());
    let eval = EvalConfig {
        limit: 1319,
        ..EvalConfig::default()
    };
    let qs = eval_queries(&eval, &data, 0).unwrap();
    assert_eq!(qs.len(), 1319);
    assert!(qs[0].id.starts_with("gsm8k/test/"));
    data.split = None;
    let e = eval_queries(&eval, &data, 0).unwrap_err().to_string();
    assert!(e.contains("[eval.data]"), "{e}");
}

#[test]
fn a_single_file_is_split_by_hash_and_overlap_is_refused() {
    let mut data = cfg(DatasetKind::Math500, s(&shared("math500/test.jsonl")));
    data.holdout = Some(0.2);
    let train = load_dataset(&data, 0).unwrap();
    let held = wst_data::load_held_out(&data, 0).unwrap();
    assert_eq!(train.queries.len() + held.queries.len(), 500);
    assert!(
        (70..=130).contains(&held.queries.len()),
        "{}",
        held.queries.len()
    );
    let ids: BTreeSet<&str> = train.queries.iter().map(|q| q.id.as_str()).collect();
    assert!(held.queries.iter().all(|q| !ids.contains(q.id.as_str())));
    // The split is by content: another seed, shuffle or limit does not move a problem.
    let other = DataConfig {
        seed: Some(99),
        shuffle: false,
        limit: Some(50),
        ..data.clone()
    };
    let again = load_dataset(&other, 7).unwrap();
    assert!(again.queries.iter().all(|q| ids.contains(q.id.as_str())));
    // [eval] without [eval.data] reads the held-out part, and it does not overlap training.
    let eval = EvalConfig {
        limit: 500,
        ..EvalConfig::default()
    };
    let qs = wst_data::check_eval_disjoint(&eval, &data, 0).unwrap();
    assert_eq!(qs.len(), held.queries.len());
    // [eval.data] naming the training file itself is refused, naming the first overlap.
    let same = EvalConfig {
        data: Some(DataConfig {
            holdout: None,
            ..data.clone()
        }),
        ..eval.clone()
    };
    let e = wst_data::check_eval_disjoint(&same, &data, 0).unwrap_err();
    let msg = e.to_string();
    let n = train.queries.len();
    assert!(
        msg.starts_with(&format!(
            "{n} of 500 eval queries overlap the training queries"
        )),
        "{msg}"
    );
    assert!(msg.contains("(same id)"), "{msg}");
    // Its own holdout in [eval.data]: the same held-out part, accepted.
    let own = EvalConfig {
        data: Some(data.clone()),
        ..eval
    };
    assert_eq!(
        wst_data::check_eval_disjoint(&own, &data, 0).unwrap().len(),
        held.queries.len()
    );
}
