//! Learning-rate schedule: linear warmup, then constant or cosine decay.

use wst_core::{GrpoConfig, Schedule};

/// The learning rate of optimiser step `step` (0-based) out of `total_steps`.
///
/// Warmup: `lr * (step + 1) / warmup_steps` for the first `warmup_steps` steps. Then `lr`
/// (constant) or `min + (lr - min) * (1 + cos(pi * progress)) / 2` (cosine) with
/// `min = min_lr_ratio * lr` and `progress` going from 0 at the end of warmup to 1 at the last
/// step.
pub fn learning_rate(g: &GrpoConfig, step: u64, total_steps: u64) -> f64 {
    if step < g.warmup_steps {
        return g.lr * (step + 1) as f64 / g.warmup_steps as f64;
    }
    match g.schedule {
        Schedule::Constant => g.lr,
        Schedule::Cosine => {
            let span = total_steps.saturating_sub(g.warmup_steps).saturating_sub(1);
            let progress = if span == 0 {
                1.0
            } else {
                ((step - g.warmup_steps) as f64 / span as f64).min(1.0)
            };
            let min = g.min_lr_ratio * g.lr;
            min + (g.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine() {
        let g = GrpoConfig {
            lr: 1.0,
            warmup_steps: 2,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.1,
            ..GrpoConfig::default()
        };
        let lrs: Vec<f64> = (0..7).map(|s| learning_rate(&g, s, 7)).collect();
        assert!((lrs[0] - 0.5).abs() < 1e-12 && (lrs[1] - 1.0).abs() < 1e-12);
        assert!((lrs[2] - 1.0).abs() < 1e-12);
        // Halfway through the decay (step 4 of 2..=6): min + (1 - min) / 2.
        assert!((lrs[4] - 0.55).abs() < 1e-12);
        assert!((lrs[6] - 0.1).abs() < 1e-12);
    }

    #[test]
    fn constant_after_warmup() {
        let g = GrpoConfig {
            lr: 3e-4,
            warmup_steps: 0,
            ..GrpoConfig::default()
        };
        assert_eq!(learning_rate(&g, 0, 10), 3e-4);
        assert_eq!(learning_rate(&g, 9, 10), 3e-4);
    }
}
