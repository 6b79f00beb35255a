//! Rewards for **wst**: math answer extraction and equivalence (no libtorch), reward-model
//! scoring behind the `reward-model` feature, and reward components mixed by weight: user
//! programs speaking JSON lines ([`CommandReward`]), the answer-leak penalty on instructions
//! ([`AnswerLeakReward`]), and behind the `http` feature remote reward endpoints
//! ([`HttpReward`], OpenRLHF's remote-RM shape) and LLM judges ([`JudgeReward`]).
//!
//! The math verifier is a small LaTeX answer language of its own: a lexer that drops
//! presentation (`\left`, `\!`, `$`, `\%`, units, `^\circ`), a recursive-descent parser with a
//! nesting limit, and a complex-number evaluator. Two answers are equivalent when they have the
//! same shape (number, tuple, interval, set, matrix, equation, choice, text) and their numeric
//! parts agree to a tight relative tolerance at a few fixed points for the free variables. No
//! rewriting system, no Python: a check takes microseconds and any input, however deep or long,
//! is handled in bounded time without panicking.

mod command;
mod components;
mod equiv;
mod extract;
mod latex;
mod leak;
mod reward;

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
mod http_pool;
#[cfg(feature = "http")]
mod judge;

pub use command::CommandReward;
pub use components::{build_component, build_components, ComponentError, CompositeReward, Renamed};
pub use equiv::equivalent;
pub use extract::{extract_answer, ExtractOptions};
#[cfg(feature = "http")]
pub use http::{openrlhf_body, HttpReward};
#[cfg(feature = "http")]
pub use http_pool::{Backoff, HttpCounts};
#[cfg(feature = "http")]
pub use judge::{JudgeCounts, JudgeReward};
pub use leak::AnswerLeakReward;
pub use reward::{MathReward, CORRECT};
pub use wst_core::parse_gsm8k_reference;
pub use wst_core::{Reward, RewardComponents, RewardInput, RewardWeights, WeightedReward};

/// The outcome of checking one reply or answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the answer is equivalent to the gold answer.
    pub verdict: bool,
    /// The answer that was compared (`None` when nothing could be extracted).
    pub extracted: Option<String>,
}

/// Extracts the final answer of a full reply and compares it with `gold`.
///
/// ```
/// use wst_reward::{verify_reply, ExtractOptions};
/// let v = verify_reply("\\frac{1}{2}", "so $p = \\boxed{0.5}$.", &ExtractOptions::default());
/// assert!(v.verdict);
/// assert_eq!(v.extracted.as_deref(), Some("0.5"));
/// ```
pub fn verify_reply(gold: &str, reply: &str, opts: &ExtractOptions) -> Verdict {
    let extracted = extract_answer(reply, opts);
    let verdict = extracted.as_deref().is_some_and(|a| equivalent(gold, a));
    Verdict { verdict, extracted }
}

/// Compares an already extracted answer with `gold` (a `\boxed{}` wrapper is tolerated).
pub fn verify_answer(gold: &str, answer: &str) -> Verdict {
    Verdict {
        verdict: equivalent(gold, answer),
        extracted: Some(answer.to_string()),
    }
}

#[cfg(feature = "reward-model")]
pub mod reward_model;

#[cfg(feature = "reward-model")]
pub use reward_model::{hh_rlhf_query, hh_rlhf_response, RewardModelError, RewardModelReward};
