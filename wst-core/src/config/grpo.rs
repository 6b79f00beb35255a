//! `[grpo]`: batch shape, optimiser, schedule and the loss (TRL's names and meanings).

use serde::{Deserialize, Serialize};

use crate::Aggregation;

/// The policy loss: how the importance ratio enters and how per-token terms are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Clipped token ratio; mean over each sequence's tokens, then over sequences
    /// (DeepSeekMath GRPO).
    #[default]
    Grpo,
    /// Clipped token ratio; sum over tokens divided by a constant, batch x max length
    /// (Dr. GRPO).
    DrGrpo,
    /// Clipped token ratio; mean over all tokens of the batch (DAPO).
    Dapo,
    /// Clipped token ratio; mean over the tokens of each micro-batch, averaged over
    /// micro-batches (TRL's `bnpo`: the result depends on `micro_batch_size`).
    Bnpo,
    /// One importance ratio per sequence, the geometric mean of its token ratios, clipped;
    /// mean over sequences (GSPO). Its ratios stay near 1: the paper clips at 3e-4 / 4e-4.
    Gspo,
    /// The ratio itself is capped at `epsilon_high` and detached, times the advantage and the
    /// token's log-probability, so no token loses its gradient; mean over all tokens of the
    /// batch (CISPO, MiniMax-M1). `epsilon_high` is the cap (ScaleRL recommends 5.0).
    Cispo,
}

impl LossType {
    /// Every loss type, in the order of the docs.
    pub const ALL: [LossType; 6] = [
        LossType::Grpo,
        LossType::DrGrpo,
        LossType::Dapo,
        LossType::Bnpo,
        LossType::Gspo,
        LossType::Cispo,
    ];

    /// The name in the config.
    pub fn name(self) -> &'static str {
        match self {
            LossType::Grpo => "grpo",
            LossType::DrGrpo => "dr_grpo",
            LossType::Dapo => "dapo",
            LossType::Bnpo => "bnpo",
            LossType::Gspo => "gspo",
            LossType::Cispo => "cispo",
        }
    }
}

impl std::fmt::Display for LossType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How rewards become advantages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Subtract the group mean, divide by the group std.
    #[default]
    Group,
    /// Subtract the group mean, divide by the batch std.
    Batch,
    /// Subtract the group mean only.
    None,
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Constant.
    #[default]
    Constant,
    /// Cosine decay to `min_lr_ratio * lr`.
    Cosine,
}

/// `[grpo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// B: queries per step.
    pub batch_size: usize,
    /// G: instructions sampled per query.
    pub group_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW betas.
    pub betas: [f64; 2],
    /// AdamW epsilon.
    pub adam_eps: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Schedule after warmup.
    pub schedule: Schedule,
    /// Final lr as a fraction of `lr` (cosine).
    pub min_lr_ratio: f64,
    /// Lower clip range of the importance ratio.
    pub epsilon: f64,
    /// Upper clip range (DAPO clip-higher); defaults to `epsilon`. Under `cispo` the cap of the
    /// ratio itself, which must then be set (>= 1).
    pub epsilon_high: Option<f64>,
    /// KL coefficient to the frozen reference teacher (0: no reference is loaded).
    pub beta: f64,
    /// The policy loss.
    pub loss_type: LossType,
    /// Advantage normalisation.
    pub scale_rewards: ScaleRewards,
    /// Optimiser passes over each batch of rollouts.
    pub num_iterations: usize,
    /// Optimiser steps per generation batch: the B x G samples are shuffled (seeded) and split
    /// into this many mini-batches, one step each, all scored against the log-probabilities of
    /// the policy that sampled them.
    pub steps_per_generation: usize,
    /// Sequences per forward/backward (gradient accumulation over the rest).
    pub micro_batch_size: usize,
    /// Global gradient-norm clip (0: off).
    pub max_grad_norm: f64,
    /// Instructions cut at the length cap leave the loss (their tokens count nowhere; DAPO).
    pub mask_truncated_completions: bool,
    /// Only this top share of tokens by entropy keeps its policy term (per micro-batch, as TRL;
    /// 1: all tokens, 0: only the highest-entropy token; "Beyond the 80/20 rule" uses 0.2).
    pub top_entropy_quantile: f64,
    /// Order of weighting and normalising several reward components (TRL's names).
    pub multi_objective_aggregation: Aggregation,
    /// Asynchronous rollouts (`grpo.async`): while the student answers step t, the teacher
    /// updates on step t-1 and samples step t+1, so samples are at most one update old
    /// (staleness 1, TRL's AsyncGRPO and verl's one-step off-policy mode); the importance ratio
    /// is taken against the log-probabilities recorded at sampling. Off: each step waits for
    /// its student.
    #[serde(rename = "async")]
    pub async_rollouts: bool,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        GrpoConfig {
            batch_size: 8,
            group_size: 4,
            lr: 1e-6,
            weight_decay: 0.0,
            betas: [0.9, 0.999],
            adam_eps: 1e-8,
            warmup_steps: 0,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.0,
            epsilon: 0.2,
            epsilon_high: None,
            beta: 0.0,
            loss_type: LossType::Grpo,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
            steps_per_generation: 1,
            micro_batch_size: 8,
            max_grad_norm: 1.0,
            mask_truncated_completions: false,
            top_entropy_quantile: 1.0,
            multi_objective_aggregation: Aggregation::SumThenNormalize,
            async_rollouts: false,
        }
    }
}

impl GrpoConfig {
    /// The upper clip range in use.
    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    /// The advantage scaling in use: `scale_rewards`, except under `normalize_then_sum`, whose
    /// summed z-scores are normalised over the batch (as TRL does).
    pub fn advantage_scale(&self) -> ScaleRewards {
        match self.multi_objective_aggregation {
            Aggregation::SumThenNormalize => self.scale_rewards,
            Aggregation::NormalizeThenSum => ScaleRewards::Batch,
        }
    }

    /// The update compares the current policy with the one that sampled: true when the
    /// rollouts are reused (`num_iterations > 1`), split over several steps, or sampled one
    /// update earlier (`async`).
    pub fn off_policy(&self) -> bool {
        self.num_iterations > 1 || self.steps_per_generation > 1 || self.async_rollouts
    }

    /// Every problem of this table, as messages naming `prefix.key`.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        let g = self;
        if g.batch_size == 0 {
            p.push(format!("{prefix}.batch_size (B) must be >= 1"));
        }
        if g.group_size < 2 {
            p.push(format!(
                "{prefix}.group_size (G) must be >= 2 for group-relative advantages, got {}",
                g.group_size
            ));
        }
        if !(g.lr.is_finite() && g.lr > 0.0) {
            p.push(format!("{prefix}.lr must be > 0, got {}", g.lr));
        }
        if !(g.weight_decay.is_finite() && g.weight_decay >= 0.0) {
            p.push(format!(
                "{prefix}.weight_decay must be >= 0, got {}",
                g.weight_decay
            ));
        }
        for (i, b) in g.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                p.push(format!("{prefix}.betas[{i}] must be in [0, 1), got {b}"));
            }
        }
        if !(g.adam_eps.is_finite() && g.adam_eps > 0.0) {
            p.push(format!("{prefix}.adam_eps must be > 0, got {}", g.adam_eps));
        }
        if !(0.0..=1.0).contains(&g.min_lr_ratio) {
            p.push(format!(
                "{prefix}.min_lr_ratio must be in [0, 1], got {}",
                g.min_lr_ratio
            ));
        }
        if !(g.epsilon.is_finite() && g.epsilon > 0.0) {
            p.push(format!("{prefix}.epsilon must be > 0, got {}", g.epsilon));
        }
        if let Some(e) = g.epsilon_high {
            if !(e.is_finite() && e > 0.0) {
                p.push(format!("{prefix}.epsilon_high must be > 0, got {e}"));
            }
        }
        if g.loss_type == LossType::Cispo {
            match g.epsilon_high {
                None => p.push(format!(
                    "{prefix}.loss_type = \"cispo\" caps the importance ratio at \
                     {prefix}.epsilon_high, which must be set (ScaleRL uses 5.0)"
                )),
                Some(e) if e < 1.0 => p.push(format!(
                    "{prefix}.epsilon_high = {e} under cispo caps the importance ratio below 1, \
                     which scales down every on-policy gradient; use a cap >= 1 (ScaleRL: 5.0)"
                )),
                Some(_) => {}
            }
        }
        if !(g.beta.is_finite() && g.beta >= 0.0) {
            p.push(format!("{prefix}.beta must be >= 0, got {}", g.beta));
        }
        if g.num_iterations == 0 {
            p.push(format!("{prefix}.num_iterations must be >= 1"));
        }
        let samples = g.batch_size * g.group_size;
        if g.steps_per_generation == 0 {
            p.push(format!("{prefix}.steps_per_generation must be >= 1"));
        } else if samples > 0 && samples % g.steps_per_generation != 0 {
            p.push(format!(
                "{prefix}.steps_per_generation = {} must divide the {samples} samples of a \
                 generation ({prefix}.batch_size x {prefix}.group_size)",
                g.steps_per_generation
            ));
        }
        if g.micro_batch_size == 0 {
            p.push(format!("{prefix}.micro_batch_size must be >= 1"));
        }
        if !(g.max_grad_norm.is_finite() && g.max_grad_norm >= 0.0) {
            p.push(format!(
                "{prefix}.max_grad_norm must be >= 0, got {}",
                g.max_grad_norm
            ));
        }
        if !(0.0..=1.0).contains(&g.top_entropy_quantile) {
            p.push(format!(
                "{prefix}.top_entropy_quantile must be in [0, 1], got {}",
                g.top_entropy_quantile
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_loss_type_has_its_config_name() {
        for lt in LossType::ALL {
            let text = format!("loss_type = \"{lt}\"");
            let g: GrpoConfig = toml::from_str(&text).unwrap();
            assert_eq!(g.loss_type, lt);
        }
    }

    #[test]
    fn new_options_are_checked() {
        let g = GrpoConfig {
            loss_type: LossType::Cispo,
            steps_per_generation: 3,
            top_entropy_quantile: 1.5,
            ..GrpoConfig::default()
        };
        let p = g.problems("grpo").join("\n");
        assert!(p.contains("grpo.epsilon_high, which must be set"), "{p}");
        assert!(
            p.contains("steps_per_generation = 3 must divide the 32"),
            "{p}"
        );
        assert!(p.contains("top_entropy_quantile must be in [0, 1]"), "{p}");
        let g = GrpoConfig {
            loss_type: LossType::Cispo,
            epsilon_high: Some(0.28),
            ..GrpoConfig::default()
        };
        assert!(g.problems("grpo")[0].contains("below 1"));
        let g = GrpoConfig {
            loss_type: LossType::Cispo,
            epsilon_high: Some(5.0),
            steps_per_generation: 4,
            ..GrpoConfig::default()
        };
        assert!(g.problems("grpo").is_empty());
        assert!(g.off_policy());
    }
}
