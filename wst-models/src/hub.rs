//! Model ids (`org/name`, `org/name@revision`, `org/name/file.gguf`) resolved to local files
//! through the one hub resolver, [`wst_core::hub`]: the cache first, then (with wst-core's
//! `download` feature and without `HF_HUB_OFFLINE`) only the files a model needs.
//!
//! What a model needs is this module's knowledge: config, tokenizer files, chat template,
//! generation config, and the weights — the shards that `model.safetensors.index.json` names,
//! else `model.safetensors` or the repository's top-level `*.safetensors` — or one `.gguf` file
//! named in the id. Weights come last, so a snapshot with complete weights has its small files.

use std::path::{Path, PathBuf};

pub use wst_core::hub::is_hub_id;
use wst_core::hub::{Hub, RepoId, RepoKind};

use crate::error::read_json;
use crate::{Error, Result};

/// The small files a model folder may have; those the repository holds are fetched.
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
];

/// The index of sharded safetensors weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The shard files an index names (`weight_map` values), each once, in order.
pub fn shards_of(index: &Path) -> Result<Vec<String>> {
    let v = read_json(index)?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Invalid(format!("{}: no `weight_map` object", index.display())))?;
    let mut shards: Vec<String> = Vec::new();
    for f in map.values() {
        let f = f.as_str().ok_or_else(|| {
            Error::Invalid(format!(
                "{}: a `weight_map` value is no string",
                index.display()
            ))
        })?;
        if !shards.iter().any(|s| s == f) {
            shards.push(f.to_string());
        }
    }
    Ok(shards)
}

/// The first file a cached model snapshot lacks (config or weights); `None` when complete.
fn first_missing(hub: &Hub, id: &RepoId) -> Option<String> {
    if hub.cached(id, "config.json").is_none() {
        return Some("config.json".into());
    }
    if let Some(index) = hub.cached(id, INDEX_FILE) {
        return match shards_of(&index) {
            Ok(shards) => shards.into_iter().find(|s| hub.cached(id, s).is_none()),
            Err(_) => Some(INDEX_FILE.into()),
        };
    }
    let snap = hub.snapshot(id)?;
    let any_weights = std::fs::read_dir(&snap)
        .ok()?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".safetensors") && e.path().is_file());
    (!any_weights).then(|| "model.safetensors".into())
}

/// The local path of model `spec` (a hub id) from the hub settings of the environment.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    resolve_model_with(&Hub::from_env(), spec)
}

/// The local path of model `spec` with `hub`: the snapshot folder of a model repository, or the
/// file of an `org/name/FILE.gguf` id.
pub fn resolve_model_with(hub: &Hub, spec: &str) -> Result<PathBuf> {
    let id = RepoId::parse(spec, RepoKind::Model).ok_or_else(|| Error::ModelNotFound {
        spec: spec.to_string(),
    })?;
    if let Some(path) = &id.path {
        if !path.to_ascii_lowercase().ends_with(".gguf") {
            return Err(Error::Invalid(format!(
                "model `{spec}`: a path inside a model repository must name a .gguf file \
                 (`org/name/FILE.gguf`)"
            )));
        }
        let dir = hub.fetch(&id.root(), std::slice::from_ref(path))?;
        return Ok(dir.join(path));
    }
    let Some(missing) = first_missing(hub, &id) else {
        return hub
            .snapshot(&id)
            .ok_or_else(|| hub.miss(&id, "config.json").into());
    };
    if !hub.can_download() {
        return Err(hub.miss(&id, &missing).into());
    }
    let (_, listing) = hub.list_files(&id).map_err(|source| Error::HubFetch {
        cause: Box::new(source),
        spec: spec.to_string(),
        missing: missing.clone(),
        cache: hub.cache.clone(),
    })?;
    let has = |f: &str| listing.iter().any(|l| l == f);
    let mut small: Vec<String> = MODEL_FILES
        .iter()
        .filter(|f| has(f))
        .map(|f| f.to_string())
        .collect();
    if !has("config.json") {
        let ggufs: Vec<&String> = listing.iter().filter(|f| f.ends_with(".gguf")).collect();
        return Err(Error::Invalid(format!(
            "model `{spec}`: the repository has no config.json{}",
            if ggufs.is_empty() {
                String::new()
            } else {
                format!(
                    "; name one of its GGUF files: {}",
                    ggufs
                        .iter()
                        .map(|g| format!("`{}/{g}`", id.repo))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )));
    }
    let sharded = has(INDEX_FILE);
    if sharded {
        small.push(INDEX_FILE.into());
    }
    let dir = hub.fetch(&id, &small)?;
    let weights: Vec<String> = if sharded {
        shards_of(&dir.join(INDEX_FILE))?
    } else if has("model.safetensors") {
        vec!["model.safetensors".into()]
    } else {
        listing
            .iter()
            .filter(|f| f.ends_with(".safetensors") && !f.contains('/'))
            .cloned()
            .collect()
    };
    if weights.is_empty() {
        return Err(Error::Invalid(format!(
            "model `{spec}`: the repository has no safetensors weights"
        )));
    }
    Ok(hub.fetch(&id, &weights)?)
}

/// Checks model `spec` (a hub id) without downloading weights, for `--dry-run`: where its
/// cached snapshot is, or that the hub lists it (access and revision checked).
pub fn check_model(spec: &str) -> Result<String> {
    let hub = Hub::from_env();
    let id = RepoId::parse(spec, RepoKind::Model).ok_or_else(|| Error::ModelNotFound {
        spec: spec.to_string(),
    })?;
    let root = id.root();
    let missing = match &id.path {
        Some(p) => hub.cached(&root, p).is_none().then(|| p.clone()),
        None => first_missing(&hub, &id),
    };
    let Some(missing) = missing else {
        let snap = hub.snapshot(&root).unwrap_or_default();
        return Ok(format!("cached at {}", snap.display()));
    };
    if !hub.can_download() {
        return Err(hub.miss(&id, &missing).into());
    }
    let (commit, files) = hub.list_files(&root).map_err(|source| Error::HubFetch {
        cause: Box::new(source),
        spec: spec.to_string(),
        missing: missing.clone(),
        cache: hub.cache.clone(),
    })?;
    Ok(format!(
        "on {} at commit {commit} ({} files; downloaded into {} on first use)",
        hub.endpoint,
        files.len(),
        hub.cache.display()
    ))
}

/// The folder of model `spec` (a hub id naming a repository, not a file).
pub fn resolve_model_dir(spec: &str) -> Result<PathBuf> {
    let p = resolve_model(spec)?;
    if p.is_dir() {
        Ok(p)
    } else {
        Err(Error::Invalid(format!(
            "model `{spec}` names a file, not a model folder"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_snapshots_are_complete_only_with_their_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = tmp.path().join("models--org--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(tmp.path().join("models--org--tiny/refs")).unwrap();
        std::fs::write(tmp.path().join("models--org--tiny/refs/main"), "abc123").unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        let mut hub = Hub::new(tmp.path(), "http://127.0.0.1:9");
        hub.offline = true;
        let e = resolve_model_with(&hub, "org/tiny")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("org/tiny") && e.contains("model.safetensors") && e.contains("offline"),
            "{e}"
        );
        std::fs::write(
            snap.join(INDEX_FILE),
            r#"{"weight_map":{"a":"s-1.safetensors","b":"s-2.safetensors","c":"s-1.safetensors"}}"#,
        )
        .unwrap();
        std::fs::write(snap.join("s-1.safetensors"), "x").unwrap();
        let e = resolve_model_with(&hub, "org/tiny")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s-2.safetensors"), "{e}");
        std::fs::write(snap.join("s-2.safetensors"), "x").unwrap();
        assert_eq!(resolve_model_with(&hub, "org/tiny").unwrap(), snap);
        let e = resolve_model_with(&hub, "org/other")
            .unwrap_err()
            .to_string();
        assert!(e.contains("org/other") && e.contains("config.json"), "{e}");
        let e = resolve_model_with(&hub, "org/tiny/weights.bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains(".gguf"), "{e}");
    }
}
