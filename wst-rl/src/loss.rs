//! The GRPO objective: the clipped surrogate (with DAPO's clip-higher), an optional k3 KL penalty
//! to a frozen reference, and the three ways of aggregating per-token terms.
//!
//! The aggregation denominators are for the *whole* batch, passed in as [`LossDenom`], so the
//! losses of micro-batches add up to the loss of the batch (gradient accumulation is exact).

use tch::{Kind, Tensor};
use wst_core::{GrpoConfig, LossType};

/// Clip ranges, KL weight and aggregation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParams {
    /// Lower clip range: the ratio is kept above `1 - epsilon`.
    pub epsilon: f64,
    /// Upper clip range: the ratio is kept below `1 + epsilon_high`.
    pub epsilon_high: f64,
    /// KL weight (0: no KL term).
    pub beta: f64,
    /// Aggregation.
    pub loss_type: LossType,
}

impl LossParams {
    /// From the `[grpo]` config.
    pub fn from_config(g: &GrpoConfig) -> Self {
        LossParams {
            epsilon: g.epsilon,
            epsilon_high: g.epsilon_high(),
            beta: g.beta,
            loss_type: g.loss_type,
        }
    }
}

/// Whole-batch denominators of the aggregation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossDenom {
    /// Sequences in the batch (`grpo`).
    pub sequences: f64,
    /// Completion tokens in the batch (`dapo`).
    pub tokens: f64,
    /// The maximum completion length, a constant (`dr_grpo`: sequences x max_len).
    pub max_len: f64,
}

/// A micro-batch loss and its detached statistics.
#[derive(Debug)]
pub struct LossOutput {
    /// The scalar loss to back-propagate.
    pub loss: Tensor,
    /// Sum over tokens of the k3 KL (0 without a reference).
    pub kl_sum: f64,
    /// Tokens where clipping removed the gradient.
    pub clipped_tokens: f64,
    /// Tokens counted.
    pub tokens: f64,
    /// Sum over tokens of the importance ratio.
    pub ratio_sum: f64,
}

/// The k3 estimator of KL(policy || reference) per token: `exp(r - p) - (r - p) - 1`, with `p` the
/// policy and `r` the reference log-probability. Non-negative, unbiased.
pub fn k3(logp: &Tensor, ref_logp: &Tensor) -> Tensor {
    let d = ref_logp - logp;
    d.exp() - &d - 1.0
}

/// Each token's weight in the whole-batch loss `[N, C]` (0 at pads): `grpo` 1 / (its
/// sequence's tokens x `denom.sequences`), `dr_grpo` 1 / (`denom.sequences` x `denom.max_len`),
/// `dapo` 1 / `denom.tokens`. The loss is `sum(per_token * weight)`, so it can be computed on any
/// slice of positions (a chunk of the output head) and the slices add up to the batch.
pub fn token_weights(mask: &Tensor, loss_type: LossType, denom: &LossDenom) -> Tensor {
    let mask = mask.to_kind(Kind::Float);
    match loss_type {
        LossType::Grpo => {
            let len = mask.sum_dim_intlist(-1, true, Kind::Float).clamp_min(1.0);
            &mask / (len * denom.sequences)
        }
        LossType::DrGrpo => mask / (denom.sequences * denom.max_len),
        LossType::Dapo => mask / denom.tokens.max(1.0),
    }
}

/// The loss of some tokens and its statistics, as 0-d tensors on the device (summed across
/// chunks and micro-batches there, read back once per step).
#[derive(Debug)]
pub struct LossTerms {
    /// The scalar loss to back-propagate.
    pub loss: Tensor,
    /// Sum over tokens of the k3 KL (0 without a reference), f64.
    pub kl_sum: Tensor,
    /// Tokens where clipping removed the gradient, f64.
    pub clipped_tokens: Tensor,
    /// Tokens counted, f64.
    pub tokens: Tensor,
    /// Sum over tokens of the importance ratio, f64.
    pub ratio_sum: Tensor,
}

/// The GRPO loss of some tokens: `logp`, `old_logp`, `ref_logp`, `mask` and `weights` (from
/// [`token_weights`], sliced like the others) are `[N, n]`, `advantages` is `[N]`. Per token:
/// `-min(ratio * A, clip(ratio, 1 - eps, 1 + eps_high) * A) + beta * k3`, times its weight.
pub fn grpo_terms(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    weights: &Tensor,
    params: &LossParams,
) -> LossTerms {
    let adv = advantages.to_kind(Kind::Float).unsqueeze(-1);
    let ratio = (logp - old_logp).exp();
    let clipped = ratio.clamp(1.0 - params.epsilon, 1.0 + params.epsilon_high);
    let s1 = &ratio * &adv;
    let s2 = &clipped * &adv;
    let mut per_token = -s1.minimum(&s2);
    let dev = logp.device();
    let mut kl_sum = Tensor::zeros([], (Kind::Double, dev));
    if let (Some(r), true) = (ref_logp, params.beta > 0.0) {
        let kl = k3(logp, r);
        kl_sum = tch::no_grad(|| (&kl * mask).sum(Kind::Double));
        per_token += kl * params.beta;
    }
    let loss = (per_token * weights).sum(Kind::Float);
    let (clipped_tokens, tokens, ratio_sum) = tch::no_grad(|| {
        let low = ratio.lt(1.0 - params.epsilon).logical_and(&adv.lt(0.0));
        let high = ratio
            .gt(1.0 + params.epsilon_high)
            .logical_and(&adv.gt(0.0));
        (
            (low.logical_or(&high).to_kind(Kind::Float) * mask).sum(Kind::Double),
            mask.sum(Kind::Double),
            (&ratio * mask).sum(Kind::Double),
        )
    });
    LossTerms {
        loss,
        kl_sum,
        clipped_tokens,
        tokens,
        ratio_sum,
    }
}

/// The GRPO loss of one micro-batch.
///
/// `logp`, `old_logp`, `ref_logp` and `mask` are `[N, C]`, `advantages` is `[N]`. Per token:
/// `-min(ratio * A, clip(ratio, 1 - eps, 1 + eps_high) * A) + beta * k3`, aggregated by
/// `grpo` (mean over each sequence's tokens, summed over sequences / `denom.sequences`),
/// `dr_grpo` (sum / (`denom.sequences` x `denom.max_len`)) or `dapo` (sum / `denom.tokens`).
/// The statistics are read back to the host ([`grpo_terms`] keeps them on the device).
pub fn grpo_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    advantages: &Tensor,
    mask: &Tensor,
    params: &LossParams,
    denom: &LossDenom,
) -> LossOutput {
    let weights = token_weights(mask, params.loss_type, denom);
    let t = grpo_terms(logp, old_logp, ref_logp, advantages, mask, &weights, params);
    LossOutput {
        loss: t.loss,
        kl_sum: t.kl_sum.double_value(&[]),
        clipped_tokens: t.clipped_tokens.double_value(&[]),
        tokens: t.tokens.double_value(&[]),
        ratio_sum: t.ratio_sum.double_value(&[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t2(v: &[f32], rows: i64) -> Tensor {
        Tensor::from_slice(v).view([rows, -1])
    }

    fn params(loss_type: LossType, beta: f64) -> LossParams {
        LossParams {
            epsilon: 0.2,
            epsilon_high: 0.3,
            beta,
            loss_type,
        }
    }

    fn val(t: &Tensor) -> f64 {
        t.double_value(&[])
    }

    #[test]
    fn aggregations_match_hand_values() {
        // Ratio 1 everywhere: per-token term is -A. Row 0: A = 1, 3 tokens; row 1: A = -2, 1 token.
        let lp = t2(&[-1.0, -2.0, -0.5, -1.0, 0.0, 0.0], 2);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0, 0.0, 0.0], 2);
        let adv = Tensor::from_slice(&[1.0f32, -2.0]);
        let d = LossDenom {
            sequences: 2.0,
            tokens: 4.0,
            max_len: 3.0,
        };
        let go = |lt| val(&grpo_loss(&lp, &lp, None, &adv, &mask, &params(lt, 0.0), &d).loss);
        // grpo: mean(-1, +2) = 0.5; dr_grpo: (-3 + 2) / (2 * 3); dapo: (-3 + 2) / 4.
        assert!((go(LossType::Grpo) - 0.5).abs() < 1e-6);
        assert!((go(LossType::DrGrpo) - (-1.0 / 6.0)).abs() < 1e-6);
        assert!((go(LossType::Dapo) - (-0.25)).abs() < 1e-6);
    }

    #[test]
    fn clipping_matches_hand_values() {
        // One row, A = +1, ratios e^0.5 (clipped to 1.3), e^-0.5 (unclipped for A > 0: min
        // takes the ratio 0.6065), 1.1 (inside).
        let old = t2(&[0.0, 0.0, 0.0], 1);
        let lp = t2(&[0.5, -0.5, 1.1f32.ln()], 1).set_requires_grad(true);
        let mask = t2(&[1.0, 1.0, 1.0], 1);
        let adv = Tensor::from_slice(&[1.0f32]);
        let d = LossDenom {
            sequences: 1.0,
            tokens: 3.0,
            max_len: 3.0,
        };
        let out = grpo_loss(
            &lp,
            &old,
            None,
            &adv,
            &mask,
            &params(LossType::Dapo, 0.0),
            &d,
        );
        let expect = -(1.3 + (-0.5f64).exp() + 1.1) / 3.0;
        assert!((val(&out.loss) - expect).abs() < 1e-5, "{}", val(&out.loss));
        assert_eq!(out.clipped_tokens, 1.0);
        out.loss.backward();
        let g = Vec::<f32>::try_from(lp.grad().flatten(0, -1)).unwrap();
        // The clipped token gets no gradient; the others d(-ratio/3)/dlogp = -ratio/3.
        assert_eq!(g[0], 0.0);
        assert!((g[1] as f64 + (-0.5f64).exp() / 3.0).abs() < 1e-6);
        assert!((g[2] as f64 + 1.1 / 3.0).abs() < 1e-6);

        // A < 0: ratio e^-0.5 < 0.8 is clipped, e^0.5 is not.
        let lp = t2(&[0.5, -0.5], 1);
        let out = grpo_loss(
            &lp,
            &t2(&[0.0, 0.0], 1),
            None,
            &Tensor::from_slice(&[-1.0f32]),
            &t2(&[1.0, 1.0], 1),
            &params(LossType::Dapo, 0.0),
            &LossDenom {
                sequences: 1.0,
                tokens: 2.0,
                max_len: 2.0,
            },
        );
        let expect = (0.5f64.exp() + 0.8) / 2.0;
        assert!((val(&out.loss) - expect).abs() < 1e-5);
        assert_eq!(out.clipped_tokens, 1.0);
    }

    #[test]
    fn k3_matches_hand_values_and_enters_the_loss() {
        let lp = t2(&[-1.0, -2.0], 1);
        let rf = t2(&[-1.5, -1.0], 1);
        let k = Vec::<f32>::try_from(k3(&lp, &rf).flatten(0, -1)).unwrap();
        let h = |d: f64| d.exp() - d - 1.0;
        assert!((k[0] as f64 - h(-0.5)).abs() < 1e-6);
        assert!((k[1] as f64 - h(1.0)).abs() < 1e-6);
        let d = LossDenom {
            sequences: 1.0,
            tokens: 2.0,
            max_len: 2.0,
        };
        let out = grpo_loss(
            &lp,
            &lp,
            Some(&rf),
            &Tensor::from_slice(&[0.0f32]),
            &t2(&[1.0, 1.0], 1),
            &params(LossType::Grpo, 0.1),
            &d,
        );
        assert!((val(&out.loss) - 0.1 * (h(-0.5) + h(1.0)) / 2.0).abs() < 1e-6);
        assert!((out.kl_sum - (h(-0.5) + h(1.0))).abs() < 1e-6);
    }

    #[test]
    fn micro_batches_add_up_to_the_batch() {
        let lp = t2(&[-1.0, -2.0, -0.5, -1.0, -0.3, 0.0], 3);
        let old = t2(&[-1.1, -1.9, -0.4, -1.0, -0.2, 0.0], 3);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], 3);
        let adv = Tensor::from_slice(&[1.0f32, -0.5, 2.0]);
        let d = LossDenom {
            sequences: 3.0,
            tokens: 5.0,
            max_len: 2.0,
        };
        for lt in [LossType::Grpo, LossType::DrGrpo, LossType::Dapo] {
            let p = params(lt, 0.0);
            let whole = val(&grpo_loss(&lp, &old, None, &adv, &mask, &p, &d).loss);
            let parts: f64 = [(0, 2), (2, 1)]
                .iter()
                .map(|&(s, n)| {
                    val(&grpo_loss(
                        &lp.narrow(0, s, n),
                        &old.narrow(0, s, n),
                        None,
                        &adv.narrow(0, s, n),
                        &mask.narrow(0, s, n),
                        &p,
                        &d,
                    )
                    .loss)
                })
                .sum();
            assert!((whole - parts).abs() < 1e-6, "{lt:?}: {whole} vs {parts}");
        }
    }
}
