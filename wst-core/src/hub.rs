//! Hugging Face hub ids, revisions and the cache layout: the one resolver that models, reward
//! models and datasets share.
//!
//! The cache is the one Python's `huggingface_hub` writes and reads, so files are shared both
//! ways: `CACHE/models--ORG--NAME/refs/REVISION` holds a commit hash and
//! `CACHE/models--ORG--NAME/snapshots/COMMIT/FILE` links to `blobs/ETAG` (datasets under
//! `datasets--ORG--NAME`). Every variable of the hub is read here and nowhere else
//! ([`Hub::from_env`]). Lookups are std only; with the `download` feature a miss is fetched
//! through the `hf-hub` crate ([`Hub::fetch`]), without it (or with `HF_HUB_OFFLINE=1`) a miss
//! is an error naming the repository, the file and the cache.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[cfg(feature = "download")]
mod download;
#[cfg(feature = "testing")]
pub mod standin;

/// Whether a repository holds a model or a dataset (the URL and cache folder differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `models--ORG--NAME`, `{endpoint}/ORG/NAME/...`.
    Model,
    /// `datasets--ORG--NAME`, `{endpoint}/datasets/ORG/NAME/...`.
    Dataset,
}

impl RepoKind {
    fn prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }
}

/// A repository at a revision, with an optional path inside it, parsed from a spec such as
/// `Qwen/Qwen2.5-0.5B-Instruct`, `org/name@v1.0`, `Anthropic/hh-rlhf/harmless-base` or
/// `org/gguf-repo/model.Q4_0.gguf@COMMIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// `ORG/NAME`.
    pub repo: String,
    /// Model or dataset.
    pub kind: RepoKind,
    /// A branch, tag or commit hash (`main` when none is given).
    pub revision: String,
    /// A folder or file inside the repository (`harmless-base`, `model.Q4_0.gguf`).
    pub path: Option<String>,
}

/// True when every `/`-separated part of `s` is a hub name (`[A-Za-z0-9._-]+`, not `.`/`..`).
fn hub_parts(s: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = parts.iter().all(|p| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    });
    ok.then_some(parts)
}

impl RepoId {
    /// Parses `ORG/NAME[/PATH][@REVISION]`; `None` when `spec` has not that shape or names an
    /// existing local path (a local folder always wins over a hub id).
    pub fn parse(spec: &str, kind: RepoKind) -> Option<RepoId> {
        if spec.starts_with(['/', '.', '~']) || Path::new(spec).exists() {
            return None;
        }
        let (name, revision) = match spec.rsplit_once('@') {
            Some((n, r)) if !r.is_empty() && !r.contains(char::is_whitespace) => (n, r),
            Some(_) => return None,
            None => (spec, "main"),
        };
        let parts = hub_parts(name)?;
        if parts.len() < 2 {
            return None;
        }
        let path = (parts.len() > 2).then(|| parts[2..].join("/"));
        Some(RepoId {
            repo: format!("{}/{}", parts[0], parts[1]),
            kind,
            revision: revision.to_string(),
            path,
        })
    }

    /// The cache folder name, `models--ORG--NAME` or `datasets--ORG--NAME`.
    pub fn folder_name(&self) -> String {
        format!("{}--{}", self.kind.prefix(), self.repo.replace('/', "--"))
    }

    /// How it is written back: `ORG/NAME[/PATH][@REVISION]` (no `@main`).
    pub fn spec(&self) -> String {
        let mut s = self.repo.clone();
        if let Some(p) = &self.path {
            s.push('/');
            s.push_str(p);
        }
        if self.revision != "main" {
            s.push('@');
            s.push_str(&self.revision);
        }
        s
    }

    /// The same repository and revision without a path (a file's repository).
    pub fn root(&self) -> RepoId {
        RepoId {
            path: None,
            ..self.clone()
        }
    }
}

/// The commit a cached hub model id resolves to (the name of its snapshot folder), for pinning
/// a run to the weights it loaded. `None` for a local path or an id the cache lacks.
pub fn cached_commit(spec: &str) -> Option<String> {
    let id = RepoId::parse(spec, RepoKind::Model)?;
    let snap = Hub::from_env().snapshot(&id.root())?;
    Some(snap.file_name()?.to_string_lossy().into_owned())
}

/// True when `spec` is shaped like a hub id (`ORG/NAME`, optionally `/PATH` and `@REVISION`)
/// and is no existing local path. The one rule for models and datasets.
pub fn is_hub_id(spec: &str) -> bool {
    RepoId::parse(spec, RepoKind::Model).is_some()
}

/// What can go wrong finding or fetching a hub file. Messages name the repository, the file
/// and what to do; none carries a token.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `HF_HUB_OFFLINE` is set and the cache lacks a file.
    #[error(
        "`{repo}`: {file} is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set (offline \
         mode): unset HF_HUB_OFFLINE to download it, or give a local path",
        cache.display()
    )]
    Offline {
        /// The repository spec.
        repo: String,
        /// What is missing.
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// This build cannot download (wst-core without the `download` feature).
    #[error(
        "`{repo}`: {file} is not in the Hugging Face cache {} and this build has no downloads \
         (wst-core feature `download`); fetch it first (`huggingface-cli download {repo}`) or give \
         a local path",
        cache.display()
    )]
    NotCached {
        /// The repository spec.
        repo: String,
        /// What is missing.
        file: String,
        /// The cache folder searched.
        cache: PathBuf,
    },
    /// The hub refused access (401/403): a gated or private repository.
    #[error(
        "`{repo}`: the hub answered {status} for {url}: the repository is gated or private; {}",
        if *.token_set { "the token in use (HF_TOKEN or the token file) has no access to it" }
        else { "set HF_TOKEN (or run `huggingface-cli login`) with a token that has access" }
    )]
    Unauthorized {
        /// The repository spec.
        repo: String,
        /// The HTTP status.
        status: u16,
        /// The URL asked for.
        url: String,
        /// Whether a token was sent.
        token_set: bool,
    },
    /// The repository, revision or file does not exist on the hub.
    #[error(
        "`{repo}`: {what} not found on the hub ({url}, HTTP {status}): check the id and revision, \
         or give a local path"
    )]
    NotFound {
        /// The repository spec.
        repo: String,
        /// The file or revision.
        what: String,
        /// The URL asked for.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Nothing arrived for too long (`HF_HUB_ETAG_TIMEOUT` before the first byte,
    /// `HF_HUB_DOWNLOAD_TIMEOUT` between bytes).
    #[error(
        "`{repo}`: no answer from {endpoint} for {seconds} s while fetching {file} (timeouts: \
         HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT; mirror: HF_ENDPOINT; or set \
         HF_HUB_OFFLINE=1 to use the cache only)"
    )]
    Timeout {
        /// The repository spec.
        repo: String,
        /// The file.
        file: String,
        /// The endpoint.
        endpoint: String,
        /// How long it waited.
        seconds: u64,
    },
    /// The request failed (connection refused, reset, bad answer).
    #[error(
        "`{repo}`: fetching {file} from {endpoint} failed (offline? HF_ENDPOINT names a mirror, \
         HF_HUB_OFFLINE=1 uses the cache only; or give a local path)"
    )]
    Network {
        /// The repository spec.
        repo: String,
        /// The file.
        file: String,
        /// The endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A cache file could not be read or written.
    #[error("hub cache {}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`HubError`].
pub type HubResult<T> = std::result::Result<T, HubError>;

/// Where and how to reach the hub: the cache folder, endpoint, token, offline flag, timeouts.
#[derive(Clone)]
pub struct Hub {
    /// The cache folder (`HF_HUB_CACHE`, ...).
    pub cache: PathBuf,
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `$HF_HOME/token`).
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE=1`: the cache only.
    pub offline: bool,
    /// Longest wait for an answer before the first byte (`HF_HUB_ETAG_TIMEOUT`, default 10 s).
    pub etag_timeout: Duration,
    /// Longest wait between two received chunks (`HF_HUB_DOWNLOAD_TIMEOUT`, default 10 s).
    pub download_timeout: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("cache", &self.cache)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("offline", &self.offline)
            .finish()
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl Hub {
    /// The settings from the environment, with `huggingface_hub`'s names and defaults.
    pub fn from_env() -> Hub {
        let home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            env("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"))
                .join("huggingface")
        });
        let cache = env("HF_HUB_CACHE")
            .or_else(|| env("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token_file = env("HF_TOKEN_PATH")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("token"));
        let token = env("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(token_file)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        let secs = |k: &str, default: f64| {
            let s = env(k).and_then(|v| v.trim().parse::<f64>().ok());
            Duration::from_secs_f64(s.filter(|s| *s > 0.0).unwrap_or(default))
        };
        Hub {
            cache,
            endpoint: env("HF_ENDPOINT")
                .map(|e| e.trim_end_matches('/').to_string())
                .unwrap_or_else(|| "https://huggingface.co".into()),
            token,
            offline: env("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            etag_timeout: secs("HF_HUB_ETAG_TIMEOUT", 10.0),
            download_timeout: secs("HF_HUB_DOWNLOAD_TIMEOUT", 10.0),
        }
    }

    /// Settings for a cache folder and endpoint, no token, online (tests, tools).
    pub fn new(cache: impl Into<PathBuf>, endpoint: impl Into<String>) -> Hub {
        Hub {
            cache: cache.into(),
            endpoint: endpoint.into(),
            token: None,
            offline: false,
            etag_timeout: Duration::from_secs(10),
            download_timeout: Duration::from_secs(10),
        }
    }

    /// The cache folder of a repository.
    pub fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.cache.join(repo.folder_name())
    }

    /// The cached snapshot folder of `repo` at its revision: the commit `refs/REVISION` names,
    /// or `snapshots/REVISION` for a commit hash. `None` when neither exists.
    pub fn snapshot(&self, repo: &RepoId) -> Option<PathBuf> {
        let dir = self.repo_dir(repo);
        let snaps = dir.join("snapshots");
        if let Ok(commit) = std::fs::read_to_string(dir.join("refs").join(&repo.revision)) {
            let p = snaps.join(commit.trim());
            if p.is_dir() {
                return Some(p);
            }
        }
        let p = snaps.join(&repo.revision);
        if p.is_dir() {
            return Some(p);
        }
        // A cache copied without `refs/`: `main` is its newest snapshot.
        if repo.revision != "main" {
            return None;
        }
        let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snaps)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| {
                let t = e.metadata().and_then(|m| m.modified());
                (t.unwrap_or(std::time::UNIX_EPOCH), e.path())
            })
            .collect();
        all.sort();
        all.pop().map(|(_, p)| p)
    }

    /// The cached, complete copy of `file` (a path inside the repository) of `repo`, if any.
    /// A link whose blob is missing (a download that never finished) is no copy.
    pub fn cached(&self, repo: &RepoId, file: &str) -> Option<PathBuf> {
        let p = self.snapshot(repo)?.join(file);
        std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
        Some(p)
    }

    /// The error for a file that the cache lacks and that cannot be fetched now.
    pub fn miss(&self, repo: &RepoId, file: &str) -> HubError {
        let (repo, file, cache) = (repo.spec(), file.to_string(), self.cache.clone());
        if self.offline {
            HubError::Offline { repo, file, cache }
        } else {
            HubError::NotCached { repo, file, cache }
        }
    }

    /// True when this build can download and `HF_HUB_OFFLINE` is not set.
    pub fn can_download(&self) -> bool {
        cfg!(feature = "download") && !self.offline
    }

    /// The files of `repo` at its revision (paths inside it), from the hub's listing
    /// (`GET {endpoint}/api/{models|datasets}/REPO/revision/REV`), with the commit it resolved to.
    pub fn list_files(&self, repo: &RepoId) -> HubResult<(String, Vec<String>)> {
        if !self.can_download() {
            return Err(self.miss(repo, "the file listing"));
        }
        #[cfg(feature = "download")]
        return download::list(self, repo);
        #[cfg(not(feature = "download"))]
        unreachable!("can_download is false without the download feature")
    }

    /// The snapshot folder of `repo` holding every one of `files`: cached ones are used as they
    /// are, the others downloaded (one progress bar per file on a terminal, one line otherwise).
    pub fn fetch(&self, repo: &RepoId, files: &[String]) -> HubResult<PathBuf> {
        let missing: Vec<&String> = files
            .iter()
            .filter(|f| self.cached(repo, f).is_none())
            .collect();
        if missing.is_empty() {
            if let Some(s) = self.snapshot(repo) {
                return Ok(s);
            }
        }
        if !self.can_download() {
            let first = missing.first().map_or("the snapshot", |f| f.as_str());
            return Err(self.miss(repo, first));
        }
        #[cfg(feature = "download")]
        return download::fetch(self, repo, &missing);
        #[cfg(not(feature = "download"))]
        unreachable!("can_download is false without the download feature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_with_paths_and_revisions() {
        let r = RepoId::parse("Qwen/Qwen2.5-0.5B-Instruct", RepoKind::Model).unwrap();
        assert_eq!(
            (r.repo.as_str(), r.revision.as_str(), r.path.as_deref()),
            ("Qwen/Qwen2.5-0.5B-Instruct", "main", None)
        );
        assert_eq!(r.folder_name(), "models--Qwen--Qwen2.5-0.5B-Instruct");
        let r = RepoId::parse("Anthropic/hh-rlhf/harmless-base@abc", RepoKind::Dataset).unwrap();
        assert_eq!(r.folder_name(), "datasets--Anthropic--hh-rlhf");
        assert_eq!(r.path.as_deref(), Some("harmless-base"));
        assert_eq!(r.revision, "abc");
        assert_eq!(r.spec(), "Anthropic/hh-rlhf/harmless-base@abc");
        assert!(is_hub_id("org/name.v2") && is_hub_id("Ray2333/gpt2-large-harmless-reward_model"));
        for bad in [
            "gpt2",
            "a//b",
            "/abs/path",
            "./rel/x",
            "../x",
            "org/na me",
            "org/x@",
            "~/m",
        ] {
            assert!(!is_hub_id(bad), "{bad}");
        }
        let dir = std::env::temp_dir().join(format!("wst-hubid-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let local = format!("{}/b", dir.display());
        assert!(!is_hub_id(&local));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshots_resolve_by_ref_or_commit_and_misses_name_the_file() {
        let tmp = std::env::temp_dir().join(format!("wst-hubcache-{}", std::process::id()));
        let repo_dir = tmp.join("models--org--tiny");
        std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
        std::fs::create_dir_all(repo_dir.join("snapshots/abc123")).unwrap();
        std::fs::write(repo_dir.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(repo_dir.join("snapshots/abc123/config.json"), "{}").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            "../../blobs/gone",
            repo_dir.join("snapshots/abc123/model.safetensors"),
        )
        .unwrap();
        let mut hub = Hub::new(&tmp, "http://127.0.0.1:9");
        let id = RepoId::parse("org/tiny", RepoKind::Model).unwrap();
        assert!(hub
            .cached(&id, "config.json")
            .unwrap()
            .ends_with("abc123/config.json"));
        assert!(
            hub.cached(&id, "model.safetensors").is_none(),
            "dangling link"
        );
        let at_commit = RepoId::parse("org/tiny@abc123", RepoKind::Model).unwrap();
        assert!(hub.cached(&at_commit, "config.json").is_some());
        assert!(hub
            .snapshot(&RepoId::parse("org/tiny@v2", RepoKind::Model).unwrap())
            .is_none());
        hub.offline = true;
        let e = hub
            .fetch(&id, &["tokenizer.json".to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("org/tiny") && e.contains("tokenizer.json") && e.contains("offline"),
            "{e}"
        );
        assert_eq!(
            hub.fetch(&id, &["config.json".into()]).unwrap(),
            repo_dir.join("snapshots/abc123")
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut hub = Hub::new("/c", "http://h");
        hub.token = Some("hf_secret".into());
        assert!(!format!("{hub:?}").contains("hf_secret"));
    }
}
