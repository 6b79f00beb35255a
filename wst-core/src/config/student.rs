//! `[student]`: the model being instructed — in-process on tch or behind an OpenAI-compatible
//! endpoint — and how it is asked.
//!
//! The TOML stays one flat table (`kind` plus the fields of that kind) so that `--set` and
//! `deny_unknown_fields` work as for every other section (serde cannot deny unknown fields of a
//! flattened, internally tagged enum); code that depends on the kind reads the typed view
//! [`StudentConfig::backend`], which holds only the fields that kind uses.

use serde::{Deserialize, Serialize};

use super::DType;
use crate::{InstructionRole, SamplingParams};

/// What answers the queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StudentKind {
    /// A model run in-process on tch.
    #[default]
    Local,
    /// An OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, hosted APIs).
    Openai,
}

/// `[student]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Local or HTTP.
    pub kind: StudentKind,
    /// Local: path or hub id. HTTP: the model name sent in requests.
    pub model: String,
    /// Local: weight type.
    pub dtype: DType,
    /// HTTP: base URLs (ending before `/chat/completions`), used round-robin.
    pub base_urls: Vec<String>,
    /// HTTP: name of the environment variable that holds the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// HTTP: requests in flight at once, per base URL.
    pub max_concurrency: usize,
    /// HTTP: seconds before a request is abandoned and retried.
    pub timeout_s: f64,
    /// HTTP: retries after the first attempt.
    pub max_retries: u32,
    /// Local: prompts per forward batch.
    pub batch_size: usize,
    /// K: replies per (query, instruction).
    pub samples: usize,
    /// Replies per query without instruction for the baseline `s_i`.
    pub baseline_samples: usize,
    /// Sampling of replies.
    pub sampling: SamplingParams,
    /// Where the instruction goes: `auto` (the system message unless a local student's chat
    /// template rejects one; HTTP students: the system message), `system` or `user` (the start
    /// of the user message).
    pub instruction_role: InstructionRole,
    /// A step whose share of failed student replies is above this stops the run (after saving
    /// the finished steps); 1 never stops.
    pub max_failure_rate: f64,
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            kind: StudentKind::Local,
            model: String::new(),
            dtype: DType::Auto,
            base_urls: Vec::new(),
            api_key_env: None,
            max_concurrency: 16,
            timeout_s: 120.0,
            max_retries: 5,
            batch_size: 64,
            samples: 10,
            baseline_samples: 10,
            sampling: SamplingParams {
                temperature: 0.7,
                max_new_tokens: 512,
                ..SamplingParams::default()
            },
            instruction_role: InstructionRole::Auto,
            max_failure_rate: 0.5,
        }
    }
}

/// The fields of `[student]` that its `kind` uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StudentBackend<'a> {
    /// `kind = "local"`: `model` is a path or hub id, loaded on `run.device`.
    Local {
        /// Weight type.
        dtype: DType,
        /// Prompts per forward batch.
        batch_size: usize,
    },
    /// `kind = "openai"`: `model` is the name sent in requests.
    Openai {
        /// Base URLs, used round-robin.
        base_urls: &'a [String],
        /// The environment variable holding the API key.
        api_key_env: Option<&'a str>,
        /// Requests in flight at once, per base URL.
        max_concurrency: usize,
        /// Seconds before a request is abandoned and retried.
        timeout_s: f64,
        /// Retries after the first attempt.
        max_retries: u32,
    },
}

impl StudentConfig {
    /// The fields of this student's kind.
    pub fn backend(&self) -> StudentBackend<'_> {
        match self.kind {
            StudentKind::Local => StudentBackend::Local {
                dtype: self.dtype,
                batch_size: self.batch_size,
            },
            StudentKind::Openai => StudentBackend::Openai {
                base_urls: &self.base_urls,
                api_key_env: self.api_key_env.as_deref(),
                max_concurrency: self.max_concurrency,
                timeout_s: self.timeout_s,
                max_retries: self.max_retries,
            },
        }
    }

    /// Problems of `[student]`, keys under `prefix`.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.model.trim().is_empty() {
            p.push(format!("{prefix}.model must name a model"));
        }
        match self.backend() {
            StudentBackend::Openai {
                base_urls,
                api_key_env,
                max_concurrency,
                timeout_s,
                ..
            } => {
                if base_urls.is_empty() {
                    p.push(format!(
                        "{prefix}.base_urls must list at least one URL for kind = \"openai\""
                    ));
                }
                for u in base_urls {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        p.push(format!(
                            "{prefix}.base_urls: {u:?} must start with http:// or https://"
                        ));
                    }
                }
                if let Some(env) = api_key_env {
                    if env.is_empty() || env.contains(['=', ' ']) {
                        p.push(format!(
                            "{prefix}.api_key_env must be an environment variable name, got {env:?}"
                        ));
                    }
                }
                if max_concurrency == 0 {
                    p.push(format!("{prefix}.max_concurrency must be >= 1"));
                }
                if !(timeout_s.is_finite() && timeout_s > 0.0) {
                    p.push(format!("{prefix}.timeout_s must be > 0, got {timeout_s}"));
                }
            }
            StudentBackend::Local { batch_size, .. } => {
                if batch_size == 0 {
                    p.push(format!("{prefix}.batch_size must be >= 1"));
                }
            }
        }
        if self.samples == 0 {
            p.push(format!("{prefix}.samples (K) must be >= 1"));
        }
        if !(0.0..=1.0).contains(&self.max_failure_rate) {
            p.push(format!(
                "{prefix}.max_failure_rate must be in [0, 1] (a share of replies), got {}",
                self.max_failure_rate
            ));
        }
        p.extend(self.sampling.problems(&format!("{prefix}.sampling")));
        p
    }
}
