//! [`JudgeReward`]: an LLM judge behind any OpenAI-compatible `/chat/completions` endpoint.
//!
//! Each reply becomes one chat request whose user message is the table's minijinja `template`
//! rendered with `query`, `reference`, `reply`, `instruction` and `metadata` (and an optional
//! `system` message). The last match of `score_regex` in the judge's answer (its first capture
//! group, else the whole match) is the score, and `score_range = [low, high]` maps it linearly
//! onto [0, 1]. A reply the judge could not score — the request failed after its retries, the
//! answer held no match, or the score lay outside the range — gets no value (it is counted and
//! left out of the means, never scored 0). When every reply of a call fails at the HTTP level
//! the endpoint is taken to be down and the run stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wst_core::{Result, Reward, RewardComponentConfig, RewardComponents, RewardInput};

use crate::http_pool::{Backoff, HttpCounts, HttpPool};
use crate::ComponentError;

/// Counts of a judge, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JudgeCounts {
    /// Replies sent to the judge.
    pub replies: u64,
    /// Replies scored.
    pub scored: u64,
    /// Requests that failed after their retries.
    pub request_failures: u64,
    /// Answers without a score the regex could find.
    pub no_score: u64,
    /// Scores outside `score_range`.
    pub out_of_range: u64,
}

/// An LLM judge (see the module docs).
pub struct JudgeReward {
    name: String,
    url: String,
    model: String,
    system: Option<String>,
    env: minijinja::Environment<'static>,
    regex: regex::Regex,
    range: [f64; 2],
    max_tokens: usize,
    temperature: f64,
    pool: HttpPool,
    counts: [AtomicU64; 5],
}

impl std::fmt::Debug for JudgeReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgeReward")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("regex", &self.regex.as_str())
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Why one reply got no score.
enum Miss {
    Request(String),
    NoScore,
    OutOfRange,
}

impl JudgeReward {
    /// The judge of a `kind = "judge"` table: the template and regex compiled, the client built.
    pub fn from_config(
        name: &str,
        cfg: &RewardComponentConfig,
    ) -> std::result::Result<Self, ComponentError> {
        let bad = |reason: String| ComponentError::Config {
            name: name.to_string(),
            reason,
        };
        let url = cfg
            .url
            .as_deref()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| {
                bad(format!(
                    "url must be an http(s) base URL, got {:?}",
                    cfg.url
                ))
            })?;
        let model = cfg
            .model
            .clone()
            .ok_or_else(|| bad("model must name the judge model".into()))?;
        let template = cfg
            .template
            .clone()
            .ok_or_else(|| bad("template is required".into()))?;
        let mut env = minijinja::Environment::new();
        env.add_template_owned("judge", template)
            .map_err(|e| bad(format!("template: {e}")))?;
        let regex =
            regex::Regex::new(&cfg.score_regex).map_err(|e| bad(format!("score_regex: {e}")))?;
        let [lo, hi] = cfg.score_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(bad(format!(
                "score_range [{lo}, {hi}] must have low < high"
            )));
        }
        Ok(JudgeReward {
            name: name.to_string(),
            url: format!("{}/chat/completions", url.trim_end_matches('/')),
            model,
            system: cfg.system.clone(),
            env,
            regex,
            range: cfg.score_range,
            max_tokens: cfg.max_tokens,
            temperature: cfg.temperature,
            pool: HttpPool::from_config(name, cfg)?,
            counts: Default::default(),
        })
    }

    /// Replaces the retry backoff (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.pool.set_backoff(backoff);
        self
    }

    /// Judge counters so far.
    pub fn counts(&self) -> JudgeCounts {
        let g = |i: usize| self.counts[i].load(Ordering::Relaxed);
        JudgeCounts {
            replies: g(0),
            scored: g(1),
            request_failures: g(2),
            no_score: g(3),
            out_of_range: g(4),
        }
    }

    /// Request counters so far.
    pub fn http_counts(&self) -> HttpCounts {
        self.pool.counts()
    }

    /// The user message for one reply.
    pub fn render(&self, input: &RewardInput<'_>) -> std::result::Result<String, ComponentError> {
        let q = input.query;
        self.env
            .get_template("judge")
            .and_then(|t| {
                t.render(minijinja::context! {
                    query => q.text,
                    reference => q.reference,
                    reply => input.reply,
                    instruction => input.instruction,
                    metadata => q.metadata,
                })
            })
            .map_err(|e| ComponentError::Config {
                name: self.name.clone(),
                reason: format!("template: {e}"),
            })
    }

    /// The score in [0, 1] of a judge's answer, if it holds one in range.
    fn parse(&self, answer: &str) -> std::result::Result<f64, Miss> {
        let caps = self
            .regex
            .captures_iter(answer)
            .last()
            .ok_or(Miss::NoScore)?;
        let m = caps.get(1).or_else(|| caps.get(0)).ok_or(Miss::NoScore)?;
        let x: f64 = m.as_str().trim().parse().map_err(|_| Miss::NoScore)?;
        let [lo, hi] = self.range;
        if !(lo..=hi).contains(&x) {
            return Err(Miss::OutOfRange);
        }
        Ok((x - lo) / (hi - lo))
    }
}

fn content_of(v: &serde_json::Value) -> std::result::Result<String, String> {
    v.get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .and_then(|m| m.get("content"))
        .and_then(|c| c.as_str())
        .map(str::to_string)
        .ok_or_else(|| "the answer is not a chat completion with choices[0].message.content".into())
}

impl Reward for JudgeReward {
    fn component_names(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        let mut jobs = Vec::with_capacity(inputs.len());
        for i in inputs {
            let mut messages = Vec::new();
            if let Some(s) = &self.system {
                messages.push(serde_json::json!({"role": "system", "content": s}));
            }
            messages.push(serde_json::json!({"role": "user", "content": self.render(i)?}));
            jobs.push((
                self.url.clone(),
                serde_json::json!({
                    "model": self.model,
                    "messages": messages,
                    "temperature": self.temperature,
                    "max_tokens": self.max_tokens,
                }),
            ));
        }
        let answers = self
            .pool
            .post_all(jobs, Arc::new(|v: &serde_json::Value, _| content_of(v)));
        let inc = |i: usize| {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        };
        let mut out = Vec::with_capacity(inputs.len());
        let mut last_http = None;
        let mut http_failures = 0;
        for a in answers {
            inc(0);
            let got = a.map_err(Miss::Request).and_then(|t| self.parse(&t));
            out.push(match got {
                Ok(x) => {
                    inc(1);
                    RewardComponents::from_pairs([(self.name.clone(), x)])
                }
                Err(m) => {
                    match m {
                        Miss::Request(e) => {
                            inc(2);
                            http_failures += 1;
                            last_http = Some(e);
                        }
                        Miss::NoScore => {
                            inc(3);
                        }
                        Miss::OutOfRange => {
                            inc(4);
                        }
                    }
                    RewardComponents::default()
                }
            });
        }
        if !inputs.is_empty() && http_failures == inputs.len() {
            return Err(ComponentError::Http {
                name: self.name.clone(),
                url: self.url.clone(),
                reason: format!(
                    "every one of {} judge requests failed; the last: {}",
                    inputs.len(),
                    last_http.unwrap_or_default()
                ),
            }
            .into());
        }
        let c = self.counts();
        let missed = out.iter().filter(|c| c.0.is_empty()).count();
        if missed > 0 {
            tracing::warn!(
                component = %self.name,
                missed,
                of = inputs.len(),
                request_failures = c.request_failures,
                no_score = c.no_score,
                out_of_range = c.out_of_range,
                "the judge could not score some replies (left out, not scored 0)"
            );
        }
        Ok(out)
    }
}
