//! `[teacher]`: the model being trained, its dtype and sampling, and `[teacher.lora]` for
//! training low-rank adapters instead of every weight.

use serde::{Deserialize, Serialize};

use crate::hub::{RepoId, RepoKind};
use crate::{DType, SamplingParams};

/// `[teacher]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// Local path (HF folder or `.gguf`) or a hub model id.
    pub model: String,
    /// The hub revision (branch, tag or commit) of a hub `model`; the same as `model@REVISION`.
    /// `wst train` writes the commit it resolved into the run's `config.toml`, so a resume or a
    /// rerun of that config loads the same weights.
    pub revision: Option<String>,
    /// Weight and compute type.
    pub dtype: DType,
    /// Sampling of instructions; `max_new_tokens` caps the instruction length.
    pub sampling: SamplingParams,
    /// Train LoRA adapters on a frozen base instead of the whole model (absent: full training).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
}

impl TeacherConfig {
    /// The model spec to load: `model@revision` for a hub id with `revision` set, else `model`.
    pub fn model_spec(&self) -> String {
        match (
            &self.revision,
            crate::hub::RepoId::parse(&self.model, RepoKind::Model),
        ) {
            (Some(rev), Some(id)) if !self.model.contains('@') => RepoId {
                revision: rev.clone(),
                ..id
            }
            .spec(),
            _ => self.model.clone(),
        }
    }

    /// Problems of this section (keys under `prefix`); the checks that involve other sections
    /// are in [`crate::Config::problems`].
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.model.trim().is_empty() {
            p.push(format!(
                "{prefix}.model must name a model (path, .gguf file or hub id)"
            ));
        }
        if let Some(rev) = &self.revision {
            match RepoId::parse(&self.model, RepoKind::Model) {
                None => p.push(format!(
                    "{prefix}.revision = \"{rev}\" but {prefix}.model `{}` is no hub id",
                    self.model
                )),
                Some(id) if self.model.contains('@') && id.revision != *rev => p.push(format!(
                    "{prefix}.revision = \"{rev}\" but {prefix}.model names revision `{}`",
                    id.revision
                )),
                Some(_) => {}
            }
        }
        if self.dtype == DType::Int8 {
            p.push(format!(
                "{prefix}.dtype = \"int8\" is not supported: the teacher is trained, and int8 \
                 projections have no gradients; use auto, f32, bf16 or f16 (int8 is for the frozen \
                 local student, student.dtype)"
            ));
        }
        let s = &self.sampling;
        p.extend(s.problems(&format!("{prefix}.sampling")));
        // The loss scores instructions under softmax(logits / temperature): a truncated
        // sampling distribution would make every update off-policy.
        if s.top_p < 1.0 {
            p.push(format!(
                "{prefix}.sampling.top_p = {} is not supported: the GRPO loss scores instructions \
                 under softmax(logits / temperature), so top-p truncation would make the update \
                 off-policy; set top_p = 1.0 (the temperature alone shapes the teacher)",
                s.top_p
            ));
        }
        if s.top_k > 0 {
            p.push(format!(
                "{prefix}.sampling.top_k = {} is not supported: the GRPO loss scores instructions \
                 under softmax(logits / temperature), so top-k truncation would make the update \
                 off-policy; set top_k = 0",
                s.top_k
            ));
        }
        if let Some(l) = &self.lora {
            p.extend(l.problems(&format!("{prefix}.lora")));
        }
        p
    }
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            model: String::new(),
            revision: None,
            dtype: DType::Auto,
            sampling: SamplingParams {
                temperature: 1.0,
                max_new_tokens: 64,
                ..SamplingParams::default()
            },
            lora: None,
        }
    }
}

/// The projections of a decoder layer LoRA can adapt (Hugging Face module names), the default
/// `targets`: attention and MLP.
pub const LORA_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// `[teacher.lora]`: low-rank adapters (PEFT's LoRA). Each target projection `W` of every layer
/// computes `W x + (alpha / rank) * B A dropout(x)` with `A` `[rank, in]` (Kaiming-uniform) and
/// `B` `[out, rank]` (zeros, so training starts at the base model); only `A` and `B` are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// The rank `r` of each adapter.
    pub rank: i64,
    /// `lora_alpha`: the adapters' output is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapters' input in the update's forward pass (never when sampling or
    /// scoring the sampling policy).
    pub dropout: f64,
    /// The projections to adapt, among [`LORA_TARGETS`].
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            targets: LORA_TARGETS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// `alpha / rank`, the factor of the adapters' output.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// Problems of this section (keys under `prefix`).
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.rank < 1 {
            p.push(format!("{prefix}.rank must be >= 1, got {}", self.rank));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            p.push(format!("{prefix}.alpha must be > 0, got {}", self.alpha));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            p.push(format!(
                "{prefix}.dropout must be in [0, 1), got {}",
                self.dropout
            ));
        }
        if self.targets.is_empty() {
            p.push(format!(
                "{prefix}.targets is empty: name projections among {}",
                LORA_TARGETS.join(", ")
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !LORA_TARGETS.contains(&t.as_str()) {
                p.push(format!(
                    "{prefix}.targets: unknown projection `{t}` (choose among {})",
                    LORA_TARGETS.join(", ")
                ));
            } else if !seen.insert(t.as_str()) {
                p.push(format!("{prefix}.targets names `{t}` twice"));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_defaults_are_valid_and_bad_values_are_named() {
        let l = LoraConfig::default();
        assert!(l.problems("teacher.lora").is_empty());
        assert_eq!(l.scale(), 2.0);
        let bad = LoraConfig {
            rank: 0,
            alpha: -1.0,
            dropout: 1.0,
            targets: vec!["q_proj".into(), "qproj".into(), "q_proj".into()],
        };
        let p = bad.problems("teacher.lora").join("\n");
        for needle in [
            "teacher.lora.rank must be >= 1",
            "teacher.lora.alpha must be > 0",
            "teacher.lora.dropout must be in [0, 1)",
            "unknown projection `qproj`",
            "names `q_proj` twice",
        ] {
            assert!(p.contains(needle), "{needle} missing in:\n{p}");
        }
        let none = LoraConfig {
            targets: vec![],
            ..LoraConfig::default()
        };
        assert!(none.problems("x")[0].contains("x.targets is empty"));
    }
}
