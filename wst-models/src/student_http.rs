//! A student behind an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, hosted
//! APIs), with `n = k` replies per request.
//!
//! Requests run on a private tokio runtime with at most `max_concurrency` in flight per base URL;
//! several base URLs are used round-robin (a retry goes to the next one). Each attempt has a
//! timeout; 429, 5xx, timeouts, dropped connections and malformed bodies are retried up to
//! `max_retries` times with exponential backoff and jitter, or after the server's `Retry-After`.
//! What is still missing after the last retry becomes a [`StudentReply::Failed`] value, never an
//! empty answer. The API key is read from the environment variable named in the config, sent only
//! in the `Authorization` header, and never printed (not even by `Debug`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use tokio::sync::Semaphore;
use wst_core::{
    Completion, FinishReason, PromptTemplates, SamplingParams, Student, StudentConfig,
    StudentReply, StudentRequest,
};

/// Errors of building or probing an [`HttpStudent`].
#[derive(Debug, thiserror::Error)]
pub enum HttpStudentError {
    /// No base URL was given.
    #[error("student.base_urls is empty: give at least one OpenAI-compatible base URL")]
    NoBaseUrl,
    /// A base URL is not http(s).
    #[error("student.base_urls: {0:?} must start with http:// or https://")]
    BadUrl(String),
    /// The API key variable is not set.
    #[error("student.api_key_env names ${0}, which is not set (or not valid UTF-8)")]
    MissingApiKey(String),
    /// The HTTP client or runtime could not be built.
    #[error("cannot start the HTTP client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The endpoint did not answer the probe as expected.
    #[error("student endpoint {url}: {reason}")]
    Probe {
        /// The URL probed.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The API key; its `Debug` shows only whether it is set.
#[derive(Clone)]
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Counters of an [`HttpStudent`], cumulative since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpStats {
    /// HTTP attempts sent.
    pub attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Attempts answered with usable choices.
    pub ok: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Other non-2xx answers (not retried except 408).
    pub client_errors: u64,
    /// Attempts that ran past the timeout.
    pub timeouts: u64,
    /// Connection errors (refused, reset, dropped).
    pub connection_errors: u64,
    /// 2xx answers whose body was not a chat completion.
    pub malformed: u64,
    /// Replies returned as completions.
    pub completed_replies: u64,
    /// Replies returned as failures after the last retry.
    pub failed_replies: u64,
}

#[derive(Debug, Default)]
struct Counters {
    attempts: AtomicU64,
    retries: AtomicU64,
    ok: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    client_errors: AtomicU64,
    timeouts: AtomicU64,
    connection_errors: AtomicU64,
    malformed: AtomicU64,
    completed_replies: AtomicU64,
    failed_replies: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Backoff of retries: `min(max, base * 2^retry)`, scaled by a random factor in [0.5, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub base: Duration,
    /// Longest delay (before jitter).
    pub max: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
        exp.min(self.max)
            .mul_f64(0.5 + 0.5 * rand::thread_rng().gen::<f64>())
    }
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    model: String,
    base_urls: Vec<String>,
    semaphores: Vec<Arc<Semaphore>>,
    next: AtomicUsize,
    api_key: Option<ApiKey>,
    timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
    counters: Counters,
}

/// A student served over HTTP by an OpenAI-compatible chat-completions endpoint.
pub struct HttpStudent {
    shared: Arc<Shared>,
    templates: PromptTemplates,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for HttpStudent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStudent")
            .field("model", &self.shared.model)
            .field("base_urls", &self.shared.base_urls)
            .field(
                "api_key",
                &self.shared.api_key.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout", &self.shared.timeout)
            .field("max_retries", &self.shared.max_retries)
            .finish_non_exhaustive()
    }
}

/// One attempt's outcome.
enum Attempt {
    /// Choices received.
    Ok(Vec<Completion>),
    /// Worth retrying (with the server's `Retry-After`, if any).
    Retry(String, Option<Duration>),
    /// Not worth retrying (400, 401, 404, ...).
    Fatal(String),
}

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

impl Shared {
    async fn attempt(&self, url_index: usize, body: &serde_json::Value) -> Attempt {
        let base = &self.base_urls[url_index];
        let url = format!("{base}/chat/completions");
        let _permit = match self.semaphores[url_index].acquire().await {
            Ok(p) => p,
            Err(_) => return Attempt::Fatal("the client is shutting down".into()),
        };
        inc(&self.counters.attempts, 1);
        let mut req = self.client.post(&url).timeout(self.timeout).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(&key.0);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return self.transport_error(&url, &e),
        };
        let status = resp.status();
        let ra = retry_after(resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return self.transport_error(&url, &e),
        };
        if status.as_u16() == 429 {
            inc(&self.counters.rate_limited, 1);
            return Attempt::Retry(format!("{url}: 429 Too Many Requests"), ra);
        }
        if status.is_server_error() {
            inc(&self.counters.server_errors, 1);
            return Attempt::Retry(format!("{url}: HTTP {status}"), ra);
        }
        if !status.is_success() {
            inc(&self.counters.client_errors, 1);
            let msg = format!(
                "{url}: HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            );
            return if status.as_u16() == 408 {
                Attempt::Retry(msg, ra)
            } else {
                Attempt::Fatal(msg)
            };
        }
        match serde_json::from_str::<ChatResponse>(&text) {
            Ok(r) if !r.choices.is_empty() => {
                inc(&self.counters.ok, 1);
                Attempt::Ok(
                    r.choices
                        .into_iter()
                        .map(|c| Completion {
                            text: c.message.content.unwrap_or_default(),
                            num_tokens: None,
                            finish_reason: if c.finish_reason.as_deref() == Some("length") {
                                FinishReason::Length
                            } else {
                                FinishReason::Stop
                            },
                        })
                        .collect(),
                )
            }
            Ok(_) => {
                inc(&self.counters.malformed, 1);
                Attempt::Retry(format!("{url}: answer has no choices"), None)
            }
            Err(e) => {
                inc(&self.counters.malformed, 1);
                Attempt::Retry(format!("{url}: malformed chat completion: {e}"), None)
            }
        }
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> Attempt {
        if e.is_timeout() {
            inc(&self.counters.timeouts, 1);
            Attempt::Retry(format!("{url}: timed out after {:?}", self.timeout), None)
        } else {
            inc(&self.counters.connection_errors, 1);
            let mut msg = format!("{url}: {e}");
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            Attempt::Retry(msg, None)
        }
    }

    /// All `k` replies of one request: attempts until `k` choices arrived or retries ran out.
    async fn request(
        self: Arc<Self>,
        messages: serde_json::Value,
        k: usize,
        sampling: SamplingParams,
    ) -> Vec<StudentReply> {
        let mut got: Vec<Completion> = Vec::with_capacity(k);
        let mut attempts = 0u32;
        let mut last_error = String::new();
        // Servers may cap `n`: ask again for the rest, at most k times in all.
        let mut top_ups = 0usize;
        while got.len() < k && top_ups < k {
            let mut body = serde_json::json!({
                "model": self.model,
                "messages": messages,
                "n": k - got.len(),
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "max_tokens": sampling.max_new_tokens,
            });
            if !sampling.stop.is_empty() {
                body["stop"] = serde_json::json!(sampling.stop);
            }
            if let Some(seed) = sampling.seed {
                body["seed"] = serde_json::json!(seed.wrapping_add(top_ups as u64) & 0x7fff_ffff);
            }
            let mut retry = 0u32;
            let ok = loop {
                let idx = self.next.fetch_add(1, Ordering::Relaxed) % self.base_urls.len();
                attempts += 1;
                match self.attempt(idx, &body).await {
                    Attempt::Ok(c) => break Some(c),
                    Attempt::Fatal(e) => {
                        last_error = e;
                        break None;
                    }
                    Attempt::Retry(e, ra) => {
                        last_error = e;
                        if retry >= self.max_retries {
                            break None;
                        }
                        tokio::time::sleep(self.backoff.delay(retry, ra)).await;
                        retry += 1;
                        inc(&self.counters.retries, 1);
                    }
                }
            };
            match ok {
                Some(c) => got.extend(c.into_iter().take(k - got.len())),
                None => break,
            }
            top_ups += 1;
        }
        let completed = got.len();
        let mut out: Vec<StudentReply> = got.into_iter().map(StudentReply::Completed).collect();
        while out.len() < k {
            out.push(StudentReply::failed(last_error.clone(), attempts));
        }
        inc(&self.counters.completed_replies, completed as u64);
        inc(&self.counters.failed_replies, (k - completed) as u64);
        out
    }
}

impl HttpStudent {
    /// Builds the client from `[student]`: base URLs, model name, concurrency, timeout, retries
    /// and the API key variable (read now; an unset variable is an error naming it).
    pub fn from_config(
        config: &StudentConfig,
        templates: PromptTemplates,
    ) -> Result<Self, HttpStudentError> {
        if config.base_urls.is_empty() {
            return Err(HttpStudentError::NoBaseUrl);
        }
        let mut base_urls = Vec::new();
        for u in &config.base_urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(HttpStudentError::BadUrl(u.clone()));
            }
            base_urls.push(u.trim_end_matches('/').to_string());
        }
        let api_key = match &config.api_key_env {
            Some(var) => Some(ApiKey(
                std::env::var(var).map_err(|_| HttpStudentError::MissingApiKey(var.clone()))?,
            )),
            None => None,
        };
        let timeout = Duration::from_secs_f64(config.timeout_s.max(0.001));
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .build()
            .map_err(|e| HttpStudentError::Client(Box::new(e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("wst-http-student")
            .build()
            .map_err(|e| HttpStudentError::Client(Box::new(e)))?;
        let per_url = config.max_concurrency.max(1);
        Ok(HttpStudent {
            shared: Arc::new(Shared {
                client,
                model: config.model.clone(),
                semaphores: base_urls
                    .iter()
                    .map(|_| Arc::new(Semaphore::new(per_url)))
                    .collect(),
                base_urls,
                next: AtomicUsize::new(0),
                api_key,
                timeout,
                max_retries: config.max_retries,
                backoff: Backoff::default(),
                counters: Counters::default(),
            }),
            templates,
            runtime,
        })
    }

    /// Replaces the retry backoff (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        // Between calls nothing else owns the shared state (tasks end inside each call).
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.backoff = backoff;
        }
        self
    }

    /// The counters so far.
    pub fn stats(&self) -> HttpStats {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        HttpStats {
            attempts: g(&c.attempts),
            retries: g(&c.retries),
            ok: g(&c.ok),
            rate_limited: g(&c.rate_limited),
            server_errors: g(&c.server_errors),
            client_errors: g(&c.client_errors),
            timeouts: g(&c.timeouts),
            connection_errors: g(&c.connection_errors),
            malformed: g(&c.malformed),
            completed_replies: g(&c.completed_replies),
            failed_replies: g(&c.failed_replies),
        }
    }

    /// Checks that every base URL answers `GET {base}/models` with a list that includes the model
    /// (for `--dry-run`). The error names the URL and what went wrong.
    pub fn probe(&self) -> Result<(), HttpStudentError> {
        let shared = self.shared.clone();
        self.runtime.block_on(async move {
            for base in &shared.base_urls {
                let url = format!("{base}/models");
                let err = |reason: String| HttpStudentError::Probe {
                    url: url.clone(),
                    reason,
                };
                let mut req = shared.client.get(&url).timeout(shared.timeout);
                if let Some(key) = &shared.api_key {
                    req = req.bearer_auth(&key.0);
                }
                let resp = req.send().await.map_err(|e| {
                    err(if e.is_timeout() {
                        format!("no answer within {:?}", shared.timeout)
                    } else {
                        format!("cannot connect ({e}); is the server running?")
                    })
                })?;
                let status = resp.status();
                let text = resp.text().await.map_err(|e| err(e.to_string()))?;
                if !status.is_success() {
                    return Err(err(format!(
                        "HTTP {status} (expected 200 with the model list)"
                    )));
                }
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| err(format!("the model list is not JSON: {e}")))?;
                if let Some(data) = v.get("data").and_then(|d| d.as_array()) {
                    let ids: Vec<&str> = data
                        .iter()
                        .filter_map(|m| m.get("id").and_then(|i| i.as_str()))
                        .collect();
                    if !ids.is_empty() && !ids.contains(&shared.model.as_str()) {
                        return Err(err(format!(
                            "model {:?} is not served here (it serves {ids:?})",
                            shared.model
                        )));
                    }
                }
            }
            Ok(())
        })
    }
}

impl Student for HttpStudent {
    fn id(&self) -> String {
        format!("openai:{}", self.shared.model)
    }

    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
    ) -> wst_core::Result<Vec<Vec<StudentReply>>> {
        let mut jobs = Vec::with_capacity(requests.len());
        for r in requests {
            let p = self.templates.student(r.query, r.instruction)?;
            let mut messages = Vec::new();
            if let Some(s) = p.system {
                messages.push(serde_json::json!({"role": "system", "content": s}));
            }
            messages.push(serde_json::json!({"role": "user", "content": p.user}));
            jobs.push((serde_json::Value::Array(messages), r.k));
        }
        let shared = self.shared.clone();
        let sampling = sampling.clone();
        self.runtime.block_on(async move {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(m, k)| tokio::spawn(shared.clone().request(m, k, sampling.clone())))
                .collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(
                    h.await
                        .map_err(|e| wst_core::Error::other("an HTTP student task failed", e))?,
                );
            }
            Ok(out)
        })
    }
}
