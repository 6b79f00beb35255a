//! The HTTP side shared by the `http` and `judge` components: one reqwest client on a private
//! tokio runtime, at most `max_concurrency` requests in flight, a timeout per attempt, and
//! retries with exponential backoff and jitter on 429, 5xx, 408, timeouts, dropped connections
//! and answers the caller cannot use (garbage). Other 4xx answers are not retried.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Semaphore;
use wst_core::RewardComponentConfig;

use crate::ComponentError;

/// Backoff of retries: `min(max, base * 2^retry)`, scaled by a random factor in [0.5, 1), or the
/// server's `Retry-After` (at most `max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
        exp.min(self.max)
            .mul_f64(0.5 + 0.5 * rand::thread_rng().gen::<f64>())
    }
}

/// Counters of an endpoint, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpCounts {
    /// Attempts sent.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// 429 and 5xx answers.
    pub server_errors: u64,
    /// Attempts past the timeout.
    pub timeouts: u64,
    /// Connection errors.
    pub connection_errors: u64,
    /// 2xx answers the caller could not use.
    pub malformed: u64,
    /// Requests that failed after their retries.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    server_errors: AtomicU64,
    timeouts: AtomicU64,
    connection_errors: AtomicU64,
    malformed: AtomicU64,
    failed: AtomicU64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The API key; never printed.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    client: reqwest::Client,
    semaphore: Semaphore,
    api_key: Option<ApiKey>,
    timeout: Duration,
    max_retries: u32,
    pub(crate) backoff: Backoff,
    counters: Counters,
}

/// A client for one endpoint.
#[derive(Debug)]
pub(crate) struct HttpPool {
    pub(crate) shared: Arc<Shared>,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// Takes the JSON answer to job `j` or says why it is garbage.
pub(crate) type Accept<T> =
    Arc<dyn Fn(&serde_json::Value, usize) -> Result<T, String> + Send + Sync>;

enum Attempt<T> {
    Ok(T),
    Retry(String, Option<Duration>),
    Fatal(String),
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn excerpt(s: &str) -> String {
    let mut e: String = s.chars().take(200).collect();
    if e.len() < s.len() {
        e.push_str("...");
    }
    e
}

impl HttpPool {
    /// The client of a `http` or `judge` table (reads the API key variable now).
    pub(crate) fn from_config(
        name: &str,
        cfg: &RewardComponentConfig,
    ) -> Result<Self, ComponentError> {
        let bad = |reason: String| ComponentError::Config {
            name: name.to_string(),
            reason,
        };
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(ApiKey(std::env::var(var).map_err(|_| {
                bad(format!("api_key_env names ${var}, which is not set"))
            })?)),
            None => None,
        };
        let timeout = Duration::from_secs_f64(cfg.timeout_s.max(0.001));
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("wst-http-reward")
            .build()
            .map_err(|e| bad(format!("cannot start the HTTP runtime: {e}")))?;
        Ok(HttpPool {
            shared: Arc::new(Shared {
                client,
                semaphore: Semaphore::new(cfg.max_concurrency.max(1)),
                api_key,
                timeout,
                max_retries: cfg.max_retries,
                backoff: Backoff::default(),
                counters: Counters::default(),
            }),
            runtime,
        })
    }

    /// Replaces the backoff (tests use short delays).
    pub(crate) fn set_backoff(&mut self, backoff: Backoff) {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.backoff = backoff;
        }
    }

    /// POSTs every `(url, body)` (at most `max_concurrency` at once), each with its retries;
    /// one result per job, in order.
    pub(crate) fn post_all<T: Send + 'static>(
        &self,
        jobs: Vec<(String, serde_json::Value)>,
        accept: Accept<T>,
    ) -> Vec<Result<T, String>> {
        let shared = self.shared.clone();
        self.runtime.block_on(async move {
            let handles: Vec<_> = jobs
                .into_iter()
                .enumerate()
                .map(|(j, (url, body))| {
                    tokio::spawn(shared.clone().post(url, body, j, accept.clone()))
                })
                .collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(
                    h.await
                        .unwrap_or_else(|e| Err(format!("the request task failed: {e}"))),
                );
            }
            out
        })
    }

    /// The counters so far.
    pub(crate) fn counts(&self) -> HttpCounts {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HttpCounts {
            attempts: g(&c.attempts),
            retries: g(&c.retries),
            server_errors: g(&c.server_errors),
            timeouts: g(&c.timeouts),
            connection_errors: g(&c.connection_errors),
            malformed: g(&c.malformed),
            failed: g(&c.failed),
        }
    }
}

impl Shared {
    async fn attempt<T>(
        &self,
        url: &str,
        body: &serde_json::Value,
        job: usize,
        accept: &Accept<T>,
    ) -> Attempt<T> {
        let _permit = match self.semaphore.acquire().await {
            Ok(p) => p,
            Err(_) => return Attempt::Fatal("the client is shutting down".into()),
        };
        inc(&self.counters.attempts);
        let mut req = self.client.post(url).timeout(self.timeout).json(body);
        if let Some(k) = &self.api_key {
            req = req.bearer_auth(&k.0);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                inc(&self.counters.timeouts);
                Attempt::Retry(format!("no answer within {:?}", self.timeout), None)
            } else {
                inc(&self.counters.connection_errors);
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg.push_str(&format!(": {s}"));
                    src = s.source();
                }
                Attempt::Retry(msg, None)
            }
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = resp.status();
        let ra = retry_after(resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return transport(e),
        };
        if status.as_u16() == 429 || status.is_server_error() {
            inc(&self.counters.server_errors);
            return Attempt::Retry(format!("HTTP {status}: {}", excerpt(&text)), ra);
        }
        if !status.is_success() {
            let msg = format!("HTTP {status}: {}", excerpt(&text));
            return if status.as_u16() == 408 {
                Attempt::Retry(msg, ra)
            } else {
                Attempt::Fatal(msg)
            };
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&text)
            .map_err(|e| format!("the answer is not JSON ({e}): {}", excerpt(&text)))
            .and_then(|v| accept(&v, job).map_err(|e| format!("{e}: {}", excerpt(&text))));
        match parsed {
            Ok(t) => Attempt::Ok(t),
            Err(e) => {
                inc(&self.counters.malformed);
                Attempt::Retry(e, None)
            }
        }
    }

    /// POSTs `body` to `url` until `accept` takes the JSON answer or the retries run out.
    async fn post<T>(
        self: Arc<Self>,
        url: String,
        body: serde_json::Value,
        job: usize,
        accept: Accept<T>,
    ) -> Result<T, String> {
        let mut retry = 0u32;
        loop {
            match self.attempt(&url, &body, job, &accept).await {
                Attempt::Ok(t) => return Ok(t),
                Attempt::Fatal(e) => {
                    inc(&self.counters.failed);
                    return Err(e);
                }
                Attempt::Retry(e, ra) => {
                    if retry >= self.max_retries {
                        inc(&self.counters.failed);
                        return Err(format!("{e} (after {} attempts)", retry + 1));
                    }
                    tokio::time::sleep(self.backoff.delay(retry, ra)).await;
                    retry += 1;
                    inc(&self.counters.retries);
                }
            }
        }
    }
}
