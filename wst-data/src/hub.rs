//! Hugging Face dataset ids resolved through the local hub cache, never over the network.
//!
//! The layout is hf-hub's (and `huggingface_hub`'s): `CACHE/datasets--ORG--NAME/refs/main` holds
//! a commit hash and `CACHE/datasets--ORG--NAME/snapshots/HASH/...` the files (links to blobs).
//! `CACHE` is `$HF_HUB_CACHE`, `$HUGGINGFACE_HUB_CACHE`, `$HF_HOME/hub`,
//! `$XDG_CACHE_HOME/huggingface/hub` or `~/.cache/huggingface/hub`, first that is set.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::rows::{files_in_dir, Format};

/// True when `s` looks like a hub dataset id (`org/name` or `org/name/sub/folder`) rather than an
/// existing local path.
pub fn looks_like_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() >= 2
        && !s.starts_with(['/', '.', '~'])
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        && !Path::new(s).exists()
}

/// The hub cache folders to search, most specific first (every candidate, set or default).
pub fn cache_dirs() -> Vec<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut dirs = Vec::new();
    if let Some(d) = env("HF_HUB_CACHE") {
        dirs.push(d);
    }
    if let Some(d) = env("HUGGINGFACE_HUB_CACHE") {
        dirs.push(d);
    }
    if let Some(d) = env("HF_HOME") {
        dirs.push(d.join("hub"));
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        dirs.push(d.join("huggingface").join("hub"));
    }
    if let Some(d) = env("HOME") {
        dirs.push(d.join(".cache").join("huggingface").join("hub"));
    }
    dirs.dedup();
    dirs
}

/// The data files of hub dataset `id` (`org/name` optionally followed by a folder inside the
/// repository, e.g. `Anthropic/hh-rlhf/harmless-base`) for `split`, from the first cache folder
/// of `caches` holding a snapshot. `default_config` is a folder used when the repository has one
/// of that name and `id` names no folder (GSM8K's `main`).
pub fn resolve(
    id: &str,
    split: Option<&str>,
    default_config: Option<&str>,
    caches: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let mut parts = id.splitn(3, '/');
    let (org, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let sub = parts.next();
    let repo = format!("{org}/{name}");
    let folder = format!("datasets--{org}--{name}");
    let not_cached = |missing: String| DataError::HubNotCached {
        repo: repo.clone(),
        missing,
        looked_in: caches.to_vec(),
    };
    let Some(snapshot) = caches.iter().find_map(|c| snapshot_dir(&c.join(&folder))) else {
        return Err(not_cached(format!("`{folder}/snapshots/*`")));
    };
    let mut root = snapshot.clone();
    match sub {
        Some(sub) => root.push(sub),
        None => {
            if let Some(cfg) = default_config {
                if snapshot.join(cfg).is_dir() {
                    root.push(cfg);
                }
            }
        }
    }
    if root.is_file() {
        return Ok(vec![root]);
    }
    if !root.is_dir() {
        return Err(not_cached(format!("`{}`", root.display())));
    }
    let files = files_in_dir(&root, split).map_err(|_| {
        not_cached(format!(
            "a data file{} under `{}`",
            split
                .map(|s| format!(" of split `{s}`"))
                .unwrap_or_default(),
            root.display()
        ))
    })?;
    for f in &files {
        if !f.exists() {
            return Err(not_cached(format!(
                "`{}` (a dangling link: the download was interrupted)",
                f.display()
            )));
        }
    }
    // Prefer one format when the repository ships several copies of the same split.
    for fmt in [Format::Parquet, Format::Jsonl, Format::JsonlGz] {
        let some: Vec<PathBuf> = files
            .iter()
            .filter(|p| Format::of(p) == Some(fmt))
            .cloned()
            .collect();
        if !some.is_empty() {
            return Ok(some);
        }
    }
    Ok(files)
}

/// The snapshot of a cached repository: the one `refs/main` names, else the newest.
fn snapshot_dir(repo_dir: &Path) -> Option<PathBuf> {
    let snaps = repo_dir.join("snapshots");
    if let Ok(hash) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
        let p = snaps.join(hash.trim());
        if p.is_dir() {
            return Some(p);
        }
    }
    let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snaps)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let t = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, e.path())
        })
        .collect();
    all.sort();
    all.pop().map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_told_from_paths() {
        assert!(looks_like_hub_id("openai/gsm8k"));
        assert!(looks_like_hub_id("Anthropic/hh-rlhf/harmless-base"));
        assert!(!looks_like_hub_id("gsm8k"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("./rel/x"));
    }

    #[test]
    fn snapshot_layout_is_resolved_and_missing_names_the_repo() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().to_path_buf();
        let repo = cache.join("datasets--openai--gsm8k");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(snap.join("main")).unwrap();
        std::fs::create_dir_all(snap.join("socratic")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        for f in [
            "main/test-00000-of-00001.parquet",
            "main/train-00000-of-00001.parquet",
            "socratic/test-00000-of-00001.parquet",
        ] {
            std::fs::write(snap.join(f), b"x").unwrap();
        }
        let caches = vec![cache.clone()];
        let got = resolve("openai/gsm8k", Some("test"), Some("main"), &caches).unwrap();
        assert_eq!(got, vec![snap.join("main/test-00000-of-00001.parquet")]);
        let got = resolve("openai/gsm8k/socratic", Some("test"), None, &caches).unwrap();
        assert_eq!(got, vec![snap.join("socratic/test-00000-of-00001.parquet")]);

        let e = resolve("openai/gsm8k", Some("validation"), Some("main"), &caches)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("openai/gsm8k") && e.contains("validation"),
            "{e}"
        );
        let e = resolve("HuggingFaceH4/MATH-500", Some("test"), None, &caches)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HuggingFaceH4/MATH-500") && e.contains("datasets--HuggingFaceH4--MATH-500"),
            "{e}"
        );
    }
}
