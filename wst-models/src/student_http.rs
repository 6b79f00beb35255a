//! A student behind an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, hosted
//! APIs), with `n = k` replies per request.
//!
//! Requests run on a private tokio runtime with at most `max_concurrency` in flight per base URL;
//! several base URLs are used round-robin (a retry goes to the next one). Each attempt has a
//! timeout; 429, 5xx, 408, timeouts, dropped connections and malformed bodies are retried up to
//! `max_retries` times with exponential backoff and jitter, or after the server's `Retry-After`
//! (seconds, or an HTTP-date plus jitter). What is still missing after the last retry becomes a
//! [`StudentReply::Failed`] value, never an empty answer; so does a choice with `null` or missing
//! content or `finish_reason: "content_filter"`. Answers no retry can fix end the whole call with
//! an error naming the status and the server's message: 401, 402, 403, 404, 405, 407, 410 and
//! 415 (a wrong key, model or URL). Other 4xx (400, 413, 422, ...) are about one request (a
//! prompt too long, a parameter the server refuses): that request's replies fail, unretried, and
//! the trainer stops when too many do. The API key is read from the environment variable named
//! in the config, sent only in the `Authorization` header, and never printed (not even by
//! `Debug`, nor when a server echoes it in an error message).

mod reply;
mod retry;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use wst_core::{
    ChatPrompt, Completion, InstructionRole, PromptTemplates, SamplingParams, Student,
    StudentConfig, StudentReply, StudentRequest,
};

pub use retry::Backoff;
use retry::{parse_retry_after, RetryAfter};

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
    /// The endpoint refused a request for a reason no retry can fix (a wrong key, model or URL):
    /// the status, the server's message (the key masked) and what to check.
    #[error("{url} answered {status}: {message}; {hint}")]
    Refused {
        /// The URL requested.
        url: String,
        /// The HTTP status with its reason (`401 Unauthorized`).
        status: String,
        /// What the server said.
        message: String,
        /// What to check.
        hint: String,
    },
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
    /// Choices that were no reply (`null` or missing content, `content_filter`); counted in
    /// `failed_replies` too.
    pub no_content: u64,
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
    no_content: AtomicU64,
    completed_replies: AtomicU64,
    failed_replies: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    model: String,
    base_urls: Vec<String>,
    semaphores: Vec<Arc<Semaphore>>,
    next: AtomicUsize,
    api_key: Option<ApiKey>,
    api_key_env: Option<String>,
    timeout: Duration,
    max_retries: u32,
    backoff: Backoff,
    counters: Counters,
    /// Set by the first refusal (401, 403, 404, ...) of a call: requests still waiting for a
    /// permit are then not sent at all (the call is about to stop).
    refused: AtomicBool,
}

/// A student served over HTTP by an OpenAI-compatible chat-completions endpoint.
pub struct HttpStudent {
    shared: Arc<Shared>,
    templates: PromptTemplates,
    instruction_in_user: bool,
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
    /// Choices received: replies, or why a choice is none.
    Ok(Vec<Result<Completion, String>>),
    /// Worth retrying (with the server's `Retry-After`, if any).
    Retry(String, Option<RetryAfter>),
    /// This request cannot succeed (400, 413, 422, ...): its replies fail, unretried.
    Failed(String),
    /// No request can succeed (401, 403, 404, ...): the whole call stops.
    Refused(HttpStudentError),
}

/// Statuses that say no request to this endpoint can succeed.
fn refuses_every_request(status: u16) -> bool {
    matches!(status, 401 | 402 | 403 | 404 | 405 | 407 | 410 | 415)
}

/// What to check after an answer of `status` from `url`.
fn refusal_hint(status: u16, key_env: Option<&str>, model: &str, base: &str) -> String {
    let key = key_env.map_or(String::new(), |v| format!(" in ${v}"));
    match status {
        401 => match key_env {
            Some(v) => format!("the key in ${v} was not accepted: check the key in ${v}"),
            None => "no key was sent: set student.api_key_env to the variable that holds it".into(),
        },
        402 => format!("the account of the key{key} has no credit or quota left"),
        403 => format!("the key{key} is not allowed to use model `{model}` here"),
        404 => format!(
            "check student.model (`{model}`) and student.base_urls (`{base}`, the part before \
             /chat/completions)"
        ),
        407 => "a proxy wants credentials".into(),
        _ => format!(
            "check student.base_urls (`{base}`): it should be an OpenAI-compatible base URL, \
             ending before /chat/completions"
        ),
    }
}

impl Shared {
    async fn attempt(&self, url_index: usize, body: &serde_json::Value) -> Attempt {
        let base = &self.base_urls[url_index];
        let url = format!("{base}/chat/completions");
        let _permit = match self.semaphores[url_index].acquire().await {
            Ok(p) => p,
            Err(_) => return Attempt::Failed("the client is shutting down".into()),
        };
        if self.refused.load(Ordering::SeqCst) {
            return Attempt::Failed("not sent: the endpoint refused an earlier request".into());
        }
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
        let ra = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => return self.transport_error(&url, &e),
        };
        let code = status.as_u16();
        if code == 429 {
            inc(&self.counters.rate_limited, 1);
            return Attempt::Retry(format!("{url}: 429 Too Many Requests"), ra);
        }
        if status.is_server_error() {
            inc(&self.counters.server_errors, 1);
            return Attempt::Retry(
                format!("{url}: HTTP {status}: {}", self.server_message(&text)),
                ra,
            );
        }
        if !status.is_success() {
            inc(&self.counters.client_errors, 1);
            let message = self.server_message(&text);
            if refuses_every_request(code) {
                self.refused.store(true, Ordering::SeqCst);
                return Attempt::Refused(HttpStudentError::Refused {
                    url,
                    status: status.to_string(),
                    message,
                    hint: refusal_hint(code, self.api_key_env.as_deref(), &self.model, base),
                });
            }
            let msg = format!("{url}: HTTP {status}: {message}");
            return if code == 408 {
                Attempt::Retry(msg, ra)
            } else {
                Attempt::Failed(msg)
            };
        }
        match reply::parse_choices(&text) {
            Ok(choices) => {
                inc(&self.counters.ok, 1);
                Attempt::Ok(
                    choices
                        .into_iter()
                        .map(|c| c.map_err(|e| format!("{url}: {e}")))
                        .collect(),
                )
            }
            Err(e) => {
                inc(&self.counters.malformed, 1);
                Attempt::Retry(format!("{url}: {e}"), None)
            }
        }
    }

    /// The server's message of an error body, with the API key masked should it be echoed.
    fn server_message(&self, body: &str) -> String {
        let msg = reply::server_message(body);
        match &self.api_key {
            Some(key) if key.0.len() >= 8 => msg.replace(&key.0, "<redacted>"),
            _ => msg,
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
    /// `Err` when the endpoint refuses every request (401, 403, 404, ...).
    async fn request(
        self: Arc<Self>,
        messages: serde_json::Value,
        k: usize,
        sampling: SamplingParams,
    ) -> Result<Vec<StudentReply>, HttpStudentError> {
        let mut got: Vec<StudentReply> = Vec::with_capacity(k);
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
            if sampling.top_k > 0 {
                body["top_k"] = serde_json::json!(sampling.top_k);
            }
            if !sampling.stop.is_empty() {
                body["stop"] = serde_json::json!(sampling.stop);
            }
            if let Some(seed) = sampling.seed {
                // Offset by the replies already received: a server that seeds choice i with
                // seed + i then draws new ones, not the first choices again.
                let seed = seed.wrapping_add(got.len() as u64) & 0x7fff_ffff;
                body["seed"] = serde_json::json!(seed);
            }
            let mut retry = 0u32;
            let ok = loop {
                let idx = self.next.fetch_add(1, Ordering::Relaxed) % self.base_urls.len();
                attempts += 1;
                match self.attempt(idx, &body).await {
                    Attempt::Ok(c) => break Some(c),
                    Attempt::Refused(e) => return Err(e),
                    Attempt::Failed(e) => {
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
            let Some(choices) = ok else { break };
            for c in choices.into_iter().take(k - got.len()) {
                got.push(match c {
                    Ok(c) => StudentReply::Completed(c),
                    Err(e) => {
                        inc(&self.counters.no_content, 1);
                        StudentReply::failed(e, attempts)
                    }
                });
            }
            top_ups += 1;
        }
        while got.len() < k {
            got.push(StudentReply::failed(last_error.clone(), attempts));
        }
        let failed = got.iter().filter(|r| r.is_failed()).count();
        inc(&self.counters.completed_replies, (k - failed) as u64);
        inc(&self.counters.failed_replies, failed as u64);
        Ok(got)
    }
}

impl HttpStudent {
    /// Builds the client from `[student]`: base URLs, model name, concurrency, timeout, retries,
    /// the API key variable (read now; an unset variable is an error naming it) and where the
    /// instruction goes (`instruction_role`: `user` opens the user message with it; `auto` and
    /// `system` send it as the system message, since the server's chat template is not visible
    /// from here).
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
                api_key_env: config.api_key_env.clone(),
                timeout,
                max_retries: config.max_retries,
                backoff: Backoff::default(),
                counters: Counters::default(),
                refused: AtomicBool::new(false),
            }),
            templates,
            instruction_in_user: config.instruction_role == InstructionRole::User,
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
            no_content: g(&c.no_content),
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
                    let code = status.as_u16();
                    let mut reason = format!(
                        "HTTP {status}: {} (expected 200 with the model list)",
                        shared.server_message(&text)
                    );
                    if refuses_every_request(code) && code != 404 && code != 405 {
                        let hint =
                            refusal_hint(code, shared.api_key_env.as_deref(), &shared.model, base);
                        reason.push_str(&format!("; {hint}"));
                    }
                    return Err(err(reason));
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
        crate::student::student_id("openai", &self.shared.model, self.instruction_in_user)
    }

    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
    ) -> wst_core::Result<Vec<Vec<StudentReply>>> {
        let mut out: Vec<Option<Vec<StudentReply>>> = vec![None; requests.len()];
        self.generate_each(requests, sampling, &mut |i, r| {
            out[i] = Some(r);
            Ok(())
        })?;
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Hands each request's replies over as its HTTP call finishes (streamed: the trainer
    /// scores them while the others are in flight).
    fn generate_each(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
        on_reply: &mut dyn FnMut(usize, Vec<StudentReply>) -> wst_core::Result<()>,
    ) -> wst_core::Result<()> {
        let mut jobs = Vec::with_capacity(requests.len());
        for r in requests {
            let mut p: ChatPrompt = self.templates.student(r.query, r.instruction)?;
            if self.instruction_in_user {
                p = p.system_in_user();
            }
            let mut messages = Vec::new();
            if let Some(s) = p.system {
                messages.push(serde_json::json!({"role": "system", "content": s}));
            }
            messages.push(serde_json::json!({"role": "user", "content": p.user}));
            jobs.push((serde_json::Value::Array(messages), r.k));
        }
        let shared = self.shared.clone();
        shared.refused.store(false, Ordering::SeqCst);
        let sampling = sampling.clone();
        let id = self.id();
        self.runtime.block_on(async move {
            let mut set = tokio::task::JoinSet::new();
            for (i, (m, k)) in jobs.into_iter().enumerate() {
                let task = shared.clone().request(m, k, sampling.clone());
                set.spawn(async move { (i, task.await) });
            }
            while let Some(done) = set.join_next().await {
                let (i, replies) =
                    done.map_err(|e| wst_core::Error::other("an HTTP student task failed", e))?;
                match replies {
                    Ok(r) => {
                        if let Err(e) = on_reply(i, r) {
                            set.abort_all();
                            return Err(e);
                        }
                    }
                    Err(refused) => {
                        // No other request can succeed either: stop them all now.
                        set.abort_all();
                        return Err(wst_core::Error::other(format!("student {id}"), refused));
                    }
                }
            }
            Ok(())
        })
    }
}
