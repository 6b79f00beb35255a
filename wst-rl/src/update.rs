//! The teacher's update: one function, [`update`], that `wst train` ([`crate::Trainer`]) and
//! `wst bench train-step` both run.
//!
//! For each micro-batch the body runs once with gradients up to its features `f` at the
//! completion positions; the output head then runs on a detached copy of `f`, one chunk of
//! positions at a time: each chunk's f32 logits give its tokens' log-probabilities (at the
//! sampling temperature) and entropies, its share of the loss ([`crate::loss::grpo_terms`]) is
//! backpropagated into the head's weights and the copy's gradient, and the logits are freed.
//! Finally `f` is backpropagated with the gathered gradient. So only one `[micro, chunk, vocab]`
//! block is alive at a time, where one autograd graph over all positions keeps every chunk's
//! logits until its backward. What a chunk cannot know alone (GSPO's sequence ratio off-policy,
//! the entropy quantile of `top_entropy_quantile`) comes from a first pass of the head without
//! gradients. The loss and its statistics are summed on the device and read back once per
//! update, after the optimiser steps (clipping and AdamW in f32, see [`crate::adamw`]).

use tch::{nn, Kind, Tensor};
use wst_core::LossType;
use wst_models::DecoderLm;

use crate::adamw::{zero_grad, AdamW};
use crate::lm::decoder_features;
use crate::loss::{
    grpo_terms, high_entropy_mask, sequence_log_ratio, token_weights, LossDenom, LossInputs,
    LossParams,
};
use crate::policy::{Policy, TokenBatch};
use crate::Result;

/// The differentiable half of a policy, all the update needs: a body, an output head and the
/// variables they train. Every [`Policy`] is one; [`DecoderScorer`] makes a bare decoder one
/// (benchmarks on random weights have no tokenizer).
pub trait Scorer {
    /// The variables the optimiser updates.
    fn variables(&self) -> &nn::VarStore;
    /// See [`Policy::completion_features`].
    fn features(&self, batch: &TokenBatch) -> Result<Tensor>;
    /// See [`Policy::head_logits`].
    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor>;
}

impl<P: Policy + ?Sized> Scorer for P {
    fn variables(&self) -> &nn::VarStore {
        self.vars()
    }
    fn features(&self, batch: &TokenBatch) -> Result<Tensor> {
        self.completion_features(batch)
    }
    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor> {
        Policy::head_logits(self, features, temperature)
    }
}

/// A decoder LM as a [`Scorer`] (what [`crate::LmPolicy`] computes, without a tokenizer).
#[derive(Debug, Clone, Copy)]
pub struct DecoderScorer<'a>(
    /// The decoder.
    pub &'a DecoderLm,
);

impl Scorer for DecoderScorer<'_> {
    fn variables(&self) -> &nn::VarStore {
        self.0.var_store()
    }
    fn features(&self, batch: &TokenBatch) -> Result<Tensor> {
        decoder_features(self.0, batch)
    }
    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor> {
        Ok(self.0.head_logits_at(features, temperature)?)
    }
}

/// One micro-batch of the update.
#[derive(Debug)]
pub struct MicroBatch {
    /// The sequences.
    pub batch: TokenBatch,
    /// `[N]` advantages (f32, on the device).
    pub advantages: Tensor,
    /// `[N, C]` log-probabilities of the policy that sampled (rollouts reused or split over
    /// several steps); `None`: the current policy's, detached (ratio 1).
    pub old_logprobs: Option<Tensor>,
    /// `[N, C]` log-probabilities of the frozen reference (the KL term), if any.
    pub ref_logprobs: Option<Tensor>,
}

/// The micro-batches of one optimiser step and the denominators of their loss.
#[derive(Debug)]
pub struct MiniBatch {
    /// Gradient accumulation runs over these.
    pub micro: Vec<MicroBatch>,
    /// Whole-mini-batch denominators.
    pub denom: LossDenom,
}

/// How to compute the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateOptions {
    /// Clip ranges, KL weight, loss type.
    pub loss: LossParams,
    /// The sampling temperature: log-probabilities are those of `softmax(logits / T)`.
    pub temperature: f64,
    /// Positions per chunk of the output head.
    pub head_chunk: i64,
    /// One autograd graph over all chunks of the head instead of a backward per chunk (the
    /// reference the chunked backward is tested against; more memory).
    pub one_pass_head: bool,
    /// Global gradient-norm limit (0: no clipping).
    pub max_grad_norm: f64,
    /// Share of each micro-batch's tokens, by entropy, that keep their policy term (1: all).
    pub top_entropy_quantile: f64,
}

/// What an update reports (means over its optimiser steps where that applies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateStats {
    /// The loss, averaged over the optimiser steps.
    pub loss: f64,
    /// Global gradient norm before clipping, of the last step.
    pub grad_norm: f64,
    /// Mean k3 KL per token.
    pub kl: f64,
    /// Fraction of tokens whose gradient clipping removed (`cispo`: capped).
    pub clip_frac: f64,
    /// Mean importance ratio.
    pub ratio_mean: f64,
    /// Mean entropy per token of the teacher's sampling distribution (at the sampling
    /// temperature), over the scored tokens.
    pub entropy: f64,
    /// Tokens scored (over all steps).
    pub tokens: f64,
    /// Optimiser steps taken.
    pub steps: usize,
}

/// Device-side running sums.
struct Sums {
    loss: Tensor,
    kl: Tensor,
    clipped: Tensor,
    tokens: Tensor,
    ratio: Tensor,
    entropy: Tensor,
}

impl Sums {
    fn new(device: tch::Device) -> Self {
        let z = || Tensor::zeros([], (Kind::Double, device));
        Sums {
            loss: z(),
            kl: z(),
            clipped: z(),
            tokens: z(),
            ratio: z(),
            entropy: z(),
        }
    }
}

/// The log-probabilities of `targets` `[N, n]` and the entropies `[N, n]` under
/// `softmax(logits)` (`logits` `[N, n, V]` f32, from [`Scorer::head_logits`]).
///
/// The log-probabilities are [`crate::policy::target_logprobs`]'s bit for bit (`picked -
/// logsumexp`, the same operations: a reference or sampling policy scored that way gives
/// ratio 1 and KL 0 exactly), computed without a graph; their gradient with respect to the
/// logits, `onehot - p`, is attached through one product `s = sum_v logits_v * sg(p_v -
/// onehot_v)` as `lp = value - (s - sg(s))`. So backward writes the logits' gradient once,
/// where autograd through `gather - logsumexp` writes the scatter of `gather`, three
/// temporaries of `logsumexp` and their sum; and the entropy `logsumexp - sum_v p_v logits_v =
/// -(s + lp)` comes from the same product, with no extra softmax.
fn head_terms(logits: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let idx = targets.to_device(logits.device()).unsqueeze(-1);
    let (value, w) = tch::no_grad(|| {
        let picked = logits.gather(2, &idx, false).squeeze_dim(-1);
        let lse = logits.logsumexp([-1], false);
        // p - onehot, in the buffer of p.
        let mut w = (logits - lse.unsqueeze(-1)).exp_();
        let _ = w.scatter_add_(2, &idx, &Tensor::full_like(&idx, -1.0).to_kind(w.kind()));
        (picked - lse, w)
    });
    // [N, n, 1, V] x [N, n, V, 1]: one dot product per position.
    let s = logits
        .unsqueeze(-2)
        .matmul(&w.unsqueeze(-1))
        .squeeze_dim(-1)
        .squeeze_dim(-1);
    let ent = tch::no_grad(|| -(&s + &value));
    let lp = if s.requires_grad() {
        &value - (&s - s.detach())
    } else {
        value
    };
    (lp, ent)
}

/// Log-probabilities and entropies `[N, C]` of all positions of `features`, `chunk` positions
/// of the head at a time (one autograd graph when gradients are on).
fn head_all<S: Scorer + ?Sized>(
    scorer: &S,
    features: &Tensor,
    targets: &Tensor,
    temperature: f64,
    chunk: i64,
) -> Result<(Tensor, Tensor)> {
    let c = targets.size()[1];
    let (mut lps, mut ents) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < c {
        let n = chunk.min(c - at);
        let logits = scorer.head_logits(&features.narrow(1, at, n), temperature)?;
        let (lp, ent) = head_terms(&logits, &targets.narrow(1, at, n));
        lps.push(lp);
        ents.push(ent);
        at += n;
    }
    Ok((Tensor::cat(&lps, 1), Tensor::cat(&ents, 1)))
}

/// Backpropagates the loss of `mini` into the gradients of `scorer`'s variables
/// (accumulating: zero them first) and adds the loss and statistics to `sums` on the device.
fn accumulate<S: Scorer + ?Sized>(
    scorer: &S,
    mini: &MiniBatch,
    opts: &UpdateOptions,
    sums: &mut Sums,
) -> Result<()> {
    let chunk = opts.head_chunk.max(1);
    let by_entropy = opts.top_entropy_quantile < 1.0;
    for mb in &mini.micro {
        let b = &mb.batch;
        let mask = &b.completion_mask;
        let weights = token_weights(mask, opts.loss.loss_type, &mini.denom);
        let targets = b.completion_ids();
        // GSPO scores each chunk with the ratio of its whole sequence.
        let whole_ratio = opts.loss.loss_type == LossType::Gspo && mb.old_logprobs.is_some();
        let mut add = |lp: &Tensor,
                       ent: &Tensor,
                       at: i64,
                       n: i64,
                       seq: Option<&Tensor>,
                       keep: Option<&Tensor>|
         -> Result<()> {
            let slice = |t: &Tensor| t.narrow(1, at, n);
            let old = match &mb.old_logprobs {
                Some(o) => slice(o),
                None => lp.detach(),
            };
            let reference = mb.ref_logprobs.as_ref().map(slice);
            let keep = keep.map(slice);
            let (m, w) = (slice(mask), slice(&weights));
            let x = LossInputs {
                ref_logp: reference.as_ref(),
                seq_log_ratio: seq,
                keep: keep.as_ref(),
                ..LossInputs::new(lp, &old, &mb.advantages, &m, &w)
            };
            let t = grpo_terms(&x, &opts.loss);
            t.loss.f_backward()?;
            tch::no_grad(|| {
                sums.loss += t.loss.detach().to_kind(Kind::Double);
                sums.kl += t.kl_sum;
                sums.clipped += t.clipped_tokens;
                sums.tokens += t.tokens;
                sums.ratio += t.ratio_sum;
                sums.entropy += (ent * &m).sum(Kind::Double);
            });
            Ok(())
        };
        let c = b.completion_len as i64;
        if opts.one_pass_head {
            let f = scorer.features(b)?;
            let (lp, ent) = head_all(scorer, &f, &targets, opts.temperature, chunk)?;
            let keep = by_entropy.then(|| high_entropy_mask(&ent, mask, opts.top_entropy_quantile));
            add(&lp, &ent, 0, c, None, keep.as_ref())?;
            continue;
        }
        let f = scorer.features(b)?;
        let fd = f.detach().set_requires_grad(true);
        let (seq, keep) = if whole_ratio || by_entropy {
            let (lp, ent) =
                tch::no_grad(|| head_all(scorer, &fd, &targets, opts.temperature, chunk))?;
            (
                match (&mb.old_logprobs, whole_ratio) {
                    (Some(old), true) => Some(sequence_log_ratio(&lp, old, mask)),
                    _ => None,
                },
                by_entropy.then(|| high_entropy_mask(&ent, mask, opts.top_entropy_quantile)),
            )
        } else {
            (None, None)
        };
        let mut at = 0;
        while at < c {
            let n = chunk.min(c - at);
            let logits = scorer.head_logits(&fd.narrow(1, at, n), opts.temperature)?;
            let (lp, ent) = head_terms(&logits, &targets.narrow(1, at, n));
            drop(logits);
            add(&lp, &ent, at, n, seq.as_ref(), keep.as_ref())?;
            at += n;
        }
        let grad = fd.grad();
        if grad.defined() && f.requires_grad() {
            (f * grad).sum(Kind::Float).f_backward()?;
        }
    }
    Ok(())
}

/// The update: `iterations` passes over `minis`, one optimiser step per mini-batch: zero the
/// gradients, backpropagate the loss of its micro-batches (chunked head backward), clip and take
/// one AdamW step at `lr`. Mini-batches without micro-batches (nothing to learn from) take no
/// step. Then the statistics are read back (the one wait for the device). The step consumes
/// the gradients: they hold scratch values afterwards (the next update zeroes them first).
pub fn update<S: Scorer + ?Sized>(
    scorer: &S,
    optimizer: &mut AdamW,
    minis: &[MiniBatch],
    opts: &UpdateOptions,
    lr: f64,
    iterations: usize,
) -> Result<UpdateStats> {
    let vs = scorer.variables();
    let Some(first) = minis.iter().find_map(|m| m.micro.first()) else {
        return Ok(UpdateStats::default());
    };
    let device = first.advantages.device();
    let mut sums = Sums::new(device);
    let mut norm = None;
    let mut steps = 0;
    for _ in 0..iterations {
        for mini in minis.iter().filter(|m| !m.micro.is_empty()) {
            zero_grad(vs);
            accumulate(scorer, mini, opts, &mut sums)?;
            norm = optimizer.step_clipped(lr, opts.max_grad_norm);
            steps += 1;
        }
    }
    let norm = norm.map_or_else(
        || Tensor::zeros([], (Kind::Double, device)),
        |n| n.to_kind(Kind::Double).to_device(device),
    );
    let all = Tensor::stack(
        &[
            &sums.loss,
            &sums.kl,
            &sums.clipped,
            &sums.tokens,
            &sums.ratio,
            &sums.entropy,
            &norm,
        ],
        0,
    )
    .to_device(tch::Device::Cpu);
    let v = Vec::<f64>::try_from(&all)?;
    let (loss, kl, clipped, tokens, ratio, ent, grad_norm) =
        (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    let mut stats = UpdateStats {
        loss: loss / steps.max(1) as f64,
        grad_norm,
        tokens,
        steps,
        ..UpdateStats::default()
    };
    if tokens > 0.0 {
        stats.kl = kl / tokens;
        stats.clip_frac = clipped / tokens;
        stats.ratio_mean = ratio / tokens;
        stats.entropy = ent / tokens;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adamw::{trainable, AdamWConfig};
    use tch::Device;
    use wst_core::LossType;
    use wst_models::{Arch, DecoderConfig};

    /// Gradients of every variable, flattened into one f64 vector.
    fn grads(model: &DecoderLm) -> Tensor {
        let parts: Vec<Tensor> = trainable(model.var_store())
            .into_iter()
            .map(|(_, t)| t.grad().to_kind(Kind::Double).flatten(0, -1))
            .collect();
        Tensor::cat(&parts, 0)
    }

    fn micro_batches(
        ids: &[Vec<i64>],
        adv: &[f32],
        prompt: usize,
        micro: usize,
    ) -> Vec<MicroBatch> {
        ids.chunks(micro)
            .zip(adv.chunks(micro))
            .map(|(rows, a)| {
                let pairs: Vec<(&[i64], &[i64])> =
                    rows.iter().map(|r| (&r[..prompt], &r[prompt..])).collect();
                MicroBatch {
                    batch: TokenBatch::new(&pairs, 0, Device::Cpu).unwrap(),
                    advantages: Tensor::from_slice(a),
                    old_logprobs: None,
                    ref_logprobs: None,
                }
            })
            .collect()
    }

    /// The tiny random decoder of `arch` with a vocabulary of 64, seeded.
    fn tiny_model(arch: Arch, seed: i64) -> DecoderLm {
        let mut config = DecoderConfig::tiny(arch);
        config.vocab_size = 64;
        crate::seeded(seed, || {
            DecoderLm::random(config, Device::Cpu, seed).unwrap()
        })
    }

    /// Four rows of `cols` token ids in [1, 64), seeded.
    fn random_rows(seed: i64, cols: i64) -> Vec<Vec<i64>> {
        let ids = crate::seeded(seed, || {
            Tensor::randint_low(1, 64, [4, cols], (Kind::Int64, Device::Cpu))
        });
        Vec::try_from(&ids).unwrap()
    }

    fn options(one_pass: bool, chunk: i64) -> UpdateOptions {
        UpdateOptions {
            loss: LossParams {
                epsilon: 0.2,
                epsilon_high: 0.2,
                beta: 0.0,
                loss_type: LossType::Grpo,
            },
            temperature: 1.0,
            head_chunk: chunk,
            one_pass_head: one_pass,
            max_grad_norm: 0.0,
            top_entropy_quantile: 1.0,
        }
    }

    fn mini(micro: Vec<MicroBatch>) -> MiniBatch {
        MiniBatch {
            micro,
            denom: LossDenom {
                sequences: 4.0,
                tokens: 24.0,
                max_len: 6.0,
                micro_batches: 2.0,
            },
        }
    }

    #[test]
    fn head_terms_are_target_logprobs_exactly_with_their_gradient_and_the_entropy() {
        let (raw, targets, weights) = crate::seeded(9, || {
            (
                Tensor::randn([3, 5, 40], (Kind::Float, Device::Cpu)) * 4.0,
                Tensor::randint_low(0, 40, [3, 5], (Kind::Int64, Device::Cpu)),
                Tensor::randn([3, 5], (Kind::Float, Device::Cpu)),
            )
        });
        let run = |reference: bool| {
            let logits = raw.copy().set_requires_grad(true);
            let (lp, ent) = if reference {
                let lp = crate::policy::target_logprobs(&logits, &targets);
                (lp, crate::policy::entropy(&logits))
            } else {
                head_terms(&logits, &targets)
            };
            (&lp * &weights).sum(Kind::Float).backward();
            (lp.detach(), ent, logits.grad())
        };
        let (lp1, ent1, g1) = run(true);
        let (lp2, ent2, g2) = run(false);
        assert!(
            lp1.equal(&lp2),
            "the values are target_logprobs' bit for bit"
        );
        let ent_err = (&ent1 - &ent2).abs().max().double_value(&[]);
        assert!(ent_err < 1e-5, "entropy off by {ent_err}");
        let g_err = (&g1 - &g2).abs().max().double_value(&[]);
        assert!(
            g_err < 1e-6 && g1.abs().max().double_value(&[]) > 0.1,
            "{g_err}"
        );
        let (lp3, ent3) = tch::no_grad(|| head_terms(&raw, &targets));
        assert!(lp3.equal(&lp1) && ent3.equal(&ent2));
    }

    #[test]
    fn chunked_head_backward_equals_one_autograd_graph() {
        let model = tiny_model(Arch::Qwen2, 3);
        let ids = random_rows(1, 10);
        let adv = [0.5f32, -1.0, 2.0, 0.25];
        let micro = mini(micro_batches(&ids, &adv, 4, 3));
        let scorer = DecoderScorer(&model);
        let run = |one_pass: bool| {
            zero_grad(model.var_store());
            let mut sums = Sums::new(Device::Cpu);
            accumulate(&scorer, &micro, &options(one_pass, 2), &mut sums).unwrap();
            (sums.loss.double_value(&[]), grads(&model))
        };
        let (l1, g1) = run(true);
        let (l2, g2) = run(false);
        // The ratio is 1 at the current weights: the loss is minus the mean advantage.
        assert!((l1 - (-0.4375)).abs() < 1e-5, "{l1}");
        assert!((l1 - l2).abs() < 1e-6);
        let norm = g1.norm().double_value(&[]);
        assert!(norm > 0.0);
        let diff = (&g1 - &g2).norm().double_value(&[]) / norm;
        assert!(diff < 1e-5, "relative gradient difference {diff}");
    }

    #[test]
    fn chunked_head_equals_one_graph_off_policy_for_every_loss_and_the_entropy_mask() {
        let model = tiny_model(Arch::Qwen2, 4);
        let ids = random_rows(3, 12);
        let scorer = DecoderScorer(&model);
        let mut micro = micro_batches(&ids, &[0.5, -1.0, 2.0, 0.25], 4, 2);
        // The sampling policy: the current one, shifted per token, so the ratios are not 1.
        for (i, mb) in micro.iter_mut().enumerate() {
            let f = tch::no_grad(|| scorer.features(&mb.batch)).unwrap();
            let t = mb.batch.completion_ids();
            let (lp, _) = tch::no_grad(|| head_all(&scorer, &f, &t, 1.0, 64)).unwrap();
            let shift = crate::seeded(20 + i as i64, || {
                Tensor::randn(lp.size(), (Kind::Float, Device::Cpu)) * 0.3
            });
            mb.old_logprobs = Some(lp + shift);
        }
        let micro = mini(micro);
        for (lt, q) in [
            (LossType::Grpo, 1.0),
            (LossType::Gspo, 1.0),
            (LossType::Cispo, 1.0),
            (LossType::Bnpo, 1.0),
            (LossType::Dapo, 0.3),
            (LossType::Gspo, 0.5),
        ] {
            let run = |one_pass: bool| {
                zero_grad(model.var_store());
                let mut o = options(one_pass, 3);
                o.loss.loss_type = lt;
                o.loss.epsilon = 0.05;
                o.loss.epsilon_high = if lt == LossType::Cispo { 1.05 } else { 0.05 };
                o.top_entropy_quantile = q;
                let mut sums = Sums::new(Device::Cpu);
                accumulate(&scorer, &micro, &o, &mut sums).unwrap();
                let v = |t: &Tensor| t.double_value(&[]);
                (
                    v(&sums.loss),
                    v(&sums.clipped),
                    v(&sums.entropy),
                    grads(&model),
                )
            };
            let (l1, c1, e1, g1) = run(true);
            let (l2, c2, e2, g2) = run(false);
            assert!((l1 - l2).abs() < 1e-6, "{lt:?} q {q}: {l1} vs {l2}");
            assert_eq!(c1, c2, "{lt:?} q {q}");
            assert!(c1 > 0.0, "{lt:?} q {q}: the ratios reach the clip range");
            assert!((e1 - e2).abs() < 1e-4 && e1 > 0.0, "{e1} vs {e2}");
            let norm = g1.norm().double_value(&[]);
            assert!(norm > 0.0, "{lt:?} q {q}");
            let diff = (&g1 - &g2).norm().double_value(&[]) / norm;
            assert!(
                diff < 1e-5,
                "{lt:?} q {q}: relative gradient difference {diff}"
            );
        }
    }

    #[test]
    fn shared_prompt_tokens_run_once_give_the_loss_and_gradients_of_whole_rows() {
        for arch in [Arch::Qwen2, Arch::Gemma] {
            let model = tiny_model(arch, 6);
            // Four rows whose prompts open with the same 6 tokens; prompts of 8 and 9 tokens,
            // completions of 3 to 5 (padding on both sides): one common prefix. Then two
            // prompts of 7 and 9 tokens, each continued by two rows: one forward per prompt.
            let mut rows = random_rows(4, 14);
            let opening = rows[0][..6].to_vec();
            for r in &mut rows {
                r[..6].copy_from_slice(&opening);
            }
            let mut grouped = random_rows(7, 14);
            let (a, b) = (grouped[0][..7].to_vec(), grouped[1][..9].to_vec());
            grouped[2][..7].copy_from_slice(&a);
            grouped[3][..9].copy_from_slice(&b);
            let layouts = [
                (&rows, [8, 9, 8, 9], [12, 14, 11, 13], [1, 6], false),
                (&grouped, [7, 9, 7, 9], [12, 14, 11, 10], [2, 8], true),
            ];
            for (rows, cuts, ends, prefix_shape, by_prompt) in layouts {
                let pairs: Vec<(&[i64], &[i64])> = rows
                    .iter()
                    .zip(cuts.iter().zip(ends))
                    .map(|(r, (&p, e))| (&r[..p], &r[p..e]))
                    .collect();
                let batch = || TokenBatch::new(&pairs, 0, Device::Cpu).unwrap();
                let shared = batch();
                let s = shared.shared.as_ref().expect("prompt tokens are shared");
                assert_eq!(s.prefixes.size(), prefix_shape);
                assert_eq!(s.source.is_some(), by_prompt);
                let mut whole = batch();
                whole.shared = None;
                let scorer = DecoderScorer(&model);
                let run = |b: TokenBatch| {
                    zero_grad(model.var_store());
                    let m = mini(vec![MicroBatch {
                        batch: b,
                        advantages: Tensor::from_slice(&[1.0f32, -0.5, 0.25, -1.0]),
                        old_logprobs: None,
                        ref_logprobs: None,
                    }]);
                    let mut sums = Sums::new(Device::Cpu);
                    accumulate(&scorer, &m, &options(false, 2), &mut sums).unwrap();
                    (
                        sums.loss.double_value(&[]),
                        sums.entropy.double_value(&[]),
                        grads(&model),
                    )
                };
                let (l1, e1, g1) = run(whole);
                let (l2, e2, g2) = run(shared);
                assert!((l1 - l2).abs() < 1e-6, "{arch:?}: {l1} vs {l2}");
                assert!((e1 - e2).abs() < 1e-4, "{arch:?}: entropy {e1} vs {e2}");
                let norm = g1.norm().double_value(&[]);
                let diff = (&g1 - &g2).norm().double_value(&[]) / norm;
                assert!(
                    norm > 0.0 && diff < 1e-5,
                    "{arch:?} by prompt {by_prompt}: gradients differ by {diff}"
                );
            }
        }
        // Prompts that share nothing run whole.
        let rows = random_rows(5, 8);
        let pairs: Vec<(&[i64], &[i64])> = rows.iter().map(|r| (&r[..5], &r[5..])).collect();
        assert!(TokenBatch::new(&pairs, 0, Device::Cpu)
            .unwrap()
            .shared
            .is_none());
    }

    #[test]
    fn update_steps_and_reports_statistics_read_once() {
        let model = tiny_model(Arch::Llama, 5);
        let ids = random_rows(2, 10);
        let micro = [mini(micro_batches(&ids, &[1.0, -1.0, 0.5, -0.5], 4, 2))];
        let before: Vec<Tensor> = trainable(model.var_store())
            .into_iter()
            .map(|(_, t)| t.detach().copy())
            .collect();
        let mut opt = AdamW::new(
            model.var_store(),
            AdamWConfig {
                betas: [0.9, 0.999],
                eps: 1e-8,
                weight_decay: 0.0,
            },
        );
        let mut opts = options(false, 4);
        opts.max_grad_norm = 1e-3;
        let s = update(&DecoderScorer(&model), &mut opt, &micro, &opts, 1e-3, 2).unwrap();
        assert_eq!(opt.steps(), 2);
        assert_eq!(s.tokens, 2.0 * 24.0);
        assert!(s.grad_norm > 1e-3, "clipping had something to clip: {s:?}");
        assert!((s.ratio_mean - 1.0).abs() < 1e-6, "{s:?}");
        assert_eq!(s.kl, 0.0);
        let moved = trainable(model.var_store())
            .into_iter()
            .zip(&before)
            .filter(|((_, a), b)| !a.equal(b))
            .count();
        assert_eq!(moved, before.len(), "every variable moves");
    }
}
