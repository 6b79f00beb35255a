//! Reward components mixed by weight: the `[reward.components.NAME]` tables of a config become
//! one [`CompositeReward`] whose components are the union of its parts' components.

use std::collections::BTreeMap;

use wst_core::{
    ComponentKind, Result, Reward, RewardComponentConfig, RewardComponents, RewardConfig,
    RewardInput,
};

use crate::{AnswerLeakReward, CommandReward, MathReward};

/// Errors of building or running a reward component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The component's table cannot be used as written.
    #[error("reward.components.{name}: {reason}")]
    Config {
        /// The table's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A reward program could not be started.
    #[error("reward.components.{name}: cannot start {command:?}")]
    Spawn {
        /// The table's name.
        name: String,
        /// The program and its arguments.
        command: Vec<String>,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A reward program broke the protocol: it exited, timed out or printed a bad line.
    #[error(
        "reward.components.{name}: the reward program {command:?} {what}\n  offending line: \
         {line}\n  its stderr (last lines):\n{stderr}"
    )]
    Protocol {
        /// The table's name.
        name: String,
        /// The program and its arguments.
        command: Vec<String>,
        /// What happened.
        what: String,
        /// The line it printed (or what was sent when it printed none).
        line: String,
        /// The end of its stderr, indented.
        stderr: String,
    },
    /// A reward endpoint failed after its retries.
    #[error("reward.components.{name}: {url}: {reason}")]
    Http {
        /// The table's name.
        name: String,
        /// The URL.
        url: String,
        /// What went wrong last.
        reason: String,
    },
}

impl From<ComponentError> for wst_core::Error {
    fn from(e: ComponentError) -> Self {
        wst_core::Error::other("reward component failed", e)
    }
}

/// Several rewards scored on the same inputs; their components side by side.
pub struct CompositeReward {
    parts: Vec<Box<dyn Reward + Send>>,
    names: Vec<String>,
}

impl std::fmt::Debug for CompositeReward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompositeReward")
            .field("components", &self.names)
            .finish_non_exhaustive()
    }
}

impl CompositeReward {
    /// Combines `parts`; two parts may not produce the same component name.
    pub fn new(parts: Vec<Box<dyn Reward + Send>>) -> Result<Self> {
        let mut names: Vec<String> = Vec::new();
        for p in &parts {
            for n in p.component_names() {
                if names.contains(&n) {
                    return Err(wst_core::Error::RewardCombination(format!(
                        "two reward components are both named `{n}`"
                    )));
                }
                names.push(n);
            }
        }
        Ok(CompositeReward { parts, names })
    }
}

impl Reward for CompositeReward {
    fn component_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        let mut out = vec![RewardComponents::default(); inputs.len()];
        for p in &mut self.parts {
            let got = p.score(inputs)?;
            if got.len() != inputs.len() {
                return Err(wst_core::Error::RewardCombination(format!(
                    "reward component [{}] returned {} results for {} replies",
                    p.component_names().join(", "),
                    got.len(),
                    inputs.len()
                )));
            }
            for (o, g) in out.iter_mut().zip(got) {
                o.0.extend(g.0);
            }
        }
        Ok(out)
    }
}

/// A one-component reward under another name (the math reward's `correct` as `accuracy`).
pub struct Renamed<R> {
    inner: R,
    from: String,
    to: String,
}

impl<R: Reward> Renamed<R> {
    /// Renames the single component of `inner` to `to`.
    pub fn new(inner: R, to: impl Into<String>) -> Result<Self> {
        let names = inner.component_names();
        let [from] = names.as_slice() else {
            return Err(wst_core::Error::RewardCombination(format!(
                "only a reward with one component can be renamed, this one has [{}]",
                names.join(", ")
            )));
        };
        Ok(Renamed {
            from: from.clone(),
            inner,
            to: to.into(),
        })
    }
}

impl<R: Reward> Reward for Renamed<R> {
    fn component_names(&self) -> Vec<String> {
        vec![self.to.clone()]
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        let mut out = self.inner.score(inputs)?;
        for c in &mut out {
            if let Some(v) = c.0.remove(&self.from) {
                c.0.insert(self.to.clone(), v);
            }
        }
        Ok(out)
    }
}

/// Builds one component of a kind this crate knows without libtorch: `math`, `command`,
/// `answer-leak`, and with the `http` feature `http` and `judge`. A `reward-model` table (or
/// `http`/`judge` without the feature) is an error naming the table; callers that can load reward
/// models build those themselves (see [`build_components`]).
pub fn build_component(
    name: &str,
    cfg: &RewardComponentConfig,
    reward: &RewardConfig,
) -> std::result::Result<Box<dyn Reward + Send>, ComponentError> {
    let bad = |reason: &str| ComponentError::Config {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    Ok(match cfg.kind {
        None => return Err(bad("kind is required")),
        Some(ComponentKind::Math) => {
            let mut r = reward.clone();
            if let Some(f) = cfg.last_number_fallback {
                r.last_number_fallback = f;
            }
            Box::new(
                Renamed::new(MathReward::from_config(&r), name).map_err(|e| bad(&e.to_string()))?,
            )
        }
        Some(ComponentKind::AnswerLeak) => Box::new(AnswerLeakReward::new(name)),
        Some(ComponentKind::Command) => Box::new(CommandReward::from_config(name, cfg)?),
        #[cfg(feature = "http")]
        Some(ComponentKind::Http) => Box::new(crate::HttpReward::from_config(name, cfg)?),
        #[cfg(feature = "http")]
        Some(ComponentKind::Judge) => Box::new(crate::JudgeReward::from_config(name, cfg)?),
        #[cfg(not(feature = "http"))]
        Some(ComponentKind::Http | ComponentKind::Judge) => {
            return Err(bad("this build of wst-reward has no `http` feature"))
        }
        Some(ComponentKind::RewardModel) => {
            return Err(bad(
                "reward models are loaded by the caller (they need libtorch)",
            ))
        }
    })
}

/// The reward of `[reward.components]` (or of the shorthand `reward.kind`): every component
/// built, in table order, and `reward_models` called once with all the `reward-model` tables
/// (so that tables naming the same model can share one copy).
pub fn build_components<F>(reward: &RewardConfig, reward_models: F) -> Result<CompositeReward>
where
    F: FnOnce(&BTreeMap<String, RewardComponentConfig>) -> Result<Box<dyn Reward + Send>>,
{
    let (rms, others): (BTreeMap<_, _>, BTreeMap<_, _>) = reward
        .resolved_components()
        .into_iter()
        .partition(|(_, c)| c.kind == Some(ComponentKind::RewardModel));
    let mut parts = Vec::new();
    for (name, c) in &others {
        parts.push(build_component(name, c, reward)?);
    }
    if !rms.is_empty() {
        parts.push(reward_models(&rms)?);
    }
    CompositeReward::new(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::{Query, RewardComponentConfig};

    #[test]
    fn components_are_built_renamed_and_merged() {
        let mut cfg = RewardConfig::default();
        cfg.components.insert(
            "accuracy".into(),
            RewardComponentConfig::of(ComponentKind::Math),
        );
        cfg.components.insert(
            "leak".into(),
            RewardComponentConfig::of(ComponentKind::AnswerLeak),
        );
        let mut r = build_components(&cfg, |_| panic!("no reward model here")).unwrap();
        assert_eq!(r.component_names(), vec!["accuracy", "leak"]);
        let q = Query::new("q", "What is 2 + 4?").with_reference("6");
        let out = r
            .score(&[
                RewardInput::new(&q, "It is 6.").with_instruction(Some("The answer is 6.")),
                RewardInput::new(&q, "5").with_instruction(Some("Count on from 4.")),
                RewardInput::new(&q, "6"),
            ])
            .unwrap();
        let got: Vec<(f64, f64)> = out
            .iter()
            .map(|c| (c.get("accuracy").unwrap(), c.get("leak").unwrap()))
            .collect();
        assert_eq!(got, vec![(1.0, 1.0), (0.0, 0.0), (1.0, 0.0)]);
    }

    #[test]
    fn reward_models_go_to_the_caller_and_duplicates_are_refused() {
        let mut cfg = RewardConfig::default();
        cfg.components.insert(
            "rm".into(),
            RewardComponentConfig::of(ComponentKind::RewardModel),
        );
        let e = build_component("rm", &cfg.components["rm"], &cfg)
            .err()
            .unwrap();
        assert!(e.to_string().contains("reward.components.rm"), "{e}");
        let mut called = Vec::new();
        let r = build_components(&cfg, |rms| {
            called.extend(rms.keys().cloned());
            Ok(Box::new(AnswerLeakReward::new("rm")))
        })
        .unwrap();
        assert_eq!(called, vec!["rm"]);
        assert_eq!(r.component_names(), vec!["rm"]);
        let e = CompositeReward::new(vec![
            Box::new(AnswerLeakReward::new("x")),
            Box::new(AnswerLeakReward::new("x")),
        ])
        .err()
        .unwrap();
        assert!(e.to_string().contains("`x`"), "{e}");
    }
}
