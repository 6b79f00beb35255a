//! [`HttpReward`]: a remote reward endpoint (a reward model behind vLLM/SGLang, or any service)
//! in OpenRLHF's remote-RM shape.
//!
//! Replies are sent in batches of `batch_size`, one POST per batch, at most `max_concurrency` in
//! flight:
//!
//! ```json
//! {"query": ["What is 2 + 4?6"], "prompts": ["What is 2 + 4?"], "labels": ["6"],
//!  "replies": ["6"], "instructions": ["Add the numbers."]}
//! ```
//!
//! `query[i]` is `prompts[i]` followed directly by the reply (so `query[i][len(prompts[i]):]` is
//! the reply, as in OpenRLHF), `labels[i]` the reference answer (`""` when there is none);
//! `replies` and `instructions` (`""` for none) are extras a custom server may use. The answer is
//! `{"rewards": [x, ...]}` with one finite number per reply. 429, 5xx, timeouts, dropped
//! connections and answers of another shape are retried with backoff; a batch that still fails
//! stops the run with the URL and the last error.

use std::sync::Arc;

use wst_core::{Result, Reward, RewardComponentConfig, RewardComponents, RewardInput};

use crate::http_pool::{Backoff, HttpCounts, HttpPool};
use crate::ComponentError;

/// A remote reward model scored in batches (see the module docs).
#[derive(Debug)]
pub struct HttpReward {
    name: String,
    url: String,
    batch_size: usize,
    pool: HttpPool,
}

impl HttpReward {
    /// The endpoint of a `kind = "http"` table.
    pub fn from_config(
        name: &str,
        cfg: &RewardComponentConfig,
    ) -> std::result::Result<Self, ComponentError> {
        let url = cfg
            .url
            .clone()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| ComponentError::Config {
                name: name.to_string(),
                reason: format!("url must be an http:// or https:// URL, got {:?}", cfg.url),
            })?;
        Ok(HttpReward {
            name: name.to_string(),
            url,
            batch_size: cfg.batch_size.max(1),
            pool: HttpPool::from_config(name, cfg)?,
        })
    }

    /// Replaces the retry backoff (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.pool.set_backoff(backoff);
        self
    }

    /// Request counters so far.
    pub fn counts(&self) -> HttpCounts {
        self.pool.counts()
    }
}

/// The OpenRLHF remote-RM request body of a batch.
pub fn openrlhf_body(inputs: &[RewardInput<'_>]) -> serde_json::Value {
    let prompts: Vec<&str> = inputs.iter().map(|i| i.query.text.as_str()).collect();
    serde_json::json!({
        "query": inputs.iter().map(|i| format!("{}{}", i.query.text, i.reply)).collect::<Vec<_>>(),
        "prompts": prompts,
        "labels": inputs.iter().map(|i| i.query.reference.as_deref().unwrap_or("")).collect::<Vec<_>>(),
        "replies": inputs.iter().map(|i| i.reply).collect::<Vec<_>>(),
        "instructions": inputs.iter().map(|i| i.instruction.unwrap_or("")).collect::<Vec<_>>(),
    })
}

fn rewards_of(v: &serde_json::Value, n: usize) -> std::result::Result<Vec<f64>, String> {
    let arr = v
        .get("rewards")
        .and_then(|r| r.as_array())
        .ok_or("the answer has no `rewards` list (expected {\"rewards\": [...]})")?;
    if arr.len() != n {
        return Err(format!(
            "`rewards` has {} values for {n} replies",
            arr.len()
        ));
    }
    arr.iter()
        .map(|x| {
            x.as_f64()
                .filter(|f| f.is_finite())
                .ok_or(format!("`rewards` holds {x}, not a finite number"))
        })
        .collect()
}

impl Reward for HttpReward {
    fn component_names(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        let sizes: Vec<usize> = inputs.chunks(self.batch_size).map(<[_]>::len).collect();
        let jobs: Vec<(String, serde_json::Value)> = inputs
            .chunks(self.batch_size)
            .map(|c| (self.url.clone(), openrlhf_body(c)))
            .collect();
        let results = self.pool.post_all(
            jobs,
            Arc::new(move |v: &serde_json::Value, j: usize| rewards_of(v, sizes[j])),
        );
        let mut out = Vec::with_capacity(inputs.len());
        for res in results {
            let vals = res.map_err(|reason| ComponentError::Http {
                name: self.name.clone(),
                url: self.url.clone(),
                reason,
            })?;
            out.extend(
                vals.into_iter()
                    .map(|x| RewardComponents::from_pairs([(self.name.clone(), x)])),
            );
        }
        Ok(out)
    }
}
