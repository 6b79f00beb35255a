//! Group-relative advantages: each reward minus its group's mean, scaled by the group std, the
//! batch std, or not at all. Groups whose rewards all tie carry no signal: their advantages are
//! zero and they are counted.

use wst_core::ScaleRewards;

/// Added to the std before dividing (as TRL does), so nearly tied groups do not explode.
pub const STD_EPS: f64 = 1e-4;

/// Two rewards closer than this count as tied.
pub const TIE_TOL: f64 = 1e-9;

/// Advantages of a batch, grouped as the rewards were.
#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    /// One advantage per sample, per group.
    pub values: Vec<Vec<f64>>,
    /// Groups whose valid rewards all tie (or that have fewer than two valid rewards).
    pub tied_groups: usize,
    /// Samples without a reward (every student reply failed): advantage 0.
    pub missing: usize,
}

impl Advantages {
    /// Mean, std (population), min and max of all advantages.
    pub fn stats(&self) -> (f64, f64, f64, f64) {
        let all: Vec<f64> = self.values.iter().flatten().copied().collect();
        moments(&all)
    }
}

/// Mean, population std, min and max of `xs` (zeros when empty).
pub fn moments(xs: &[f64]) -> (f64, f64, f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, var.sqrt(), min, max)
}

/// Unbiased (n - 1) standard deviation; 0 for fewer than two values.
fn sample_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Computes advantages from per-group rewards (`None`: no reward, advantage 0, left out of the
/// group statistics).
///
/// - `Group`: `(r - mean_group) / (std_group + STD_EPS)`
/// - `Batch`: `(r - mean_group) / (std_batch + STD_EPS)`
/// - `None`: `r - mean_group`
///
/// Stds are unbiased (n - 1), as `torch.std`.
pub fn compute(rewards: &[Vec<Option<f64>>], scale: ScaleRewards) -> Advantages {
    let batch_valid: Vec<f64> = rewards.iter().flatten().flatten().copied().collect();
    let batch_std = sample_std(&batch_valid);
    let mut tied_groups = 0;
    let mut missing = 0;
    let values = rewards
        .iter()
        .map(|group| {
            let valid: Vec<f64> = group.iter().flatten().copied().collect();
            missing += group.len() - valid.len();
            let tied = valid.len() < 2 || valid.iter().all(|r| (r - valid[0]).abs() <= TIE_TOL);
            if tied {
                tied_groups += 1;
                return vec![0.0; group.len()];
            }
            let mean = valid.iter().sum::<f64>() / valid.len() as f64;
            let denom = match scale {
                ScaleRewards::Group => sample_std(&valid) + STD_EPS,
                ScaleRewards::Batch => batch_std + STD_EPS,
                ScaleRewards::None => 1.0,
            };
            group
                .iter()
                .map(|r| r.map_or(0.0, |r| (r - mean) / denom))
                .collect()
        })
        .collect();
    Advantages {
        values,
        tied_groups,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn group_scaling_matches_hand_values() {
        // Group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3).
        let r = vec![vec![Some(1.0), Some(0.0), Some(0.0), Some(1.0)]];
        let a = compute(&r, ScaleRewards::Group);
        let s = (1.0f64 / 3.0).sqrt() + STD_EPS;
        close(&a.values[0], &[0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s]);
        assert_eq!(a.tied_groups, 0);
    }

    #[test]
    fn batch_and_none_scaling_match_hand_values() {
        // Groups [2, 0] and [1, 1] (tied). Batch values 2, 0, 1, 1: mean 1, unbiased var 2/3.
        let r = vec![vec![Some(2.0), Some(0.0)], vec![Some(1.0), Some(1.0)]];
        let b = compute(&r, ScaleRewards::Batch);
        let s = (2.0f64 / 3.0).sqrt() + STD_EPS;
        close(&b.values[0], &[1.0 / s, -1.0 / s]);
        close(&b.values[1], &[0.0, 0.0]);
        assert_eq!(b.tied_groups, 1);
        let n = compute(&r, ScaleRewards::None);
        close(&n.values[0], &[1.0, -1.0]);
        close(&n.values[1], &[0.0, 0.0]);
    }

    #[test]
    fn missing_rewards_are_left_out_and_counted() {
        // Valid [3, 1]: mean 2, std sqrt(2).
        let r = vec![vec![Some(3.0), None, Some(1.0)], vec![None, Some(5.0)]];
        let a = compute(&r, ScaleRewards::Group);
        let s = 2f64.sqrt() + STD_EPS;
        close(&a.values[0], &[1.0 / s, 0.0, -1.0 / s]);
        close(&a.values[1], &[0.0, 0.0]);
        assert_eq!(a.missing, 2);
        assert_eq!(a.tied_groups, 1); // one valid reward only
    }

    #[test]
    fn a_constant_baseline_cancels_within_groups() {
        let r1 = vec![vec![Some(0.3), Some(0.9), Some(0.1)]];
        let r2 = vec![vec![Some(0.3 - 0.7), Some(0.9 - 0.7), Some(0.1 - 0.7)]];
        for s in [ScaleRewards::Group, ScaleRewards::None] {
            close(&compute(&r1, s).values[0], &compute(&r2, s).values[0]);
        }
    }
}
