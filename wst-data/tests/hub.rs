//! Hub dataset ids downloaded from the stand-in hub: only the split asked for, then reused
//! offline.

use wst_core::hub::standin::StandInHub;
use wst_core::hub::{Hub, RepoKind};
use wst_core::DatasetKind;
use wst_data::{load_dataset, resolve_hub_dataset_with};

use crate::common::{cfg, s, shared};

#[test]
fn a_dataset_id_downloads_its_split_into_an_empty_cache_then_works_offline() {
    let server = StandInHub::start().unwrap();
    let read = |rel: &str| std::fs::read(shared(rel)).unwrap();
    let gsm = "openai/gsm8k";
    server.add_file(RepoKind::Dataset, gsm, "README.md", b"# gsm8k".to_vec());
    server.add_file(
        RepoKind::Dataset,
        gsm,
        "main/test-00000-of-00001.parquet",
        read("gsm8k/test.parquet"),
    );
    server.add_file(
        RepoKind::Dataset,
        gsm,
        "main/train-00000-of-00001.parquet",
        read("gsm8k/train.parquet"),
    );
    server.add_file(
        RepoKind::Dataset,
        "Anthropic/hh-rlhf",
        "harmless-base/test.jsonl.gz",
        read("hh-rlhf/harmless-base/test.jsonl.gz"),
    );
    server.add_file(
        RepoKind::Dataset,
        "Anthropic/hh-rlhf",
        "helpful-base/test.jsonl.gz",
        read("hh-rlhf/helpful-base/test.jsonl.gz"),
    );
    let home = tempfile::tempdir().unwrap();
    let hub = Hub::new(home.path().join("hub"), server.endpoint());

    let files = resolve_hub_dataset_with(&hub, gsm, Some("test"), Some("main")).unwrap();
    assert_eq!(files.len(), 1);
    assert!(
        files[0].ends_with("main/test-00000-of-00001.parquet"),
        "{files:?}"
    );
    let ds = load_dataset(&cfg(DatasetKind::Gsm8k, s(&files[0])), 0).unwrap();
    assert_eq!(ds.queries.len(), 1319);
    let got = server.requests();
    assert!(
        !got.iter().any(|r| r.contains("train-")),
        "only the test split: {got:?}"
    );

    let hh = resolve_hub_dataset_with(&hub, "Anthropic/hh-rlhf/harmless-base", Some("test"), None)
        .unwrap();
    assert!(hh[0].ends_with("harmless-base/test.jsonl.gz"), "{hh:?}");
    assert!(!server
        .requests()
        .iter()
        .any(|r| r.contains("helpful-base/test")));

    let before = server.requests().len();
    let mut offline = hub.clone();
    offline.offline = true;
    assert_eq!(
        resolve_hub_dataset_with(&offline, gsm, Some("test"), Some("main")).unwrap(),
        files
    );
    assert_eq!(server.requests().len(), before, "offline: no request");
    let e = resolve_hub_dataset_with(&offline, gsm, Some("train"), Some("main"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("offline") && e.contains("train"), "{e}");
    let e = resolve_hub_dataset_with(&hub, gsm, Some("validation"), Some("main"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("validation") && e.contains("main/test-00000-of-00001.parquet"),
        "{e}"
    );
}
