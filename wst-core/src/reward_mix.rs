//! Mixing several reward components into the value GRPO trains on: per-component running
//! normalisation (a z-score against the mean and std of everything seen so far, as
//! Rewards-in-Context does for its two reward models) and TRL's two orders of weighting and
//! normalising (`grpo.multi_objective_aggregation`).
//!
//! The rollouts always keep the raw component scores and their raw weighted sum; what this module
//! changes is only the per-sample value the advantages are computed from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{RewardComponents, RewardWeights};

/// Added to a std before dividing by it (TRL's `1e-4`).
pub const NORM_EPS: f64 = 1e-4;

/// Per-component normalisation (`normalize` of a `[reward.components.NAME]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// The raw score.
    #[default]
    None,
    /// `(x - mean) / (std + 1e-4)` with the running mean and unbiased std of every score of this
    /// component seen in training so far, this step's scores included.
    Running,
}

/// How weighted components become per-sample rewards (TRL's `multi_objective_aggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Weighted sum per reply first; the advantages then normalise it as `grpo.scale_rewards`
    /// says (GRPO's usual order).
    #[default]
    SumThenNormalize,
    /// Each component is z-scored within its group of `G` samples first, the weighted sum of the
    /// z-scores is then normalised over the batch (GDPO; `scale_rewards` is not used).
    NormalizeThenSum,
}

/// Welford's running mean and variance.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RunningStats {
    /// Values seen.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl RunningStats {
    /// Adds one value.
    pub fn push(&mut self, x: f64) {
        self.count += 1;
        let d = x - self.mean;
        self.mean += d / self.count as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Unbiased std (0 for fewer than two values).
    pub fn std(&self) -> f64 {
        if self.count < 2 {
            0.0
        } else {
            (self.m2 / (self.count - 1) as f64).sqrt()
        }
    }

    /// `(x - mean) / (std + NORM_EPS)`.
    pub fn z(&self, x: f64) -> f64 {
        (x - self.mean) / (self.std() + NORM_EPS)
    }
}

/// Weights, normalisation and aggregation of a run's reward components.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardMix {
    weights: RewardWeights,
    running: BTreeMap<String, RunningStats>,
    aggregation: Aggregation,
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

impl RewardMix {
    /// A mix; `normalize` names the components with [`Normalize::Running`] (others are raw).
    pub fn new(
        weights: RewardWeights,
        normalize: &BTreeMap<String, Normalize>,
        aggregation: Aggregation,
    ) -> Self {
        let running = normalize
            .iter()
            .filter(|(_, n)| **n == Normalize::Running)
            .map(|(k, _)| (k.clone(), RunningStats::default()))
            .collect();
        RewardMix {
            weights,
            running,
            aggregation,
        }
    }

    /// Raw weighted sum only (no normalisation, sum then normalise).
    pub fn plain(weights: RewardWeights) -> Self {
        Self::new(weights, &BTreeMap::new(), Aggregation::SumThenNormalize)
    }

    /// The weights.
    pub fn weights(&self) -> &RewardWeights {
        &self.weights
    }

    /// The aggregation order.
    pub fn aggregation(&self) -> Aggregation {
        self.aggregation
    }

    /// True when the training value is the raw `mean_k g - s_i` (nothing normalised here).
    pub fn is_plain(&self) -> bool {
        self.running.is_empty() && self.aggregation == Aggregation::SumThenNormalize
    }

    /// The running statistics of the normalised components.
    pub fn running_stats(&self) -> &BTreeMap<String, RunningStats> {
        &self.running
    }

    /// The raw weighted sum `sum_j w_j c_j`; `None` when a weighted component is missing (a
    /// component that failed for this reply, e.g. a judge whose answer had no score).
    pub fn raw(&self, c: &RewardComponents) -> Option<f64> {
        let mut total = 0.0;
        for (name, w) in &self.weights.0 {
            total += w * c.get(name)?;
        }
        Some(total)
    }

    /// Adds the scores of one step (`None`: a reply without scores) to the running statistics,
    /// then returns the weighted components of each reply with the running ones z-scored.
    pub fn normalize_step(
        &mut self,
        batch: &[Option<&RewardComponents>],
    ) -> Vec<Option<RewardComponents>> {
        for (name, st) in self.running.iter_mut() {
            for c in batch.iter().flatten() {
                if let Some(x) = c.get(name) {
                    st.push(x);
                }
            }
        }
        batch
            .iter()
            .map(|c| {
                c.map(|c| {
                    RewardComponents(
                        self.weights
                            .0
                            .keys()
                            .filter_map(|name| {
                                let x = c.get(name)?;
                                let v = self.running.get(name).map_or(x, |st| st.z(x));
                                Some((name.clone(), v))
                            })
                            .collect(),
                    )
                })
            })
            .collect()
    }

    /// The value each teacher sample is trained on, from the (normalised) components of its
    /// replies: `groups[q][g][k]` is reply `k` of sample `g` of query `q` (`None`: failed), and
    /// `baselines[q]` the student's baseline on query `q` (raw scale).
    ///
    /// - sum then normalise: `mean_k sum_j w_j c_jk`, minus the baseline when nothing is
    ///   normalised (then it is the uplift `r_i` of the rollouts); a reply missing a weighted
    ///   component is left out.
    /// - normalise then sum: per component `j`, the sample's mean `c_j` over its replies is
    ///   z-scored within the group (`(c_j - mean_g) / (std_g + 1e-4)`, unbiased std, samples
    ///   without a value left out, 0 for a group with fewer than two values); the value is
    ///   `sum_j w_j z_j`. The baseline cancels and is not used.
    ///
    /// `None`: the sample has no scored reply.
    pub fn sample_values(
        &self,
        groups: &[Vec<Vec<Option<RewardComponents>>>],
        baselines: &[f64],
    ) -> Vec<Vec<Option<f64>>> {
        match self.aggregation {
            Aggregation::SumThenNormalize => groups
                .iter()
                .enumerate()
                .map(|(q, group)| {
                    group
                        .iter()
                        .map(|replies| {
                            let v: Vec<f64> = replies
                                .iter()
                                .flatten()
                                .filter_map(|c| self.raw(c))
                                .collect();
                            let m = mean(&v)?;
                            Some(if self.running.is_empty() {
                                m - baselines.get(q).copied().unwrap_or(0.0)
                            } else {
                                m
                            })
                        })
                        .collect()
                })
                .collect(),
            Aggregation::NormalizeThenSum => groups
                .iter()
                .map(|group| {
                    let mut out: Vec<Option<f64>> = group
                        .iter()
                        .map(|replies| replies.iter().any(Option::is_some).then_some(0.0))
                        .collect();
                    for (name, w) in &self.weights.0 {
                        let means: Vec<Option<f64>> = group
                            .iter()
                            .map(|replies| {
                                let v: Vec<f64> = replies
                                    .iter()
                                    .flatten()
                                    .filter_map(|c| c.get(name))
                                    .collect();
                                mean(&v)
                            })
                            .collect();
                        let valid: Vec<f64> = means.iter().flatten().copied().collect();
                        let (m, s) = (mean(&valid).unwrap_or(0.0), sample_std(&valid));
                        for (o, x) in out.iter_mut().zip(&means) {
                            if let (Some(o), Some(x)) = (o.as_mut(), x) {
                                if valid.len() >= 2 {
                                    *o += w * (x - m) / (s + NORM_EPS);
                                }
                            }
                        }
                    }
                    out
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(pairs: &[(&str, f64)]) -> RewardComponents {
        RewardComponents::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }

    #[test]
    fn running_stats_match_hand_values() {
        let mut s = RunningStats::default();
        for x in [1.0, 2.0, 4.0] {
            s.push(x);
        }
        // mean 7/3, unbiased var ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 42/18 = 7/3.
        close(s.mean, 7.0 / 3.0);
        close(s.std(), (7.0f64 / 3.0).sqrt());
        close(s.z(4.0), (4.0 - 7.0 / 3.0) / ((7.0f64 / 3.0).sqrt() + 1e-4));
    }

    #[test]
    fn running_normalisation_updates_then_scores() {
        let w = RewardWeights::signed([("a", 1.0), ("b", 0.5)]).unwrap();
        let norm = BTreeMap::from([("a".to_string(), Normalize::Running)]);
        let mut mix = RewardMix::new(w, &norm, Aggregation::SumThenNormalize);
        assert!(!mix.is_plain());
        // Step 1: a = 1, 3 (mean 2, std sqrt 2); b stays raw; an extra component is dropped.
        let r1 = c(&[("a", 1.0), ("b", 2.0), ("x", 9.0)]);
        let r2 = c(&[("a", 3.0), ("b", 4.0)]);
        let out = mix.normalize_step(&[Some(&r1), None, Some(&r2)]);
        let s = 2f64.sqrt() + 1e-4;
        assert_eq!(out[1], None);
        let o0 = out[0].as_ref().unwrap();
        close(o0.get("a").unwrap(), -1.0 / s);
        close(o0.get("b").unwrap(), 2.0);
        assert_eq!(o0.get("x"), None);
        close(out[2].as_ref().unwrap().get("a").unwrap(), 1.0 / s);
        // Step 2: a = 5 joins 1, 3: mean 3, std 2.
        let r3 = c(&[("a", 5.0), ("b", 0.0)]);
        let out = mix.normalize_step(&[Some(&r3)]);
        close(
            out[0].as_ref().unwrap().get("a").unwrap(),
            2.0 / (2.0 + 1e-4),
        );
        assert_eq!(mix.running_stats()["a"].count, 3);
    }

    #[test]
    fn sum_then_normalize_is_the_uplift_when_plain() {
        let w = RewardWeights::signed([("correct", 1.0), ("leak", -0.5)]).unwrap();
        let mix = RewardMix::plain(w);
        let groups = vec![vec![
            vec![
                Some(c(&[("correct", 1.0), ("leak", 1.0)])),
                Some(c(&[("correct", 0.0), ("leak", 1.0)])),
            ],
            vec![None, Some(c(&[("correct", 1.0), ("leak", 0.0)]))],
            vec![None, None],
            // A reply missing a weighted component is left out of the mean.
            vec![
                Some(c(&[("correct", 1.0)])),
                Some(c(&[("correct", 0.0), ("leak", 0.0)])),
            ],
        ]];
        let v = mix.sample_values(&groups, &[0.25]);
        close(v[0][0].unwrap(), (0.5 + -0.5) / 2.0 - 0.25);
        close(v[0][1].unwrap(), 1.0 - 0.25);
        assert_eq!(v[0][2], None);
        close(v[0][3].unwrap(), 0.0 - 0.25);
    }

    #[test]
    fn normalize_then_sum_matches_hand_values() {
        // G = 4, K = 1: a = [1, 0, 0, 1], b = [0.2, 0.4, 0.6, 0.8]; weights a 1, b 2.
        let w = RewardWeights::signed([("a", 1.0), ("b", 2.0)]).unwrap();
        let mix = RewardMix::new(w, &BTreeMap::new(), Aggregation::NormalizeThenSum);
        let a = [1.0, 0.0, 0.0, 1.0];
        let b = [0.2, 0.4, 0.6, 0.8];
        let groups = vec![(0..4)
            .map(|i| vec![Some(c(&[("a", a[i]), ("b", b[i])]))])
            .collect::<Vec<_>>()];
        let v = mix.sample_values(&groups, &[0.7]);
        // a: mean 0.5, unbiased std sqrt(1/3); b: mean 0.5, unbiased std sqrt(0.2/3).
        let sa = (1.0f64 / 3.0).sqrt() + 1e-4;
        let sb = (0.2f64 / 3.0).sqrt() + 1e-4;
        for i in 0..4 {
            let want = (a[i] - 0.5) / sa + 2.0 * (b[i] - 0.5) / sb;
            close(v[0][i].unwrap(), want);
        }
        // K = 2 with a failed reply: the sample's mean is over its scored replies; a sample
        // without replies has no value; a single-valued component contributes 0.
        let groups = vec![vec![
            vec![Some(c(&[("a", 1.0), ("b", 1.0)])), None],
            vec![Some(c(&[("a", 0.0)])), Some(c(&[("a", 1.0)]))],
            vec![None, None],
        ]];
        let v = mix.sample_values(&groups, &[0.0]);
        // a means: 1, 0.5 -> mean 0.75, std sqrt(0.125); b only in sample 0 -> 0.
        let s = 0.125f64.sqrt() + 1e-4;
        close(v[0][0].unwrap(), 0.25 / s);
        close(v[0][1].unwrap(), -0.25 / s);
        assert_eq!(v[0][2], None);
    }
}
