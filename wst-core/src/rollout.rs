//! Rollout records (one per teacher sample) and the sink they are written to.

use serde::{Deserialize, Serialize};

use crate::{Result, RewardComponents};

/// Everything known about one teacher sample `m1` for one query, after the student answered and
/// the replies were scored. One row of the rollout Parquet files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// The training run.
    pub run_id: String,
    /// Optimiser step this rollout was collected for (0-based).
    pub step: u64,
    /// The query's identifier.
    pub query_id: String,
    /// The query text.
    pub query: String,
    /// Index of this sample within its query's group (0..G).
    pub group_index: u32,
    /// The instruction text `m1`.
    pub instruction: String,
    /// Teacher tokens in the instruction.
    pub instruction_tokens: u32,
    /// The instruction hit the length cap.
    pub truncated: bool,
    /// The student's replies; `None` where the reply failed after retries.
    pub replies: Vec<Option<String>>,
    /// Reward components per reply (empty for a failed reply).
    pub reward_components: Vec<RewardComponents>,
    /// Scalar reward per reply; `None` for a failed reply.
    pub rewards: Vec<Option<f64>>,
    /// Mean of the scalar rewards of the completed replies; `None` when all failed.
    pub reward_mean: Option<f64>,
    /// The student's baseline `s_i` on this query (mean reward with no instruction).
    pub baseline: f64,
    /// `reward_mean - baseline` (the reward the teacher is trained on).
    pub reward: Option<f64>,
    /// The GRPO advantage given to this sample.
    pub advantage: f64,
    /// Sum of the teacher's log-probabilities of the instruction tokens at sampling time.
    pub teacher_logprob_sum: f64,
    /// When the teacher sample was drawn (milliseconds since the Unix epoch).
    pub created_ms: i64,
    /// When the rewards were known (milliseconds since the Unix epoch).
    pub scored_ms: i64,
}

impl RolloutRecord {
    /// Number of failed replies.
    pub fn failures(&self) -> usize {
        self.replies.iter().filter(|r| r.is_none()).count()
    }
}

/// Where rollouts go: one call per training step. Implementations write atomically, so a crash
/// leaves either the whole step or nothing.
pub trait RolloutSink {
    /// Stores the records of one step.
    fn write_step(&mut self, step: u64, records: &[RolloutRecord]) -> Result<()>;
}

impl<T: RolloutSink + ?Sized> RolloutSink for &mut T {
    fn write_step(&mut self, step: u64, records: &[RolloutRecord]) -> Result<()> {
        (**self).write_step(step, records)
    }
}

impl<T: RolloutSink + ?Sized> RolloutSink for Box<T> {
    fn write_step(&mut self, step: u64, records: &[RolloutRecord]) -> Result<()> {
        (**self).write_step(step, records)
    }
}

/// A sink that keeps everything in memory (tests, evaluation).
#[derive(Debug, Default, Clone)]
pub struct MemorySink {
    /// The records, in the order written.
    pub records: Vec<RolloutRecord>,
}

impl RolloutSink for MemorySink {
    fn write_step(&mut self, _step: u64, records: &[RolloutRecord]) -> Result<()> {
        self.records.extend_from_slice(records);
        Ok(())
    }
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl RolloutSink for NullSink {
    fn write_step(&mut self, _step: u64, _records: &[RolloutRecord]) -> Result<()> {
        Ok(())
    }
}

/// One scored student reply of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSample {
    /// Condition label.
    pub condition: String,
    /// Query id.
    pub query_id: String,
    /// Reply index within the query (0..K).
    pub sample: u32,
    /// The instruction the student saw (none for the student alone).
    pub instruction: Option<String>,
    /// The instruction contains the query's reference answer.
    pub answer_in_instruction: bool,
    /// The reply; `None` when it failed after retries.
    pub reply: Option<String>,
    /// Reward components (empty for a failed reply).
    pub components: RewardComponents,
    /// Weighted scalar reward; `None` for a failed reply.
    pub reward: Option<f64>,
    /// The helpfulness weight `w` of a weighted (harmless/helpful) evaluation.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Why the sample failed (the student's error, or the instruction writer's when no
    /// instruction could be written); `None` for a scored reply.
    #[serde(default)]
    pub error: Option<String>,
}
