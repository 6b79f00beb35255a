//! Sampling parameters shared by teachers, local students and HTTP students.

use serde::{Deserialize, Serialize};

/// How to sample a continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens; 0 disables it.
    pub top_k: usize,
    /// Maximum number of new tokens.
    pub max_new_tokens: usize,
    /// Extra strings that end generation (the end-of-sequence tokens always do).
    pub stop: Vec<String>,
    /// Seed for reproducible sampling; `None` draws from the caller's generator.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop: Vec::new(),
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of at most `max_new_tokens`.
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            temperature: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }

    /// True when the parameters select argmax decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// Every problem with the parameters, each prefixed by `prefix` (e.g. `student.sampling`).
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            p.push(format!(
                "{prefix}.temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            p.push(format!(
                "{prefix}.top_p must be in (0, 1], got {}",
                self.top_p
            ));
        }
        if self.max_new_tokens == 0 {
            p.push(format!("{prefix}.max_new_tokens must be >= 1"));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            p.push(format!("{prefix}.stop must not contain empty strings"));
        }
        p
    }

    /// A stable text key of the parameters that change the output distribution (for caches).
    /// The seed is left out: a baseline is an expectation, not one draw.
    pub fn cache_key(&self) -> String {
        format!(
            "t={};p={};k={};n={};stop={}",
            self.temperature,
            self.top_p,
            self.top_k,
            self.max_new_tokens,
            serde_json::to_string(&self.stop).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_all_reported() {
        let s = SamplingParams {
            temperature: -1.0,
            top_p: 0.0,
            max_new_tokens: 0,
            stop: vec![String::new()],
            ..SamplingParams::default()
        };
        assert_eq!(s.problems("x").len(), 4);
        assert!(SamplingParams::default().problems("x").is_empty());
    }

    #[test]
    fn cache_key_ignores_seed_but_not_temperature() {
        let a = SamplingParams::default();
        let b = SamplingParams {
            seed: Some(3),
            ..a.clone()
        };
        let c = SamplingParams {
            temperature: 0.5,
            ..a.clone()
        };
        assert_eq!(a.cache_key(), b.cache_key());
        assert_ne!(a.cache_key(), c.cache_key());
    }
}
