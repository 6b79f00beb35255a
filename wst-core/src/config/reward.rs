//! `[reward]`: the shorthand kinds (`math`, `reward-model`) and the weights over components;
//! the `[reward.components]` table itself is in `reward_config.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::DatasetKind;
use crate::{RewardComponentConfig, RewardWeights};

/// How replies are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RewardKind {
    /// 1 when the extracted answer equals the reference, else 0 (component `correct`).
    #[default]
    Math,
    /// Sequence-classifier reward models, one component per entry of `reward.models`.
    RewardModel,
}

/// `[reward]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Which scorer (a shorthand for one `[reward.components]` set; ignored when those are given).
    pub kind: RewardKind,
    /// Weights `w` over components (shorthand kinds: sum 1, each >= 0; components: any finite).
    pub weights: BTreeMap<String, f64>,
    /// Reward models: component name -> path or hub id.
    pub models: BTreeMap<String, String>,
    /// Math: fall back to the last number of a reply when nothing else marks the answer.
    pub last_number_fallback: bool,
    /// Reward models: pairs per forward batch.
    pub batch_size: usize,
    /// Reward components by name (`[reward.components.NAME]`), mixed by `weights`.
    pub components: BTreeMap<String, RewardComponentConfig>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            kind: RewardKind::Math,
            weights: BTreeMap::from([("correct".to_string(), 1.0)]),
            models: BTreeMap::new(),
            last_number_fallback: true,
            batch_size: 16,
            components: BTreeMap::new(),
        }
    }
}

impl RewardConfig {
    /// Problems of `[reward]` (keys under `reward`) for queries of `dataset`.
    pub fn problems(&self, dataset: DatasetKind) -> Vec<String> {
        let mut p = Vec::new();
        if !self.components.is_empty() {
            p.extend(self.component_problems());
            if dataset == DatasetKind::HhRlhf
                && self
                    .components
                    .values()
                    .any(|c| c.kind == Some(crate::ComponentKind::Math))
            {
                p.push(
                    "a math reward component needs reference answers, which hh-rlhf has not".into(),
                );
            }
            return p;
        }
        p.extend(RewardWeights(self.weights.clone()).problems("reward.weights"));
        match self.kind {
            RewardKind::Math => {
                for k in self.weights.keys() {
                    if k != "correct" {
                        p.push(format!(
                            "reward.weights.{k}: the math reward has only the component `correct`"
                        ));
                    }
                }
                if dataset == DatasetKind::HhRlhf {
                    p.push(
                        "reward.kind = \"math\" needs reference answers, which hh-rlhf has not; \
                         use reward.kind = \"reward-model\""
                            .into(),
                    );
                }
            }
            RewardKind::RewardModel => {
                if self.models.is_empty() {
                    p.push("reward.models must map component names to reward models".into());
                }
                for k in self.weights.keys() {
                    if !self.models.contains_key(k) {
                        p.push(format!("reward.weights.{k} has no model in reward.models"));
                    }
                }
                if self.batch_size == 0 {
                    p.push("reward.batch_size must be >= 1".into());
                }
            }
        }
        p
    }
}
