//! The policy losses of `grpo.loss_type` (TRL's names and meanings), an optional k3 KL penalty
//! to a frozen reference, and their aggregation over tokens and sequences.
//!
//! - `grpo`, `dr_grpo`, `dapo`, `bnpo`: the clipped surrogate
//!   `-min(r A, clip(r, 1 - eps, 1 + eps_high) A)` of the token ratio `r` (DAPO's clip-higher),
//!   aggregated four ways ([`token_weights`]).
//! - `gspo`: the same surrogate of one ratio per sequence, `s = exp(mean_t(logp - old))`. It is
//!   computed in GSPO's token form `s_t = sg(s) * exp(logp_t - sg(logp_t))`: the value is `s`
//!   and the gradient that of GSPO, so the loss can run on a slice of positions once `s` is known.
//! - `cispo`: `-sg(min(r, eps_high)) * A * logp`: the ratio is capped and detached, no token's
//!   gradient is removed.
//!
//! The aggregation denominators are for the *whole* optimiser batch, passed in as [`LossDenom`],
//! so the losses of micro-batches add up to the loss of the batch (gradient accumulation is
//! exact, except under `bnpo`, which TRL defines per micro-batch).

use tch::{Kind, Tensor};
use wst_core::{GrpoConfig, LossType};

/// Clip ranges, KL weight and the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossParams {
    /// Lower clip range: the ratio is kept above `1 - epsilon`.
    pub epsilon: f64,
    /// Upper clip range: the ratio is kept below `1 + epsilon_high` (`cispo`: below
    /// `epsilon_high`).
    pub epsilon_high: f64,
    /// KL weight (0: no KL term).
    pub beta: f64,
    /// The loss.
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
    /// Sequences in the batch (`grpo`, `gspo`, `dr_grpo`).
    pub sequences: f64,
    /// Completion tokens in the batch (`dapo`, `cispo`).
    pub tokens: f64,
    /// The maximum completion length, a constant (`dr_grpo`: sequences x max_len).
    pub max_len: f64,
    /// Micro-batches in the batch (`bnpo`: the mean of their token means).
    pub micro_batches: f64,
}

/// A micro-batch loss and its detached statistics.
#[derive(Debug)]
pub struct LossOutput {
    /// The scalar loss to back-propagate.
    pub loss: Tensor,
    /// Sum over tokens of the k3 KL (0 without a reference).
    pub kl_sum: f64,
    /// Tokens where clipping removed (`cispo`: capped) the gradient.
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

/// Each token's weight in the whole-batch loss, for the `[N, C]` mask of one micro-batch (0 at
/// pads): `grpo` and `gspo` 1 / (its sequence's tokens x `denom.sequences`), `dr_grpo`
/// 1 / (`denom.sequences` x `denom.max_len`), `dapo` and `cispo` 1 / `denom.tokens`, `bnpo`
/// 1 / (the micro-batch's tokens x `denom.micro_batches`). The loss is `sum(per_token *
/// weight)`, so it can be computed on any slice of positions (a chunk of the output head) and
/// the slices add up to the batch.
pub fn token_weights(mask: &Tensor, loss_type: LossType, denom: &LossDenom) -> Tensor {
    let mask = mask.to_kind(Kind::Float);
    match loss_type {
        LossType::Grpo | LossType::Gspo => {
            let len = mask.sum_dim_intlist(-1, true, Kind::Float).clamp_min(1.0);
            &mask / (len * denom.sequences)
        }
        LossType::DrGrpo => mask / (denom.sequences * denom.max_len),
        LossType::Dapo | LossType::Cispo => mask / denom.tokens.max(1.0),
        LossType::Bnpo => {
            let tokens = mask.sum(Kind::Float).clamp_min(1.0);
            &mask / (tokens * denom.micro_batches.max(1.0))
        }
    }
}

/// GSPO's sequence log-ratio `mean_t(logp - old)` over each row's masked tokens, `[N, 1]`,
/// detached: computed from whole sequences before the loss runs on slices of them.
pub fn sequence_log_ratio(logp: &Tensor, old_logp: &Tensor, mask: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let m = mask.to_kind(Kind::Float);
        let n = m.sum_dim_intlist(-1, true, Kind::Float).clamp_min(1.0);
        ((logp - old_logp) * &m).sum_dim_intlist(-1, true, Kind::Float) / n
    })
}

/// 1 where a token's entropy is in the top `quantile` share of the masked tokens of `entropy`
/// (TRL's high-entropy mask: at or above the `1 - quantile` quantile, linear interpolation);
/// `[N, n]` f32, 0 at pads.
pub fn high_entropy_mask(entropy: &Tensor, mask: &Tensor, quantile: f64) -> Tensor {
    tch::no_grad(|| {
        let m = mask.gt(0.5);
        let values = entropy.to_kind(Kind::Float).masked_select(&m);
        if values.numel() == 0 {
            return mask.to_kind(Kind::Float).zeros_like();
        }
        let threshold = values.quantile_scalar(1.0 - quantile, None, false, "linear");
        entropy
            .ge_tensor(&threshold)
            .logical_and(&m)
            .to_kind(Kind::Float)
    })
}

/// The loss of some tokens and its statistics, as 0-d tensors on the device (summed across
/// chunks and micro-batches there, read back once per step).
#[derive(Debug)]
pub struct LossTerms {
    /// The scalar loss to back-propagate.
    pub loss: Tensor,
    /// Sum over tokens of the k3 KL (0 without a reference), f64.
    pub kl_sum: Tensor,
    /// Tokens where clipping removed (`cispo`: capped) the gradient, f64.
    pub clipped_tokens: Tensor,
    /// Tokens counted, f64.
    pub tokens: Tensor,
    /// Sum over tokens of the importance ratio, f64.
    pub ratio_sum: Tensor,
}

/// What the loss of some tokens is computed from: all `[N, n]` (a slice of positions of a
/// micro-batch) except `advantages` `[N]` and `seq_log_ratio` `[N, 1]`.
#[derive(Debug, Clone, Copy)]
pub struct LossInputs<'a> {
    /// The current policy's log-probabilities (with gradients).
    pub logp: &'a Tensor,
    /// Those of the policy that sampled (detached).
    pub old_logp: &'a Tensor,
    /// Those of the frozen reference, for the KL term.
    pub ref_logp: Option<&'a Tensor>,
    /// Per-sequence advantages.
    pub advantages: &'a Tensor,
    /// 1 for tokens that count.
    pub mask: &'a Tensor,
    /// From [`token_weights`], sliced like the others.
    pub weights: &'a Tensor,
    /// `gspo`: the sequences' log-ratios from [`sequence_log_ratio`]; `None`: computed from these
    /// tokens, which must then be the whole sequences.
    pub seq_log_ratio: Option<&'a Tensor>,
    /// Tokens that keep their policy term (from [`high_entropy_mask`]); `None`: all. The KL
    /// term is kept everywhere.
    pub keep: Option<&'a Tensor>,
}

impl<'a> LossInputs<'a> {
    /// Whole sequences, every token kept.
    pub fn new(
        logp: &'a Tensor,
        old_logp: &'a Tensor,
        advantages: &'a Tensor,
        mask: &'a Tensor,
        weights: &'a Tensor,
    ) -> Self {
        LossInputs {
            logp,
            old_logp,
            ref_logp: None,
            advantages,
            mask,
            weights,
            seq_log_ratio: None,
            keep: None,
        }
    }
}

/// The loss of some tokens under `params.loss_type` (see the module docs), plus `beta * k3`,
/// times each token's weight, summed.
pub fn grpo_terms(x: &LossInputs<'_>, params: &LossParams) -> LossTerms {
    let (logp, mask) = (x.logp, x.mask);
    let adv = x.advantages.to_kind(Kind::Float).unsqueeze(-1);
    let ratio = match params.loss_type {
        LossType::Gspo => {
            let seq = match x.seq_log_ratio {
                Some(s) => s.shallow_clone(),
                None => sequence_log_ratio(logp, x.old_logp, mask),
            };
            (seq + logp - logp.detach()).exp()
        }
        _ => (logp - x.old_logp).exp(),
    };
    let (mut per_token, clipped_tokens) = match params.loss_type {
        LossType::Cispo => {
            let cap = params.epsilon_high;
            let weight = tch::no_grad(|| ratio.clamp_max(cap));
            let capped =
                tch::no_grad(|| (ratio.gt(cap).to_kind(Kind::Float) * mask).sum(Kind::Double));
            (-(weight * &adv * logp), capped)
        }
        _ => {
            let clipped = ratio.clamp(1.0 - params.epsilon, 1.0 + params.epsilon_high);
            let s1 = &ratio * &adv;
            let s2 = &clipped * &adv;
            let removed = tch::no_grad(|| {
                let low = ratio.lt(1.0 - params.epsilon).logical_and(&adv.lt(0.0));
                let high = ratio
                    .gt(1.0 + params.epsilon_high)
                    .logical_and(&adv.gt(0.0));
                (low.logical_or(&high).to_kind(Kind::Float) * mask).sum(Kind::Double)
            });
            (-s1.minimum(&s2), removed)
        }
    };
    if let Some(keep) = x.keep {
        per_token *= keep;
    }
    let dev = logp.device();
    let mut kl_sum = Tensor::zeros([], (Kind::Double, dev));
    if let (Some(r), true) = (x.ref_logp, params.beta > 0.0) {
        let kl = k3(logp, r);
        kl_sum = tch::no_grad(|| (&kl * mask).sum(Kind::Double));
        per_token += kl * params.beta;
    }
    let loss = (per_token * x.weights).sum(Kind::Float);
    let (tokens, ratio_sum) =
        tch::no_grad(|| (mask.sum(Kind::Double), (&ratio * mask).sum(Kind::Double)));
    LossTerms {
        loss,
        kl_sum,
        clipped_tokens,
        tokens,
        ratio_sum,
    }
}

/// The loss of one micro-batch of whole sequences (`logp`, `old_logp`, `ref_logp` and `mask`
/// `[N, C]`, `advantages` `[N]`), every token kept. The statistics are read back to the host
/// ([`grpo_terms`] keeps them on the device).
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
    let x = LossInputs {
        ref_logp,
        ..LossInputs::new(logp, old_logp, advantages, mask, &weights)
    };
    let t = grpo_terms(&x, params);
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
            micro_batches: 1.0,
        };
        let go = |lt| val(&grpo_loss(&lp, &lp, None, &adv, &mask, &params(lt, 0.0), &d).loss);
        // grpo: mean(-1, +2) = 0.5; dr_grpo: (-3 + 2) / (2 * 3); dapo: (-3 + 2) / 4.
        assert!((go(LossType::Grpo) - 0.5).abs() < 1e-6);
        assert!((go(LossType::DrGrpo) - (-1.0 / 6.0)).abs() < 1e-6);
        assert!((go(LossType::Dapo) - (-0.25)).abs() < 1e-6);
        // gspo at ratio 1 is grpo; cispo scores -A * logp: (1 + 2 + 0.5 - 2) / 4.
        assert!((go(LossType::Gspo) - 0.5).abs() < 1e-6);
        let mut cispo = params(LossType::Cispo, 0.0);
        cispo.epsilon_high = 5.0;
        let c = grpo_loss(&lp, &lp, None, &adv, &mask, &cispo, &d);
        assert!((val(&c.loss) - 0.375).abs() < 1e-6, "{}", val(&c.loss));
        // bnpo: each micro-batch's token mean, averaged over micro-batches.
        let two = LossDenom {
            micro_batches: 2.0,
            ..d
        };
        let bnpo = grpo_loss(
            &lp,
            &lp,
            None,
            &adv,
            &mask,
            &params(LossType::Bnpo, 0.0),
            &two,
        );
        assert!((val(&bnpo.loss) - (-0.125)).abs() < 1e-6);
    }

    fn one_row(tokens: f64) -> LossDenom {
        LossDenom {
            sequences: 1.0,
            tokens,
            max_len: tokens,
            micro_batches: 1.0,
        }
    }

    fn grads_of(loss: &Tensor, x: &Tensor) -> Vec<f64> {
        loss.backward();
        let g = Vec::<f32>::try_from(x.grad().flatten(0, -1)).unwrap();
        g.into_iter().map(f64::from).collect()
    }

    #[test]
    fn gspo_matches_hand_values_and_the_sequence_level_gradient() {
        // log s = mean(0.2, -0.1) = 0.05: inside the clip range, loss -s, gradient -s / 2 each.
        let old = t2(&[0.0, 0.0], 1);
        let mask = t2(&[1.0, 1.0], 1);
        let adv = Tensor::from_slice(&[1.0f32]);
        let p = params(LossType::Gspo, 0.0);
        let lp = t2(&[0.2, -0.1], 1).set_requires_grad(true);
        let out = grpo_loss(&lp, &old, None, &adv, &mask, &p, &one_row(2.0));
        let s = 0.05f64.exp();
        assert!((val(&out.loss) + s).abs() < 1e-6, "{}", val(&out.loss));
        assert!((out.ratio_sum - 2.0 * s).abs() < 1e-5);
        let g = grads_of(&out.loss, &lp);
        assert!(g.iter().all(|g| (g + s / 2.0).abs() < 1e-6), "{g:?}");
        // The sequence-level objective -exp(mean(logp - old)) by autograd: the same gradient.
        let lp2 = t2(&[0.2, -0.1], 1).set_requires_grad(true);
        let direct = -(&lp2 - &old).mean(Kind::Float).exp();
        let g2 = grads_of(&direct, &lp2);
        for (a, b) in g.iter().zip(&g2) {
            assert!((a - b).abs() < 1e-6, "{g:?} vs {g2:?}");
        }
        // log s = 0.8 > ln 1.3 with A > 0: both tokens clipped, no gradient.
        let lp = t2(&[1.0, 0.6], 1).set_requires_grad(true);
        let out = grpo_loss(&lp, &old, None, &adv, &mask, &p, &one_row(2.0));
        assert!((val(&out.loss) + 1.3).abs() < 1e-6);
        assert_eq!(out.clipped_tokens, 2.0);
        assert!(grads_of(&out.loss, &lp).iter().all(|g| *g == 0.0));
    }

    #[test]
    fn gspo_on_slices_with_the_sequence_ratio_equals_whole_sequences() {
        let old = t2(&[-1.0, -0.5, -2.0, -0.7, -0.2, -1.5], 2);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], 2);
        let adv = Tensor::from_slice(&[0.7f32, -1.2]);
        let p = params(LossType::Gspo, 0.0);
        let d = LossDenom {
            sequences: 2.0,
            tokens: 5.0,
            max_len: 3.0,
            micro_batches: 1.0,
        };
        let w = token_weights(&mask, p.loss_type, &d);
        let lp = t2(&[-0.9, -0.6, -1.9, -0.8, -0.1, 0.0], 2).set_requires_grad(true);
        let whole = grpo_terms(&LossInputs::new(&lp, &old, &adv, &mask, &w), &p).loss;
        let wg = grads_of(&whole, &lp);
        let lp2 = t2(&[-0.9, -0.6, -1.9, -0.8, -0.1, 0.0], 2).set_requires_grad(true);
        let seq = sequence_log_ratio(&lp2, &old, &mask);
        let mut total = 0.0;
        for (at, n) in [(0, 1), (1, 2)] {
            let sl = |t: &Tensor| t.narrow(1, at, n);
            let (l, o, m, ww) = (sl(&lp2), sl(&old), sl(&mask), sl(&w));
            let x = LossInputs {
                seq_log_ratio: Some(&seq),
                ..LossInputs::new(&l, &o, &adv, &m, &ww)
            };
            let t = grpo_terms(&x, &p);
            total += val(&t.loss);
            t.loss.backward();
        }
        assert!((total - val(&whole)).abs() < 1e-6);
        let sg = Vec::<f32>::try_from(lp2.grad().flatten(0, -1)).unwrap();
        for (a, b) in wg.iter().zip(&sg) {
            assert!((a - *b as f64).abs() < 1e-6, "{wg:?} vs {sg:?}");
        }
    }

    #[test]
    fn cispo_caps_the_detached_ratio_and_keeps_every_gradient() {
        // Ratios e^2 (capped at 5) and e^0.1; A = 1; dapo weights 1/2.
        let mut p = params(LossType::Cispo, 0.0);
        p.epsilon_high = 5.0;
        let lp = t2(&[2.0, 0.1], 1).set_requires_grad(true);
        let out = grpo_loss(
            &lp,
            &t2(&[0.0, 0.0], 1),
            None,
            &Tensor::from_slice(&[1.0f32]),
            &t2(&[1.0, 1.0], 1),
            &p,
            &one_row(2.0),
        );
        let r = 0.1f64.exp();
        assert!((val(&out.loss) + (5.0 * 2.0 + r * 0.1) / 2.0).abs() < 1e-5);
        assert_eq!(out.clipped_tokens, 1.0);
        let g = grads_of(&out.loss, &lp);
        assert!(
            (g[0] + 2.5).abs() < 1e-6 && (g[1] + r / 2.0).abs() < 1e-6,
            "{g:?}"
        );
        // A < 0 and ratio e^-1 < 1 - eps: GRPO would drop the gradient, CISPO keeps -w * A.
        let lp = t2(&[-1.0], 1).set_requires_grad(true);
        let out = grpo_loss(
            &lp,
            &t2(&[0.0], 1),
            None,
            &Tensor::from_slice(&[-1.0f32]),
            &t2(&[1.0], 1),
            &p,
            &one_row(1.0),
        );
        let w = (-1.0f64).exp();
        assert!((val(&out.loss) + w).abs() < 1e-6);
        assert_eq!(out.clipped_tokens, 0.0);
        assert!((grads_of(&out.loss, &lp)[0] - w).abs() < 1e-6);
    }

    #[test]
    fn high_entropy_mask_keeps_the_top_share_and_only_the_policy_term() {
        let ent = t2(&[0.1, 0.5, 0.9, 0.3, 0.7, 5.0], 2);
        let mask = t2(&[1.0, 1.0, 1.0, 1.0, 1.0, 0.0], 2);
        let keep =
            |q| Vec::<f32>::try_from(high_entropy_mask(&ent, &mask, q).flatten(0, -1)).unwrap();
        // The 0.6 quantile of (0.1, 0.3, 0.5, 0.7, 0.9) is 0.58: 0.7 and 0.9 stay; the pad never.
        assert_eq!(keep(0.4), [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(keep(0.0), [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(keep(1.0), [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]);
        // Masked tokens lose their policy term, not their KL term.
        let lp = t2(&[-1.0, -2.0], 1);
        let rf = t2(&[-1.5, -1.0], 1);
        let m = t2(&[1.0, 1.0], 1);
        let k = t2(&[0.0, 1.0], 1);
        let adv = Tensor::from_slice(&[1.0f32]);
        let w = token_weights(&m, LossType::Dapo, &one_row(2.0));
        let x = LossInputs {
            ref_logp: Some(&rf),
            keep: Some(&k),
            ..LossInputs::new(&lp, &lp, &adv, &m, &w)
        };
        let t = grpo_terms(&x, &params(LossType::Dapo, 0.1));
        let h = |d: f64| d.exp() - d - 1.0;
        let expect = (-1.0 + 0.1 * (h(-0.5) + h(1.0))) / 2.0;
        assert!((val(&t.loss) - expect).abs() < 1e-6, "{}", val(&t.loss));
    }

    #[test]
    fn clipping_matches_hand_values() {
        // One row, A = +1, ratios e^0.5 (clipped to 1.3), e^-0.5 (unclipped for A > 0: min
        // takes the ratio 0.6065), 1.1 (inside).
        let old = t2(&[0.0, 0.0, 0.0], 1);
        let lp = t2(&[0.5, -0.5, 1.1f32.ln()], 1).set_requires_grad(true);
        let mask = t2(&[1.0, 1.0, 1.0], 1);
        let adv = Tensor::from_slice(&[1.0f32]);
        let d = one_row(3.0);
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
            &one_row(2.0),
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
        let d = one_row(2.0);
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
            micro_batches: 1.0,
        };
        for lt in [
            LossType::Grpo,
            LossType::DrGrpo,
            LossType::Dapo,
            LossType::Gspo,
            LossType::Cispo,
        ] {
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
