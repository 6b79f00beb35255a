//! Downloads through the `hf-hub` crate (its tokio client), run on a thread of their own so a
//! caller inside an async runtime can use them too.
//!
//! hf-hub writes `blobs/ETAG.sync.part`, renames it to `blobs/ETAG` when every byte is there and
//! only then links `snapshots/COMMIT/FILE` to it, so a download killed midway leaves no file that
//! [`Hub::cached`] accepts (the part file is resumed or restarted next time). hf-hub sets no
//! timeouts; a watchdog here ends a request that sees no byte for [`Hub::etag_timeout`] (before
//! the first) or [`Hub::download_timeout`] (between chunks).

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hf_hub::api::tokio::{ApiBuilder, ApiError, Progress};
use hf_hub::{Repo, RepoType};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Hub, HubError, HubResult, RepoId, RepoKind};

/// When bytes last arrived, and whether any did.
#[derive(Clone)]
struct Activity(Arc<Mutex<(Instant, bool)>>);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(Mutex::new((Instant::now(), false))))
    }
    fn touch(&self) {
        if let Ok(mut a) = self.0.lock() {
            *a = (Instant::now(), true);
        }
    }
    fn idle(&self) -> (Duration, bool) {
        self.0
            .lock()
            .map(|a| (a.0.elapsed(), a.1))
            .unwrap_or((Duration::ZERO, true))
    }
}

/// hf-hub's progress hook: a bar on a terminal, else one line per file; feeds the watchdog.
#[derive(Clone)]
struct Report {
    bar: Option<ProgressBar>,
    activity: Activity,
    label: String,
}

impl Progress for Report {
    async fn init(&mut self, size: usize, _filename: &str) {
        self.activity.touch();
        match &self.bar {
            Some(bar) => {
                bar.set_length(size as u64);
                bar.set_message(self.label.clone());
            }
            None => eprintln!("downloading {} ({size} bytes)", self.label),
        }
    }
    async fn update(&mut self, size: usize) {
        self.activity.touch();
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }
    async fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

fn hf_repo(repo: &RepoId) -> Repo {
    let kind = match repo.kind {
        RepoKind::Model => RepoType::Model,
        RepoKind::Dataset => RepoType::Dataset,
    };
    Repo::with_revision(repo.repo.clone(), kind, repo.revision.clone())
}

/// Runs `work` on a fresh thread with a current-thread runtime.
fn on_runtime<T, F, Fut>(work: F) -> HubResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = HubResult<T>>,
{
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HubError::Io {
                path: PathBuf::from("<tokio runtime>"),
                source,
            })?;
        rt.block_on(work())
    });
    handle
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Awaits `fut` unless no byte arrived for the timeout that applies; `Err(seconds)` then.
async fn watched<T>(
    fut: impl Future<Output = T>,
    activity: &Activity,
    hub: &Hub,
) -> std::result::Result<T, u64> {
    tokio::pin!(fut);
    loop {
        tokio::select! {
            r = &mut fut => return Ok(r),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                let (idle, started) = activity.idle();
                let limit = if started { hub.download_timeout } else { hub.etag_timeout };
                if idle > limit {
                    return Err(limit.as_secs_f64().ceil() as u64);
                }
            }
        }
    }
}

fn api(hub: &Hub) -> HubResult<hf_hub::api::tokio::Api> {
    ApiBuilder::new()
        .with_cache_dir(hub.cache.clone())
        .with_endpoint(hub.endpoint.clone())
        .with_token(hub.token.clone())
        .with_progress(false)
        .build()
        .map_err(|e| HubError::Network {
            repo: String::new(),
            file: String::new(),
            endpoint: hub.endpoint.clone(),
            source: Box::new(e),
        })
}

fn api_error(hub: &Hub, repo: &RepoId, what: &str, url: String, e: ApiError) -> HubError {
    if let ApiError::RequestError(re) = &e {
        if let Some(status) = re.status() {
            let url = re.url().map_or(url, |u| u.to_string());
            match status.as_u16() {
                s @ (401 | 403) => {
                    return HubError::Unauthorized {
                        repo: repo.spec(),
                        status: s,
                        url,
                        token_set: hub.token.is_some(),
                    }
                }
                s @ 404 => {
                    return HubError::NotFound {
                        repo: repo.spec(),
                        what: what.to_string(),
                        url,
                        status: s,
                    }
                }
                _ => {}
            }
        }
    }
    HubError::Network {
        repo: repo.spec(),
        file: what.to_string(),
        endpoint: hub.endpoint.clone(),
        source: Box::new(e),
    }
}

fn timeout(hub: &Hub, repo: &RepoId, file: &str, seconds: u64) -> HubError {
    HubError::Timeout {
        repo: repo.spec(),
        file: file.to_string(),
        endpoint: hub.endpoint.clone(),
        seconds,
    }
}

/// The repository listing at its revision: (commit, files).
pub(super) fn list(hub: &Hub, repo: &RepoId) -> HubResult<(String, Vec<String>)> {
    let (hub, repo) = (hub.clone(), repo.clone());
    on_runtime(move || async move {
        let api = api(&hub)?;
        let r = api.repo(hf_repo(&repo));
        let url = format!("{}/api/{}", hub.endpoint, hf_repo(&repo).api_url());
        let activity = Activity::new();
        let what = format!("revision `{}`", repo.revision);
        let info = watched(r.info(), &activity, &hub)
            .await
            .map_err(|s| timeout(&hub, &repo, "the file listing", s))?
            .map_err(|e| api_error(&hub, &repo, &what, url, e))?;
        Ok((
            info.sha,
            info.siblings.into_iter().map(|s| s.rfilename).collect(),
        ))
    })
}

/// Downloads `files` of `repo` into the cache; the snapshot folder holding all of them.
pub(super) fn fetch(hub: &Hub, repo: &RepoId, files: &[&String]) -> HubResult<PathBuf> {
    let (hub2, repo2) = (hub.clone(), repo.clone());
    let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
    let wanted = files.clone();
    on_runtime(move || async move {
        let (hub, repo) = (hub2, repo2);
        let api = api(&hub)?;
        let r = api.repo(hf_repo(&repo));
        let terminal = std::io::stderr().is_terminal();
        for file in &files {
            let activity = Activity::new();
            let bar = terminal.then(|| {
                let bar = ProgressBar::new(0);
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
                ) {
                    bar.set_style(style);
                }
                bar
            });
            let report = Report {
                bar,
                activity: activity.clone(),
                label: format!("{}/{}", repo.repo, file),
            };
            watched(r.download_with_progress(file, report), &activity, &hub)
                .await
                .map_err(|s| timeout(&hub, &repo, file, s))?
                .map_err(|e| api_error(&hub, &repo, file, r.url(file), e))?;
        }
        Ok(())
    })?;
    for f in &wanted {
        if hub.cached(repo, f).is_none() {
            return Err(hub.miss(repo, f));
        }
    }
    hub.snapshot(repo)
        .ok_or_else(|| hub.miss(repo, "the snapshot"))
}
