//! The WST trainer: GRPO on the teacher with student-in-the-loop rewards.
//!
//! The trainer sees the student, reward, prompt source, rollout sink and baseline store only
//! through the `wst-core` traits, and the teacher through the [`Policy`] trait defined here (a
//! sampler with log-probabilities and a differentiable scorer over a `VarStore`), so the same
//! loop trains a tiny test policy or a decoder LM and talks to a local or remote student. Every
//! random draw of a step derives from `(run.seed, step)`, which makes a checkpoint (weights,
//! AdamW moments, data cursor, step) enough to continue a run exactly.
//!
//! A tiny random teacher learns, in a few dozen GRPO steps, the instruction that makes a mock
//! student answer right (the same loop trains an [`LmPolicy`] against a real student):
//!
//! ```
//! use wst_core::{
//!     Config, MemoryBaselines, MemorySink, Query, Reward, RewardComponents, RewardInput,
//!     SamplingParams, Student, StudentReply, StudentRequest, TemplatePreset, VecSource,
//! };
//! use wst_rl::{Parts, TinyConfig, TinyPolicy, Trainer};
//!
//! /// Answers right only when the instruction says "check".
//! struct Mock;
//! impl Student for Mock {
//!     fn id(&self) -> String {
//!         "mock".into()
//!     }
//!     fn generate(
//!         &mut self,
//!         requests: &[StudentRequest<'_>],
//!         _: &SamplingParams,
//!     ) -> wst_core::Result<Vec<Vec<StudentReply>>> {
//!         Ok(requests
//!             .iter()
//!             .map(|r| {
//!                 let right = r.instruction.is_some_and(|m| m.contains("check"));
//!                 let text = if right { r.query.reference.clone().unwrap() } else { "?".into() };
//!                 vec![StudentReply::text(text); r.k]
//!             })
//!             .collect())
//!     }
//! }
//!
//! /// 1 when the reply is the reference answer.
//! struct Exact;
//! impl Reward for Exact {
//!     fn component_names(&self) -> Vec<String> {
//!         vec!["correct".into()]
//!     }
//!     fn score(&mut self, inputs: &[RewardInput<'_>]) -> wst_core::Result<Vec<RewardComponents>> {
//!         Ok(inputs
//!             .iter()
//!             .map(|i| {
//!                 let ok = i.query.reference.as_deref() == Some(i.reply);
//!                 RewardComponents::from_pairs([("correct", f64::from(u8::from(ok)))])
//!             })
//!             .collect())
//!     }
//! }
//!
//! let queries = (0..8)
//!     .map(|i| Query::new(format!("q{i}"), format!("What is {i} + 1?")).with_reference(format!("{}", i + 1)))
//!     .collect();
//! let mut cfg = Config::default();
//! (cfg.run.steps, cfg.run.keep_checkpoints) = (30, 0);
//! cfg.teacher.model = "tiny".into();
//! cfg.teacher.sampling = SamplingParams {
//!     temperature: 1.0,
//!     max_new_tokens: 4,
//!     ..SamplingParams::default()
//! };
//! cfg.student.model = "mock".into();
//! (cfg.student.samples, cfg.student.baseline_samples) = (2, 2);
//! cfg.templates.preset = TemplatePreset::Arith;
//! (cfg.grpo.batch_size, cfg.grpo.group_size, cfg.grpo.micro_batch_size) = (4, 8, 8);
//! cfg.grpo.lr = 0.01;
//!
//! let words = ["check", "the", "sum", "please", "now", "add"];
//! let (mut sink, mut baselines) = (MemorySink::default(), MemoryBaselines::default());
//! let parts = Parts {
//!     policy: Box::new(TinyPolicy::new(&TinyConfig::new(&words, 3))),
//!     reference: None,
//!     student: Box::new(Mock),
//!     reward: Box::new(Exact),
//!     prompts: Box::new(VecSource::new("sums", queries, 3, true)),
//!     sink: Box::new(&mut sink),
//!     baselines: Box::new(&mut baselines),
//! };
//! let run_dir = tempfile::tempdir()?;
//! let summary = Trainer::new(cfg, parts, run_dir.path())?.with_progress(false).run()?;
//! let reward: Vec<f64> = summary.metrics.iter().map(|m| m.reward).collect();
//! let last = reward[reward.len() - 3..].iter().sum::<f64>() / 3.0;
//! assert!(last > reward[0] + 0.3, "{reward:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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

/// Runs `draw` with torch's global generator seeded with `seed`, holding a lock that every
/// test drawing from that generator holds: tests run on several threads, and one seeding while
/// another draws would change the other's numbers.
#[cfg(test)]
pub(crate) fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    draw()
}

pub use error::{Error, Result};
pub use lm::LmPolicy;
pub use metrics::StepMetrics;
pub use policy::{completion_logprobs, Draw, Policy, PolicySample, TokenBatch};
pub use tiny::{TinyConfig, TinyPolicy};
pub use trainer::{Parts, RunSummary, Trainer, CONFIG_FILE, METRICS_FILE};
