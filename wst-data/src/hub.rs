//! Hugging Face dataset ids (`org/name`, `org/name/sub/folder`, `@revision`) resolved to data
//! files through the one hub resolver, [`wst_core::hub`]: the cached snapshot first, then (with
//! wst-core's `download` feature and without `HF_HUB_OFFLINE`) the files of the requested split
//! from the repository listing. Which files belong to a split is this module's rule, the same
//! for a cached snapshot and a listing ([`crate::rows::files_in_dir`]'s names).

use std::path::{Path, PathBuf};

pub use wst_core::hub::is_hub_id;
use wst_core::hub::{Hub, RepoId, RepoKind};

use crate::error::{DataError, Result};
use crate::rows::{files_in_dir, matches_split, Format};

/// True when `s` looks like a hub dataset id rather than an existing local path.
pub fn looks_like_hub_id(s: &str) -> bool {
    is_hub_id(s)
}

/// The data files of hub dataset `id` for `split`, with the hub settings of the environment.
/// `default_config` is a folder used when the repository has one of that name and `id` names
/// no folder (GSM8K's `main`).
pub fn resolve(
    id: &str,
    split: Option<&str>,
    default_config: Option<&str>,
) -> Result<Vec<PathBuf>> {
    resolve_with(&Hub::from_env(), id, split, default_config)
}

/// [`resolve`] with explicit hub settings.
pub fn resolve_with(
    hub: &Hub,
    id: &str,
    split: Option<&str>,
    default_config: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let rid = RepoId::parse(id, RepoKind::Dataset)
        .ok_or_else(|| DataError::Options(format!("`{id}` is no hub dataset id (`org/name`)")))?;
    let root = rid.root();
    let not_cached = |missing: String| DataError::HubNotCached {
        repo: rid.spec(),
        missing,
        looked_in: vec![hub.cache.clone()],
        hint: if hub.offline {
            "HF_HUB_OFFLINE is set (offline mode): unset it to download".into()
        } else {
            format!(
                "download it first (`huggingface-cli download --repo-type dataset {}`)",
                rid.repo
            )
        },
    };
    let pick_in = |snap: &Path| {
        pick(
            snap,
            rid.path.as_deref(),
            split,
            default_config,
            &not_cached,
        )
    };
    let cached = hub.snapshot(&root).map(|snap| pick_in(&snap));
    match cached {
        Some(Ok(files)) => return Ok(files),
        Some(Err(e)) if !hub.can_download() => return Err(e),
        None if !hub.can_download() => {
            return Err(not_cached(format!("`{}/snapshots/*`", root.folder_name())))
        }
        _ => {}
    }
    let (_, listing) = hub.list_files(&root)?;
    let wanted = select(&listing, rid.path.as_deref(), split, default_config);
    if wanted.is_empty() {
        return Err(DataError::HubNoSplit {
            repo: rid.spec(),
            split: split.map(str::to_string),
            listing: listing
                .into_iter()
                .filter(|f| Format::of(Path::new(f)).is_some())
                .collect(),
        });
    }
    pick_in(&hub.fetch(&root, &wanted)?)
}

/// The folder inside the repository that holds the data: `sub`, else `default_config` when the
/// repository has it, else the top.
fn data_root(
    has_dir: impl Fn(&str) -> bool,
    sub: Option<&str>,
    default_config: Option<&str>,
) -> Option<String> {
    match sub {
        Some(s) => Some(s.to_string()),
        None => default_config.filter(|c| has_dir(c)).map(str::to_string),
    }
}

/// Keeps one format when a split ships several copies (Parquet, then JSONL, then JSONL.gz).
fn one_format<T: Clone>(files: &[T], path: impl Fn(&T) -> &Path) -> Vec<T> {
    for fmt in [Format::Parquet, Format::Jsonl, Format::JsonlGz] {
        let some: Vec<T> = files
            .iter()
            .filter(|p| Format::of(path(p)) == Some(fmt))
            .cloned()
            .collect();
        if !some.is_empty() {
            return some;
        }
    }
    files.to_vec()
}

/// The listed files (paths inside the repository) that the split needs.
fn select(
    listing: &[String],
    sub: Option<&str>,
    split: Option<&str>,
    default_config: Option<&str>,
) -> Vec<String> {
    let prefix = data_root(
        |d| listing.iter().any(|f| f.starts_with(&format!("{d}/"))),
        sub,
        default_config,
    );
    let mut files: Vec<String> = listing
        .iter()
        .filter(|f| Format::of(Path::new(f.as_str())).is_some())
        .filter(|f| {
            let rel = match &prefix {
                Some(p) if f.as_str() == p => return true,
                Some(p) => match f.strip_prefix(&format!("{p}/")) {
                    Some(r) => r,
                    None => return false,
                },
                None => f.as_str(),
            };
            split.is_none_or(|s| matches_split(Path::new(rel), s))
        })
        .cloned()
        .collect();
    files.sort();
    one_format(&files, |f| Path::new(f.as_str()))
}

/// The data files of a snapshot folder for the split.
fn pick(
    snapshot: &Path,
    sub: Option<&str>,
    split: Option<&str>,
    default_config: Option<&str>,
    not_cached: &dyn Fn(String) -> DataError,
) -> Result<Vec<PathBuf>> {
    let mut root = snapshot.to_path_buf();
    if let Some(d) = data_root(|d| snapshot.join(d).is_dir(), sub, default_config) {
        root.push(d);
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
    Ok(one_format(&files, |p| p.as_path()))
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
    fn listings_give_the_files_of_the_split() {
        let listing: Vec<String> = [
            "README.md",
            "main/test-00000-of-00001.parquet",
            "main/train-00000-of-00001.parquet",
            "socratic/test-00000-of-00001.parquet",
            "harmless-base/test.jsonl.gz",
            "harmless-base/train.jsonl.gz",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            select(&listing, None, Some("test"), Some("main")),
            ["main/test-00000-of-00001.parquet"]
        );
        assert_eq!(
            select(&listing, Some("harmless-base"), Some("test"), None),
            ["harmless-base/test.jsonl.gz"]
        );
        assert!(select(&listing, Some("main"), Some("validation"), None).is_empty());
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
        let mut hub = Hub::new(&cache, "http://127.0.0.1:9");
        hub.offline = true;
        let got = resolve_with(&hub, "openai/gsm8k", Some("test"), Some("main")).unwrap();
        assert_eq!(got, vec![snap.join("main/test-00000-of-00001.parquet")]);
        let got = resolve_with(&hub, "openai/gsm8k/socratic", Some("test"), None).unwrap();
        assert_eq!(got, vec![snap.join("socratic/test-00000-of-00001.parquet")]);

        let e = resolve_with(&hub, "openai/gsm8k", Some("validation"), Some("main"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("openai/gsm8k") && e.contains("validation"),
            "{e}"
        );
        let e = resolve_with(&hub, "HuggingFaceH4/MATH-500", Some("test"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HuggingFaceH4/MATH-500") && e.contains("datasets--HuggingFaceH4--MATH-500"),
            "{e}"
        );
    }
}
