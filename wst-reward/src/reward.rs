//! [`MathReward`]: the `correct` component (1 when the reply's answer matches the reference).

use wst_core::{Result, Reward, RewardComponents, RewardConfig, RewardInput};

use crate::{verify_reply, ExtractOptions};

/// Name of the component [`MathReward`] produces.
pub const CORRECT: &str = "correct";

/// 1 when the final answer extracted from a reply is equivalent to the query's reference, else
/// 0. A query without a reference scores 0. A GSM8K reference solution (`... #### 42`) is
/// reduced to its number first.
#[derive(Debug, Clone, Default)]
pub struct MathReward {
    opts: ExtractOptions,
}

impl MathReward {
    /// A reward with these extraction options.
    pub fn new(opts: ExtractOptions) -> Self {
        MathReward { opts }
    }

    /// The reward `[reward]` describes (honours `last_number_fallback`).
    pub fn from_config(cfg: &RewardConfig) -> Self {
        MathReward::new(ExtractOptions {
            last_number_fallback: cfg.last_number_fallback,
        })
    }

    /// The extraction options.
    pub fn options(&self) -> &ExtractOptions {
        &self.opts
    }

    /// The score of one reply against a reference: 1.0 or 0.0.
    pub fn score_one(&self, reference: &str, reply: &str) -> f64 {
        let gold = if reference.contains("####") {
            crate::parse_gsm8k_reference(reference).unwrap_or_default()
        } else {
            reference.to_string()
        };
        if verify_reply(&gold, reply, &self.opts).verdict {
            1.0
        } else {
            0.0
        }
    }
}

impl Reward for MathReward {
    fn component_names(&self) -> Vec<String> {
        vec![CORRECT.to_string()]
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        Ok(inputs
            .iter()
            .map(|inp| {
                let v = inp
                    .query
                    .reference
                    .as_deref()
                    .map_or(0.0, |r| self.score_one(r, inp.reply));
                RewardComponents::from_pairs([(CORRECT, v)])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::{Query, RewardWeights, WeightedReward};

    #[test]
    fn scores_through_the_trait_and_weights() {
        let q = Query::new("q1", "What is 6*7?").with_reference("42");
        let gsm = Query::new("q2", "x").with_reference("6 * 7 = 42\n#### 42");
        let none = Query::new("q3", "x");
        let inputs = [
            RewardInput::new(&q, "So the answer is $\\boxed{42}$."),
            RewardInput::new(&q, "It is 41."),
            RewardInput::new(&gsm, "6*7 = 42"),
            RewardInput::new(&none, "42"),
        ];
        let mut r = MathReward::default();
        assert_eq!(r.component_names(), vec!["correct".to_string()]);
        let got: Vec<f64> = r
            .score(&inputs)
            .unwrap()
            .iter()
            .map(|c| c.get(CORRECT).unwrap())
            .collect();
        assert_eq!(got, vec![1.0, 0.0, 1.0, 0.0]);

        let cfg = RewardConfig {
            last_number_fallback: false,
            ..RewardConfig::default()
        };
        let mut strict = MathReward::from_config(&cfg);
        let got = strict.score(&inputs[2..3]).unwrap();
        assert_eq!(got[0].get(CORRECT), Some(0.0));

        let mut w =
            WeightedReward::new(MathReward::default(), RewardWeights::single(CORRECT)).unwrap();
        let s = w.score_scalar(&inputs[..2]).unwrap();
        assert_eq!((s[0].1, s[1].1), (1.0, 0.0));
    }
}
