//! Hub model ids downloaded from the stand-in hub: only the files a model needs, every shard of
//! a sharded model, gated repositories, and offline reuse of the cache.

use std::path::PathBuf;

use tch::{Device, Kind};
use wst_core::hub::standin::StandInHub;
use wst_core::hub::{Hub, RepoKind};
use wst_models::hub::resolve_model_with;
use wst_models::LoadedModel;

fn vectors(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testvectors"
    ))
    .join(name)
}

#[test]
fn a_sharded_model_downloads_every_shard_and_nothing_else_then_works_offline() {
    let server = StandInHub::start().unwrap();
    server
        .add_dir(
            RepoKind::Model,
            "org/tiny-llama",
            &vectors("tiny-llama-sharded"),
        )
        .unwrap();
    server.add_file(
        RepoKind::Model,
        "org/tiny-llama",
        "original/consolidated.pth",
        vec![0; 4096],
    );
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path().join("hub"), server.endpoint());

    let dir = resolve_model_with(&hub, "org/tiny-llama").unwrap();
    let got = server.requests();
    for k in 1..=8 {
        let shard = format!("model-{k:05}-of-00008.safetensors");
        assert!(dir.join(&shard).is_file(), "{shard}");
        assert!(got.iter().any(|r| r.contains(&shard)), "{shard}: {got:?}");
    }
    for unwanted in ["consolidated.pth", "reference.json"] {
        assert!(
            !got.iter().any(|r| r.contains(unwanted)),
            "{unwanted}: {got:?}"
        );
    }
    let m = LoadedModel::from_dir(&dir, Device::Cpu, Kind::Float).unwrap();
    let direct =
        LoadedModel::from_dir(&vectors("tiny-llama-sharded"), Device::Cpu, Kind::Float).unwrap();
    let ids = tch::Tensor::from_slice(&[1i64, 5, 9, 3]).unsqueeze(0);
    let a = m.model.forward(&ids, None).unwrap();
    let b = direct.model.forward(&ids, None).unwrap();
    assert_eq!(f64::try_from((a - b).abs().max()).unwrap(), 0.0);

    let before = server.requests().len();
    let mut offline = hub.clone();
    offline.offline = true;
    assert_eq!(resolve_model_with(&offline, "org/tiny-llama").unwrap(), dir);
    assert_eq!(server.requests().len(), before);
}

#[test]
fn a_gated_model_fails_without_the_token_and_loads_with_it() {
    let server = StandInHub::start().unwrap();
    server
        .add_dir(RepoKind::Model, "org/gated-qwen", &vectors("tiny-qwen2"))
        .unwrap();
    server.gate(RepoKind::Model, "org/gated-qwen", "hf_granted");
    let tmp = tempfile::tempdir().unwrap();
    let mut hub = Hub::new(tmp.path(), server.endpoint());
    let e = resolve_model_with(&hub, "org/gated-qwen").unwrap_err();
    let msg = format!("{e}");
    assert!(
        msg.contains("org/gated-qwen") && msg.contains("HF_TOKEN") && msg.contains("401"),
        "{msg}"
    );
    hub.token = Some("hf_granted".into());
    let dir = resolve_model_with(&hub, "org/gated-qwen").unwrap();
    assert!(dir.join("model.safetensors").is_file() && dir.join("chat_template.jinja").is_file());
    LoadedModel::from_dir(&dir, Device::Cpu, Kind::Float).unwrap();
}

#[test]
fn a_gguf_file_of_a_repository_is_fetched_by_name() {
    let server = StandInHub::start().unwrap();
    server.add_file(
        RepoKind::Model,
        "org/ggufs",
        "tiny.Q8_0.gguf",
        b"GGUF-bytes".to_vec(),
    );
    server.add_file(
        RepoKind::Model,
        "org/ggufs",
        "tiny.F16.gguf",
        b"other".to_vec(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let hub = Hub::new(tmp.path(), server.endpoint());
    let p = resolve_model_with(&hub, "org/ggufs/tiny.Q8_0.gguf").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"GGUF-bytes");
    assert!(!server.requests().iter().any(|r| r.contains("F16")));
    let e = resolve_model_with(&hub, "org/ggufs")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("org/ggufs/tiny.Q8_0.gguf"),
        "names the GGUF files: {e}"
    );
}
