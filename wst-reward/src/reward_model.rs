//! Reward models: GPT-2 sequence classifiers (the HH-RLHF `harmless` and `helpful` models), one
//! named reward component per model.
//!
//! Each (query, reply) is scored as the reward-model cards do: the query as an HH-RLHF dialogue
//! ending in `\n\nAssistant:` and the reply after one space, encoded as a pair (query ids, then
//! reply ids). Replies are scored in batches of `batch_size`; several components that name the
//! same model load and run it once. Combine the components into one scalar with
//! [`wst_core::WeightedReward`] and [`wst_core::RewardWeights`].

use std::collections::BTreeMap;

use tch::{Device, Kind};
use wst_core::{Reward, RewardComponents, RewardConfig, RewardInput};
use wst_models::GPT2ForSequenceClassification;

/// Errors of building a [`RewardModelReward`].
#[derive(Debug, thiserror::Error)]
pub enum RewardModelError {
    /// A reward model failed to load.
    #[error("reward model `{name}` ({spec})")]
    Load {
        /// The component name.
        name: String,
        /// The path or hub id it was loaded from.
        spec: String,
        /// The cause.
        #[source]
        source: Box<wst_models::Error>,
    },

    /// No models were given.
    #[error("reward.models is empty: map component names to reward models (path or hub id)")]
    NoModels,

    /// Two models for one component name.
    #[error("reward component `{name}` is given twice")]
    DuplicateComponent {
        /// The name.
        name: String,
    },

    /// A batch size of zero.
    #[error("reward.batch_size must be >= 1")]
    ZeroBatch,
}

/// The query as an HH-RLHF dialogue: text that already is one (`\n\nHuman: ...`) is kept and
/// made to end in `\n\nAssistant:`; a plain question becomes `\n\nHuman: {q}\n\nAssistant:`.
pub fn hh_rlhf_query(text: &str) -> String {
    let t = text.trim_end();
    let body = t.trim_start();
    if body.starts_with("Human:") {
        let mut s = format!("\n\n{body}");
        if !s.ends_with("Assistant:") {
            s.push_str("\n\nAssistant:");
        }
        s
    } else {
        format!("\n\nHuman: {}\n\nAssistant:", body)
    }
}

/// The reply as it follows `Assistant:`: leading whitespace replaced by one space (` {reply}`);
/// an empty reply stays empty.
pub fn hh_rlhf_response(reply: &str) -> String {
    let r = reply.trim_start();
    if r.is_empty() {
        String::new()
    } else {
        format!(" {r}")
    }
}

/// At least one model and a positive batch size.
fn check_counts(models: usize, batch_size: usize) -> Result<(), RewardModelError> {
    if models == 0 {
        return Err(RewardModelError::NoModels);
    }
    if batch_size == 0 {
        return Err(RewardModelError::ZeroBatch);
    }
    Ok(())
}

/// A [`Reward`] with one component per GPT-2 reward model, e.g. `harmless` and `helpful`.
pub struct RewardModelReward {
    /// Distinct models.
    models: Vec<GPT2ForSequenceClassification>,
    /// `(component name, index into models)`, in name order.
    components: Vec<(String, usize)>,
    batch_size: usize,
}

impl std::fmt::Debug for RewardModelReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewardModelReward")
            .field("components", &self.components)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl RewardModelReward {
    /// The models of `[reward]` (`models`: component name -> path or hub id, `batch_size`), in
    /// f32 on `device` (see `wst_models::select_device`).
    pub fn from_config(cfg: &RewardConfig, device: Device) -> Result<Self, RewardModelError> {
        Self::load(&cfg.models, device, Kind::Float, cfg.batch_size)
    }

    /// Loads each `name -> path or hub id` in `kind` on `device`; entries naming the same model
    /// share one copy.
    pub fn load(
        models: &BTreeMap<String, String>,
        device: Device,
        kind: Kind,
        batch_size: usize,
    ) -> Result<Self, RewardModelError> {
        check_counts(models.len(), batch_size)?;
        let mut specs: Vec<&str> = Vec::new();
        let mut distinct = Vec::new();
        let mut components = Vec::new();
        for (name, spec) in models {
            let idx = match specs.iter().position(|s| s == spec) {
                Some(i) => i,
                None => {
                    let m = GPT2ForSequenceClassification::load(spec, device, kind).map_err(
                        |source| RewardModelError::Load {
                            name: name.clone(),
                            spec: spec.clone(),
                            source: Box::new(source),
                        },
                    )?;
                    specs.push(spec);
                    distinct.push(m);
                    distinct.len() - 1
                }
            };
            components.push((name.clone(), idx));
        }
        Self::new(distinct, components, batch_size)
    }

    /// From models already loaded, one per component name.
    pub fn from_models(
        models: Vec<(String, GPT2ForSequenceClassification)>,
        batch_size: usize,
    ) -> Result<Self, RewardModelError> {
        let (names, models): (Vec<String>, Vec<_>) = models.into_iter().unzip();
        let components = names.into_iter().enumerate().map(|(i, n)| (n, i)).collect();
        Self::new(models, components, batch_size)
    }

    fn new(
        models: Vec<GPT2ForSequenceClassification>,
        mut components: Vec<(String, usize)>,
        batch_size: usize,
    ) -> Result<Self, RewardModelError> {
        check_counts(models.len(), batch_size)?;
        components.sort();
        if let Some(w) = components.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(RewardModelError::DuplicateComponent {
                name: w[0].0.clone(),
            });
        }
        Ok(RewardModelReward {
            models,
            components,
            batch_size,
        })
    }

    /// Pairs per forward batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The model behind a component.
    pub fn model(&self, name: &str) -> Option<&GPT2ForSequenceClassification> {
        self.components
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, i)| &self.models[i])
    }
}

impl Reward for RewardModelReward {
    fn component_names(&self) -> Vec<String> {
        self.components.iter().map(|(n, _)| n.clone()).collect()
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> wst_core::Result<Vec<RewardComponents>> {
        let texts: Vec<(String, String)> = inputs
            .iter()
            .map(|i| (hh_rlhf_query(&i.query.text), hh_rlhf_response(i.reply)))
            .collect();
        let pairs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(q, r)| (q.as_str(), r.as_str()))
            .collect();
        let mut per_model = Vec::with_capacity(self.models.len());
        for (i, m) in self.models.iter().enumerate() {
            let scores = m.score_pairs(&pairs, self.batch_size).map_err(|e| {
                let names: Vec<&str> = self
                    .components
                    .iter()
                    .filter(|c| c.1 == i)
                    .map(|c| c.0.as_str())
                    .collect();
                let first = inputs
                    .first()
                    .map(|x| x.query.id.as_str())
                    .unwrap_or_default();
                wst_core::Error::other(
                    format!(
                        "reward model for [{}] on {} replies (first query `{first}`)",
                        names.join(", "),
                        inputs.len()
                    ),
                    e,
                )
            })?;
            per_model.push(scores);
        }
        Ok((0..inputs.len())
            .map(|j| {
                RewardComponents::from_pairs(
                    self.components
                        .iter()
                        .map(|(n, i)| (n.clone(), f64::from(per_model[*i][j]))),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_questions_are_wrapped() {
        assert_eq!(
            hh_rlhf_query("How do I bake bread?"),
            "\n\nHuman: How do I bake bread?\n\nAssistant:"
        );
        assert_eq!(
            hh_rlhf_query("  What is 2+2?\n"),
            "\n\nHuman: What is 2+2?\n\nAssistant:"
        );
    }

    #[test]
    fn dialogues_are_kept_and_closed() {
        let d = "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke.\n\nAssistant:";
        assert_eq!(hh_rlhf_query(d), d);
        assert_eq!(hh_rlhf_query(&format!("{d} ")), d);
        assert_eq!(
            hh_rlhf_query("Human: Hi\n\nAssistant: Hello\n\nHuman: More?"),
            "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: More?\n\nAssistant:"
        );
    }

    #[test]
    fn replies_follow_one_space() {
        assert_eq!(hh_rlhf_response("Mix flour."), " Mix flour.");
        assert_eq!(hh_rlhf_response(" Mix flour."), " Mix flour.");
        assert_eq!(hh_rlhf_response("\n Mix flour."), " Mix flour.");
        assert_eq!(hh_rlhf_response(""), "");
        assert_eq!(hh_rlhf_response("  "), "");
    }
}
