//! The WST trainer: GRPO on the teacher with student-in-the-loop rewards.
//!
//! The trainer sees the student, reward, prompt source, rollout sink and baseline store only
//! through the `wst-core` traits, and the teacher through the [`Policy`] trait defined here (a
//! sampler with log-probabilities and a differentiable scorer over a `VarStore`), so the same
//! loop trains a tiny test policy or a decoder LM and talks to a local or remote student. Every
//! random draw of a step derives from `(run.seed, step)`, which makes a checkpoint (weights,
//! AdamW moments, data cursor, step) enough to continue a run exactly.

pub mod adamw;
pub mod advantage;
pub mod checkpoint;
pub mod collect;
mod error;
pub mod eval;
pub mod lm;
pub mod loss;
pub mod metrics;
pub mod policy;
pub mod schedule;
pub mod tiny;
mod trainer;
pub mod update;

pub use error::{Error, Result};
pub use lm::LmPolicy;
pub use metrics::StepMetrics;
pub use policy::{completion_logprobs, Policy, PolicySample, TokenBatch};
pub use tiny::{TinyConfig, TinyPolicy};
pub use trainer::{Parts, RunSummary, Trainer, CONFIG_FILE, METRICS_FILE};
