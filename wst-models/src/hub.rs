//! Model ids (`org/name`) resolved through the local Hugging Face hub cache, offline.
//!
//! The cache layout is the one `huggingface_hub` writes: `<cache>/models--org--name/refs/main`
//! holds a commit hash and `<cache>/models--org--name/snapshots/<hash>/<file>` the files. The
//! cache folder is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. Nothing is downloaded: a
//! missing file is [`Error::HubMissing`], which says how to give a local path instead.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The hub cache folder from the environment (see the module doc).
pub fn hub_cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = var("HF_HUB_CACHE").or_else(|| var("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(home) = var("HF_HOME") {
        return home.join("hub");
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return xdg.join("huggingface").join("hub");
    }
    var("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("huggingface")
        .join("hub")
}

/// True when `spec` has the shape of a hub model id (`org/name`, no other slashes).
pub fn is_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p != &"."
                && p != &".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The snapshot folder of `repo` at `revision` (a branch under `refs/`, or a commit hash) in
/// `cache`. `file` is the file the caller needs, named in the error.
pub fn snapshot_dir_in(cache: &Path, repo: &str, revision: &str, file: &str) -> Result<PathBuf> {
    let missing = || Error::HubMissing {
        repo: repo.to_string(),
        file: file.to_string(),
        cache: cache.to_path_buf(),
    };
    if !is_hub_id(repo) {
        return Err(missing());
    }
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    let commit = match std::fs::read_to_string(root.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    let dir = root.join("snapshots").join(commit);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(missing())
    }
}

/// The path of `file` of model `repo` (at `main`) in `cache`.
pub fn resolve_file_in(cache: &Path, repo: &str, file: &str) -> Result<PathBuf> {
    let path = snapshot_dir_in(cache, repo, "main", file)?.join(file);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::HubMissing {
            repo: repo.to_string(),
            file: file.to_string(),
            cache: cache.to_path_buf(),
        })
    }
}

/// The path of `file` of model `repo` in the cache from the environment.
pub fn resolve_file(repo: &str, file: &str) -> Result<PathBuf> {
    resolve_file_in(&hub_cache_dir(), repo, file)
}

/// The snapshot folder of model `repo` (at `main`), checked to hold `config.json`.
pub fn resolve_model_dir(repo: &str) -> Result<PathBuf> {
    let config = resolve_file(repo, "config.json")?;
    Ok(config
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_cache_layout_and_names_missing_files() {
        let tmp = std::env::temp_dir().join(format!("wst-hub-{}", std::process::id()));
        let repo = tmp.join("models--org--tiny");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/abc123")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(repo.join("snapshots/abc123/config.json"), "{}").unwrap();
        let p = resolve_file_in(&tmp, "org/tiny", "config.json").unwrap();
        assert!(p.ends_with("snapshots/abc123/config.json"));
        let e = resolve_file_in(&tmp, "org/tiny", "tokenizer.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("org/tiny") && e.contains("tokenizer.json") && e.contains("local"),
            "{e}"
        );
        let e = resolve_file_in(&tmp, "org/other", "config.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("org/other"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
        assert!(is_hub_id("Qwen/Qwen2.5-0.5B-Instruct"));
        assert!(!is_hub_id("a/b/c") && !is_hub_id("model.gguf") && !is_hub_id("../x"));
    }
}
