//! [`AnswerLeakReward`]: a component scored on the teacher's instruction, not on the reply.

use wst_core::{leaks_answer, Result, Reward, RewardComponents, RewardInput};

/// 1 when the instruction states an answer — the query's reference answer, or an "answer is /
/// equals / =" pattern followed by a value (the detector of [`wst_core::leaks_answer`], the same
/// one the `answer_in_instruction` metric uses for the reference) — else 0. Replies without an
/// instruction (baselines) score 0. Give it a negative weight to penalise teachers that hand over
/// answers instead of instructing.
#[derive(Debug, Clone)]
pub struct AnswerLeakReward {
    name: String,
}

impl AnswerLeakReward {
    /// The component `name`.
    pub fn new(name: impl Into<String>) -> Self {
        AnswerLeakReward { name: name.into() }
    }
}

impl Reward for AnswerLeakReward {
    fn component_names(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        Ok(inputs
            .iter()
            .map(|i| {
                // A GSM8K reference solution (`... #### 42`) is reduced to its number.
                let reference = i.query.reference.as_deref().map(|r| {
                    if r.contains("####") {
                        crate::parse_gsm8k_reference(r).unwrap_or_default()
                    } else {
                        r.to_string()
                    }
                });
                let leak = i
                    .instruction
                    .is_some_and(|m| leaks_answer(m, reference.as_deref()));
                RewardComponents::from_pairs([(self.name.clone(), f64::from(u8::from(leak)))])
            })
            .collect())
    }
}
