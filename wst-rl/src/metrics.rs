//! Per-step metrics: one JSON object per line in `metrics.jsonl`, appended after each step and
//! repaired on resume (lines of steps that are not in the checkpoint are dropped).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Everything measured in one training step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Step index (0-based).
    pub step: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Mean student reward with the teacher's instructions (`mean_k g`, over samples).
    pub reward: f64,
    /// Std of the per-sample mean rewards.
    pub reward_std: f64,
    /// Mean student baseline `s_i` over the batch's queries.
    pub baseline: f64,
    /// Mean of `r_i = reward_mean - s_i`: the uplift over the student alone.
    pub uplift: f64,
    /// Advantage mean.
    pub adv_mean: f64,
    /// Advantage std (population).
    pub adv_std: f64,
    /// Smallest advantage.
    pub adv_min: f64,
    /// Largest advantage.
    pub adv_max: f64,
    /// Mean k3 KL to the reference per token (0 without a reference).
    pub kl: f64,
    /// Share of tokens whose gradient the clipping removed.
    pub clip_frac: f64,
    /// Mean importance ratio per token.
    pub ratio_mean: f64,
    /// Loss (mean over the optimiser steps).
    pub loss: f64,
    /// Global gradient norm before clipping (last update of the step).
    pub grad_norm: f64,
    /// Mean entropy per instruction token of the teacher's sampling distribution (over the
    /// tokens the update scored).
    #[serde(default)]
    pub entropy: f64,
    /// Optimiser steps taken in this step (`num_iterations` x `steps_per_generation`, less the
    /// mini-batches with nothing to learn from).
    #[serde(default)]
    pub optimizer_steps: usize,
    /// Instruction tokens the update scored, over all its optimiser steps.
    #[serde(default)]
    pub update_tokens: f64,
    /// Mean instruction length in teacher tokens.
    pub instruction_tokens: f64,
    /// Share of instructions cut at the length cap.
    pub truncated_frac: f64,
    /// Share of instructions that contain the query's reference answer (as a number or word).
    pub answer_in_instruction: f64,
    /// Groups whose rewards all tie (no gradient).
    pub tied_groups: usize,
    /// Groups in the step.
    pub groups: usize,
    /// Student replies that failed after retries (excluded from the means).
    pub failed_replies: usize,
    /// Student replies requested (with instructions).
    pub replies: usize,
    /// Teacher samples without any completed reply (no reward, advantage 0).
    pub failed_samples: usize,
    /// Baselines computed this step (cache misses).
    pub baselines_computed: usize,
    /// Seconds of teacher generation.
    pub t_teacher_gen: f64,
    /// Seconds waiting for the student (instructions and baselines).
    pub t_student: f64,
    /// Seconds scoring replies.
    pub t_reward: f64,
    /// Seconds of log-prob forwards, backward passes and optimiser updates.
    pub t_update: f64,
    /// Seconds of everything else (prompts, advantages, rollouts, metrics, checkpoints).
    pub t_other: f64,
    /// Seconds of the whole step.
    pub t_step: f64,
    /// Teacher tokens generated per second of generation.
    pub teacher_tokens_per_s: f64,
    /// Optimiser updates between drawing this step's samples and training on them: 0 in a
    /// synchronous run, 1 under `grpo.async` (0 for its first step).
    #[serde(default)]
    pub staleness: u64,
    /// Seconds the teacher waited for this step's student answers and rewards: all of them in
    /// a synchronous run; under `grpo.async` only what was left after its own update and sampling.
    #[serde(default)]
    pub t_teacher_wait: f64,
}

/// Appends one metrics line (a single write of a whole line).
pub fn append(path: &Path, m: &StepMetrics) -> Result<()> {
    let mut line = serde_json::to_string(m).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| Error::io("cannot append to", path, e))
}

/// Reads every complete, valid line of a metrics file (a torn last line is ignored).
pub fn read(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    Ok(text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .filter_map(|l| serde_json::from_str(l.trim_end()).ok())
        .collect())
}

/// Keeps only the lines of steps before `next_step` (atomic rewrite).
pub fn truncate(path: &Path, next_step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<StepMetrics> = read(path)?
        .into_iter()
        .filter(|m| m.step < next_step)
        .collect();
    let mut text = String::new();
    for m in &kept {
        text.push_str(&serde_json::to_string(m).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?);
        text.push('\n');
    }
    crate::checkpoint::write_atomic(path, text.as_bytes())
}

/// The answer-leak detector (one for the metric, the eval table and the `answer-leak` reward).
pub use wst_core::contains_answer;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_lines_are_dropped_and_truncate_keeps_earlier_steps() {
        let dir = std::env::temp_dir().join(format!("wst-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("metrics.jsonl");
        for s in 0..3 {
            append(
                &p,
                &StepMetrics {
                    step: s,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"step\": 3, \"lr").unwrap();
        assert_eq!(read(&p).unwrap().len(), 3);
        truncate(&p, 2).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.iter().map(|m| m.step).collect::<Vec<_>>(), vec![0, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
