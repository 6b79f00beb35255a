//! Downloads through hf-hub against the stand-in hub on 127.0.0.1: cache reuse, offline mode,
//! gated repositories, interrupted downloads and a server that never answers.

use std::path::Path;
use std::time::{Duration, Instant};

use wst_core::hub::standin::{commit_of, StandInHub};
use wst_core::hub::{Hub, HubError, RepoId, RepoKind};

fn model(spec: &str) -> RepoId {
    RepoId::parse(spec, RepoKind::Model).unwrap()
}

fn files(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn big(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn download_into_an_empty_cache_then_reuse_offline_with_the_python_layout() {
    let server = StandInHub::start().unwrap();
    server.add_file(
        RepoKind::Model,
        "org/tiny",
        "config.json",
        b"{\"a\":1}".to_vec(),
    );
    server.add_file(
        RepoKind::Model,
        "org/tiny",
        "model.safetensors",
        big(30_000),
    );
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path().join("hub"), server.endpoint());
    let id = model("org/tiny");

    let (commit, listing) = hub.list_files(&id).unwrap();
    assert_eq!(commit, commit_of("org/tiny"));
    assert_eq!(listing, files(&["config.json", "model.safetensors"]));
    let snap = hub.fetch(&id, &listing).unwrap();
    assert_eq!(
        snap,
        tmp.path()
            .join("hub/models--org--tiny/snapshots")
            .join(&commit)
    );
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        big(30_000)
    );
    // The layout huggingface_hub reads: refs/main, snapshot links into blobs/.
    let refs = std::fs::read_to_string(tmp.path().join("hub/models--org--tiny/refs/main")).unwrap();
    assert_eq!(refs.trim(), commit);
    let link = std::fs::read_link(snap.join("config.json")).unwrap();
    assert!(link.starts_with("../../blobs"), "{}", link.display());
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/org/tiny/resolve/main/model.safetensors [bytes=0-0]")),
        "{requests:?}"
    );

    // Second use: offline, no request at all; a commit id as revision finds the same snapshot.
    let before = server.requests().len();
    let mut offline = hub.clone();
    offline.offline = true;
    assert_eq!(offline.fetch(&id, &listing).unwrap(), snap);
    assert_eq!(
        offline
            .fetch(&model(&format!("org/tiny@{commit}")), &listing)
            .unwrap(),
        snap
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn offline_on_an_empty_cache_fails_at_once_saying_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = Hub::new(tmp.path(), "http://127.0.0.1:9");
    hub.offline = true;
    let t = Instant::now();
    let e = hub
        .fetch(&model("org/tiny"), &files(&["config.json"]))
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    let msg = e.to_string();
    assert!(
        msg.contains("offline") && msg.contains("org/tiny") && msg.contains("config.json"),
        "{msg}"
    );
    let e = hub.list_files(&model("org/tiny")).unwrap_err().to_string();
    assert!(e.contains("offline"), "{e}");
}

#[test]
fn a_gated_repo_needs_the_token_and_the_message_never_shows_it() {
    let server = StandInHub::start().unwrap();
    server.add_file(RepoKind::Model, "org/gated", "config.json", b"{}".to_vec());
    server.gate(RepoKind::Model, "org/gated", "hf_right");
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = Hub::new(tmp.path(), server.endpoint());
    let id = model("org/gated");
    let e = hub.fetch(&id, &files(&["config.json"])).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, HubError::Unauthorized { status: 401, .. }),
        "{e:?}"
    );
    assert!(
        msg.contains("org/gated") && msg.contains("HF_TOKEN"),
        "{msg}"
    );
    hub.token = Some("hf_wrong".into());
    let e = hub.list_files(&id).unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(
        matches!(e, HubError::Unauthorized { status: 403, .. }),
        "{e:?}"
    );
    assert!(!msg.contains("hf_wrong"), "{msg}");
    hub.token = Some("hf_right".into());
    let snap = hub.fetch(&id, &files(&["config.json"])).unwrap();
    assert_eq!(std::fs::read(snap.join("config.json")).unwrap(), b"{}");
}

#[test]
fn missing_files_and_revisions_are_named() {
    let server = StandInHub::start().unwrap();
    server.add_file(RepoKind::Model, "org/tiny", "config.json", b"{}".to_vec());
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path(), server.endpoint());
    let e = hub
        .fetch(&model("org/tiny"), &files(&["tokenizer.json"]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("not found"),
        "{e}"
    );
    let e = hub
        .list_files(&model("org/tiny@v9"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("v9") && e.contains("not found"), "{e}");
}

#[test]
fn an_interrupted_download_leaves_nothing_taken_for_complete() {
    let server = StandInHub::start().unwrap();
    server.add_file(
        RepoKind::Model,
        "org/tiny",
        "model.safetensors",
        big(50_000),
    );
    server.cut_once("model.safetensors", 10_000);
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path(), server.endpoint());
    let id = model("org/tiny");
    let want = files(&["model.safetensors"]);
    assert!(hub.fetch(&id, &want).is_err());
    assert!(hub.cached(&id, "model.safetensors").is_none());
    let blobs = tmp.path().join("models--org--tiny/blobs");
    let complete: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".sync.part") && !n.ends_with(".lock"))
        .collect();
    assert!(complete.is_empty(), "{complete:?}");
    let mut offline = hub.clone();
    offline.offline = true;
    assert!(offline
        .fetch(&id, &want)
        .unwrap_err()
        .to_string()
        .contains("offline"));
    // The next run fetches it whole.
    let snap = hub.fetch(&id, &want).unwrap();
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        big(50_000)
    );
}

#[test]
fn a_hub_that_never_answers_fails_within_the_timeout() {
    let server = StandInHub::start().unwrap();
    server.set_stall(true);
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = Hub::new(tmp.path(), server.endpoint());
    hub.etag_timeout = Duration::from_millis(500);
    let t = Instant::now();
    let e = hub
        .fetch(&model("org/tiny"), &files(&["config.json"]))
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(matches!(e, HubError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("HF_HUB_ETAG_TIMEOUT"), "{e}");
    // Nothing listens: a clear network error, at once.
    let hub = Hub::new(tmp.path(), "http://127.0.0.1:9");
    let e = hub
        .fetch(&model("org/tiny"), &files(&["config.json"]))
        .unwrap_err();
    assert!(matches!(e, HubError::Network { .. }), "{e:?}");
    assert!(e.to_string().contains("127.0.0.1:9"), "{e}");
}

#[test]
fn datasets_use_their_own_routes_and_cache_folder() {
    let server = StandInHub::start().unwrap();
    server.add_file(
        RepoKind::Dataset,
        "org/ds",
        "main/test-00000-of-00001.parquet",
        big(2000),
    );
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path(), server.endpoint());
    let id = RepoId::parse("org/ds", RepoKind::Dataset).unwrap();
    let (_, listing) = hub.list_files(&id).unwrap();
    let snap = hub.fetch(&id, &listing).unwrap();
    assert!(snap.starts_with(tmp.path().join("datasets--org--ds")));
    assert!(Path::new(&snap.join("main/test-00000-of-00001.parquet")).is_file());
    let r = server.requests();
    assert!(
        r.iter()
            .any(|r| r.starts_with("GET /api/datasets/org/ds/revision/main")),
        "{r:?}"
    );
    assert!(
        r.iter()
            .any(|r| r.starts_with("GET /datasets/org/ds/resolve/main/main/test")),
        "{r:?}"
    );
}
