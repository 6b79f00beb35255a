//! The reward seam: named reward components per reply and their weighted combination.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Query, Result};

/// One reply to score, with the query it answers and the instruction it was given.
#[derive(Debug, Clone, Copy)]
pub struct RewardInput<'a> {
    /// The query (its reference answer, if any, is in `query.reference`).
    pub query: &'a Query,
    /// The student's reply text.
    pub reply: &'a str,
    /// The teacher's instruction the student answered with (`None`: the student alone, as for
    /// baselines). Rewards on the instruction itself (answer leaks) read it.
    pub instruction: Option<&'a str>,
}

impl<'a> RewardInput<'a> {
    /// A reply to a query answered without instruction.
    pub fn new(query: &'a Query, reply: &'a str) -> Self {
        RewardInput {
            query,
            reply,
            instruction: None,
        }
    }

    /// Sets the instruction.
    pub fn with_instruction(mut self, instruction: Option<&'a str>) -> Self {
        self.instruction = instruction;
        self
    }
}

/// Named reward components of one reply, e.g. `{correct: 1.0}` or `{harmless: 0.3, helpful: 1.2}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RewardComponents(pub BTreeMap<String, f64>);

impl RewardComponents {
    /// Components from `(name, value)` pairs.
    pub fn from_pairs<I, S>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        RewardComponents(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// One value by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Something that scores student replies. Implementations: math answer accuracy, reward models,
/// and [`WeightedReward`]-style combinations built on them.
pub trait Reward {
    /// Names of the components every call returns.
    fn component_names(&self) -> Vec<String>;

    /// Scores each input; the result has one entry per input, in order.
    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>>;
}

impl<T: Reward + ?Sized> Reward for &mut T {
    fn component_names(&self) -> Vec<String> {
        (**self).component_names()
    }
    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        (**self).score(inputs)
    }
}

impl<T: Reward + ?Sized> Reward for Box<T> {
    fn component_names(&self) -> Vec<String> {
        (**self).component_names()
    }
    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        (**self).score(inputs)
    }
}

/// User weights `w` over named components. The shorthand rewards (`reward.kind`) take weights
/// that are each >= 0 and sum to 1 (within 1e-6), as the paper's HH-RLHF trade-off does;
/// `[reward.components]` take any finite weights ([`RewardWeights::signed`]), so that a penalty
/// such as an answer leak can weigh negatively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RewardWeights(pub BTreeMap<String, f64>);

impl RewardWeights {
    /// Weights from `(name, weight)` pairs, validated.
    pub fn new<I, S>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let w = RewardWeights(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect());
        let problems = w.problems("weights");
        if problems.is_empty() {
            Ok(w)
        } else {
            Err(Error::RewardCombination(problems.join("; ")))
        }
    }

    /// Weights of any sign: each finite, at least one not 0.
    pub fn signed<I, S>(pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, f64)>,
        S: Into<String>,
    {
        let w = RewardWeights(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect());
        let problems = w.signed_problems("weights");
        if problems.is_empty() {
            Ok(w)
        } else {
            Err(Error::RewardCombination(problems.join("; ")))
        }
    }

    /// Every problem with signed weights: each finite, at least one not 0.
    pub fn signed_problems(&self, prefix: &str) -> Vec<String> {
        let mut p: Vec<String> = self
            .0
            .iter()
            .filter(|(_, v)| !v.is_finite())
            .map(|(k, v)| format!("{prefix}.{k} must be a finite number, got {v}"))
            .collect();
        if self.0.values().all(|v| *v == 0.0) {
            p.push(format!(
                "{prefix} must give at least one component a weight other than 0"
            ));
        }
        p
    }

    /// Weight 1 on a single component.
    pub fn single(name: impl Into<String>) -> Self {
        RewardWeights(BTreeMap::from([(name.into(), 1.0)]))
    }

    /// Every problem with the weights.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.0.is_empty() {
            p.push(format!("{prefix} must name at least one component"));
            return p;
        }
        for (k, v) in &self.0 {
            if !v.is_finite() || *v < 0.0 {
                p.push(format!(
                    "{prefix}.{k} must be a finite number >= 0, got {v}"
                ));
            }
        }
        let sum: f64 = self.0.values().sum();
        if (sum - 1.0).abs() > 1e-6 {
            p.push(format!("{prefix} must sum to 1, got {sum}"));
        }
        p
    }

    /// `sum_j w_j * c_j`. Every weighted component must be present; components without a weight
    /// are ignored (they are still recorded in rollouts).
    pub fn combine(&self, components: &RewardComponents) -> Result<f64> {
        let mut total = 0.0;
        for (name, w) in &self.0 {
            let v = components.get(name).ok_or_else(|| {
                Error::RewardCombination(format!(
                    "component `{name}` has a weight but the reward returned only [{}]",
                    components.names().collect::<Vec<_>>().join(", ")
                ))
            })?;
            total += w * v;
        }
        Ok(total)
    }

    /// Checks that every weighted component is one the reward produces.
    pub fn check_against(&self, names: &[String]) -> Result<()> {
        let missing: Vec<&str> = self
            .0
            .keys()
            .filter(|k| !names.contains(k))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::RewardCombination(format!(
                "weights name [{}] but the reward produces only [{}]",
                missing.join(", "),
                names.join(", ")
            )))
        }
    }
}

/// A reward whose components are combined into one scalar per reply by weights.
pub struct WeightedReward<R> {
    inner: R,
    weights: RewardWeights,
}

impl<R: Reward> WeightedReward<R> {
    /// Wraps `inner`, checking that the weights name only components it produces.
    pub fn new(inner: R, weights: RewardWeights) -> Result<Self> {
        weights.check_against(&inner.component_names())?;
        Ok(WeightedReward { inner, weights })
    }

    /// The weights.
    pub fn weights(&self) -> &RewardWeights {
        &self.weights
    }

    /// Scores and combines: `(components, scalar)` per input.
    pub fn score_scalar(
        &mut self,
        inputs: &[RewardInput<'_>],
    ) -> Result<Vec<(RewardComponents, f64)>> {
        let comps = self.inner.score(inputs)?;
        if comps.len() != inputs.len() {
            return Err(Error::RewardCombination(format!(
                "reward returned {} results for {} inputs",
                comps.len(),
                inputs.len()
            )));
        }
        comps
            .into_iter()
            .map(|c| {
                let s = self.weights.combine(&c)?;
                Ok((c, s))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Reward for Fixed {
        fn component_names(&self) -> Vec<String> {
            vec!["harmless".into(), "helpful".into()]
        }
        fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
            Ok(inputs
                .iter()
                .map(|i| {
                    let n = i.reply.len() as f64;
                    RewardComponents::from_pairs([("harmless", 2.0), ("helpful", n)])
                })
                .collect())
        }
    }

    #[test]
    fn weighted_combination_matches_hand_values() {
        let q = Query::new("q", "?");
        for (wh, expect) in [(0.5, 0.5 * 2.0 + 0.5 * 4.0), (0.3, 0.3 * 2.0 + 0.7 * 4.0)] {
            let w = RewardWeights::new([("harmless", wh), ("helpful", 1.0 - wh)]).unwrap();
            let mut r = WeightedReward::new(Fixed, w).unwrap();
            let out = r.score_scalar(&[RewardInput::new(&q, "abcd")]).unwrap();
            assert!(
                (out[0].1 - expect).abs() < 1e-12,
                "{} vs {expect}",
                out[0].1
            );
        }
    }

    #[test]
    fn weights_are_validated() {
        assert!(RewardWeights::new([("a", 0.5), ("b", 0.6)]).is_err());
        assert!(RewardWeights::new([("a", -0.1), ("b", 1.1)]).is_err());
        assert!(RewardWeights::new(Vec::<(String, f64)>::new()).is_err());
        assert!(RewardWeights::new([("a", 0.1), ("b", 0.9)]).is_ok());
        let w = RewardWeights::new([("a", f64::NAN)])
            .unwrap_err()
            .to_string();
        assert!(w.contains("finite"), "{w}");
    }

    #[test]
    fn signed_weights_allow_penalties() {
        let w = RewardWeights::signed([("correct", 1.0), ("leak", -0.5)]).unwrap();
        let c = RewardComponents::from_pairs([("correct", 1.0), ("leak", 1.0)]);
        assert_eq!(w.combine(&c).unwrap(), 0.5);
        assert!(RewardWeights::signed([("a", 0.0)]).is_err());
        let e = RewardWeights::signed([("a", f64::INFINITY)]).unwrap_err();
        assert!(e.to_string().contains("weights.a"), "{e}");
    }

    #[test]
    fn unknown_component_is_refused() {
        let w = RewardWeights::new([("harmless", 0.5), ("honest", 0.5)]).unwrap();
        let e = WeightedReward::new(Fixed, w).err().unwrap().to_string();
        assert!(e.contains("honest"), "{e}");
    }

    #[test]
    fn missing_component_at_combine_names_it() {
        let w = RewardWeights::single("helpful");
        let e = w
            .combine(&RewardComponents::from_pairs([("harmless", 1.0)]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("helpful") && e.contains("harmless"), "{e}");
    }
}
