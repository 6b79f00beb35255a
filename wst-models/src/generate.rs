//! Batched sampling with a preallocated KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; position ids and the key mask
//! make every row compute what it would alone. Each step runs one token per row through the
//! cache, samples on the device (argmax, or inverse-CDF sampling after temperature, top-k and
//! top-p, with uniforms drawn from a seeded ChaCha generator so a seed fixes the output) and
//! feeds the chosen ids straight back on the device; the host reads them (for end tokens and
//! stop strings) every step on the CPU and every few steps on CUDA, where each read waits for
//! the GPU. Tokens a row sampled after it finished are dropped.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};
use wst_core::{FinishReason, SamplingParams};

use crate::decoder::{DecoderLm, KvCache};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// One generated continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The sampled token ids, the end token included when one stopped generation (tokens
    /// after a stop string that ended generation are kept).
    pub token_ids: Vec<u32>,
    /// The decoded text without special tokens, cut before the first stop string.
    pub text: String,
    /// Log-probability of each sampled token under the model's distribution at the sampling
    /// temperature (temperature 1 for greedy), before top-k/top-p truncation.
    pub logprobs: Vec<f32>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// Samples continuations from a model.
#[derive(Debug, Clone)]
pub struct Generator<'a> {
    model: &'a DecoderLm,
    tokenizer: &'a Tokenizer,
    eos_ids: Vec<u32>,
    pad_id: u32,
    read_every: Option<usize>,
}

impl<'a> Generator<'a> {
    /// A generator that stops at any of `eos_ids` and pads with `pad_id`.
    pub fn new(
        model: &'a DecoderLm,
        tokenizer: &'a Tokenizer,
        eos_ids: &[u32],
        pad_id: u32,
    ) -> Self {
        Generator {
            model,
            tokenizer,
            eos_ids: eos_ids.to_vec(),
            pad_id,
            read_every: None,
        }
    }

    /// Steps between reads of the sampled ids by the host (default: every step on the CPU,
    /// every 8 on CUDA). Results do not depend on it; larger values sync less and may run a
    /// few steps past the point where every row has finished.
    pub fn read_every(mut self, steps: usize) -> Self {
        self.read_every = Some(steps.max(1));
        self
    }

    /// Samples a continuation of each prompt; the generator is seeded from `params.seed`, or
    /// from the OS when it is `None`.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        let mut rng = match params.seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => ChaCha8Rng::from_entropy(),
        };
        self.generate_with_rng(prompts, params, &mut rng)
    }

    /// Samples a continuation of each prompt drawing randomness from `rng` (`params.seed` is
    /// ignored).
    pub fn generate_with_rng<R: Rng + ?Sized>(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        rng: &mut R,
    ) -> Result<Vec<Generation>> {
        let problems = params.problems("sampling");
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("; ")));
        }
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(i) = prompts.iter().position(Vec::is_empty) {
            return Err(Error::Invalid(format!("prompt {i} has no tokens")));
        }
        let vocab = self.model.config().vocab_size;
        if let Some(bad) = prompts.iter().flatten().find(|&&t| i64::from(t) >= vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the model's vocabulary of {vocab}"
            )));
        }
        tch::no_grad(|| self.run(prompts, params, rng))
    }

    fn run<R: Rng + ?Sized>(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        rng: &mut R,
    ) -> Result<Vec<Generation>> {
        let device = self.model.device();
        let b = prompts.len();
        let len = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let max_new = params.max_new_tokens;
        let mut ids = vec![i64::from(self.pad_id); b * len];
        let mut mask = vec![0i64; b * len];
        for (row, p) in prompts.iter().enumerate() {
            let start = row * len + len - p.len();
            for (j, &t) in p.iter().enumerate() {
                ids[start + j] = i64::from(t);
                mask[start + j] = 1;
            }
        }
        let shape = [b as i64, len as i64];
        let ids = Tensor::f_from_slice(&ids)?.view(shape).to_device(device);
        let mask = Tensor::f_from_slice(&mask)?.view(shape).to_device(device);
        let mut cache = KvCache::new(self.model, b as i64, (len + max_new) as i64)?;
        let mut logits = self
            .model
            .last_logits_cached(&ids, Some(&mask), &mut cache)?;

        let max_stop_chars = params
            .stop
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        let mut tokens: Vec<Vec<u32>> = vec![Vec::with_capacity(max_new); b];
        let mut logprobs: Vec<Vec<f32>> = vec![Vec::with_capacity(max_new); b];
        let mut finished: Vec<Option<FinishReason>> = vec![None; b];
        // All uniforms at once (one upload); greedy decoding draws none.
        let uniforms = if params.is_greedy() {
            None
        } else {
            let u: Vec<f32> = (0..max_new * b).map(|_| rng.gen::<f32>()).collect();
            Some(
                Tensor::f_from_slice(&u)?
                    .view([max_new as i64, b as i64])
                    .to_device(device),
            )
        };
        // Sampled ids stay on the device and feed the next step directly; the host reads them
        // every `check_every` steps (every step on the CPU, where reading costs nothing).
        let check_every = if device.is_cuda() {
            CUDA_CHECK_EVERY
        } else {
            1
        };
        let mut pending: Vec<(Tensor, Tensor)> = Vec::with_capacity(check_every);
        let mut step = 0;
        while step < max_new {
            let u = uniforms.as_ref().map(|u| u.get(step as i64));
            let (next, lp) = sample(&logits, params, u.as_ref())?;
            step += 1;
            if step < max_new {
                // Queue the next forward before reading anything back.
                logits = self
                    .model
                    .last_logits_cached(&next.unsqueeze(1), None, &mut cache)?;
            }
            pending.push((next, lp));
            if step % check_every != 0 && step < max_new {
                continue;
            }
            let first = step - pending.len();
            let ids: Vec<&Tensor> = pending.iter().map(|(t, _)| t).collect();
            let lps: Vec<&Tensor> = pending.iter().map(|(_, l)| l).collect();
            let n = pending.len();
            let ids =
                Vec::<i64>::try_from(Tensor::stack(&ids, 1).to_device(Device::Cpu).flatten(0, -1))?;
            let lps =
                Vec::<f32>::try_from(Tensor::stack(&lps, 1).to_device(Device::Cpu).flatten(0, -1))?;
            pending.clear();
            for row in 0..b {
                for j in 0..n {
                    if finished[row].is_some() {
                        break;
                    }
                    let t = ids[row * n + j] as u32;
                    tokens[row].push(t);
                    logprobs[row].push(lps[row * n + j]);
                    let stopped = self.eos_ids.contains(&t)
                        || (max_stop_chars > 0
                            && self.hits_stop(&tokens[row], params, max_stop_chars)?);
                    if stopped {
                        finished[row] = Some(FinishReason::Stop);
                    } else if first + j + 1 == max_new {
                        finished[row] = Some(FinishReason::Length);
                    }
                }
            }
            if finished.iter().all(Option::is_some) {
                break;
            }
        }

        tokens
            .into_iter()
            .zip(logprobs)
            .zip(finished)
            .map(|((token_ids, logprobs), reason)| {
                let body = match token_ids.last() {
                    Some(t) if self.eos_ids.contains(t) => &token_ids[..token_ids.len() - 1],
                    _ => &token_ids[..],
                };
                let mut text = self.tokenizer.decode(body, true)?;
                if let Some(cut) = first_stop(&text, &params.stop) {
                    text.truncate(cut);
                }
                Ok(Generation {
                    token_ids,
                    text,
                    logprobs,
                    finish_reason: reason.unwrap_or(FinishReason::Length),
                })
            })
            .collect()
    }

    /// True when the text of the last tokens contains a stop string.
    fn hits_stop(&self, tokens: &[u32], params: &SamplingParams, max_chars: usize) -> Result<bool> {
        let window = (max_chars + 8).min(tokens.len());
        let tail = self
            .tokenizer
            .decode(&tokens[tokens.len() - window..], false)?;
        Ok(params.stop.iter().any(|s| tail.contains(s.as_str())))
    }
}

/// Steps between reads of the sampled ids on CUDA (each read waits for the GPU).
const CUDA_CHECK_EVERY: usize = 8;

/// Byte offset of the earliest stop string in `text`.
fn first_stop(text: &str, stop: &[String]) -> Option<usize> {
    stop.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// Picks one token per row of `logits` `[B, V]`; returns the ids `[B]` and their log-probs
/// `[B]` (f32) under the temperature-scaled distribution. `uniforms` `[B]` holds one draw in
/// [0, 1) per row (not needed when greedy).
pub fn sample(
    logits: &Tensor,
    params: &SamplingParams,
    uniforms: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let logits = logits.to_kind(Kind::Float);
    let (b, v) = (logits.size()[0], logits.size()[1]);
    if params.is_greedy() {
        let next = logits.argmax(-1, false);
        let lp = logits
            .log_softmax(-1, Kind::Float)
            .gather(1, &next.unsqueeze(1), false)
            .squeeze_dim(1);
        return Ok((next, lp));
    }
    let scaled = &logits / f64::from(params.temperature);
    let logp = scaled.log_softmax(-1, Kind::Float);
    let mut filtered = scaled.shallow_clone();
    if params.top_k > 0 && (params.top_k as i64) < v {
        let (top, _) = scaled.topk(params.top_k as i64, -1, true, true);
        let kth = top.narrow(1, params.top_k as i64 - 1, 1);
        filtered = filtered.masked_fill(&scaled.lt_tensor(&kth), f64::NEG_INFINITY);
    }
    let u = uniforms
        .ok_or_else(|| Error::Invalid("sampling at temperature > 0 needs uniforms".into()))?
        .to_device(logits.device())
        .to_kind(Kind::Float)
        .view([b, 1]);
    let next = if params.top_p < 1.0 {
        let (sorted, order) = filtered.sort(-1, true);
        let probs = sorted.softmax(-1, Kind::Float);
        let before = probs.cumsum(-1, Kind::Float) - &probs;
        let drop = before.gt(f64::from(params.top_p));
        let kept = sorted
            .masked_fill(&drop, f64::NEG_INFINITY)
            .softmax(-1, Kind::Float);
        let j = inverse_cdf(&kept, &u, v);
        order.gather(1, &j.unsqueeze(1), false).squeeze_dim(1)
    } else {
        inverse_cdf(&filtered.softmax(-1, Kind::Float), &u, v)
    };
    let lp = logp.gather(1, &next.unsqueeze(1), false).squeeze_dim(1);
    Ok((next, lp))
}

/// Index of the first entry whose cumulative probability exceeds `u` (per row).
fn inverse_cdf(probs: &Tensor, u: &Tensor, v: i64) -> Tensor {
    let cdf = probs.cumsum(-1, Kind::Float);
    let total = cdf.narrow(1, v - 1, 1);
    let target = u * total;
    // The cdf is non-decreasing: the number of entries at or below the target is the first
    // index above it, and zero-probability entries (equal to their predecessor) are skipped.
    cdf.le_tensor(&target)
        .sum_dim_intlist(1, false, Kind::Int64)
        .clamp_max(v - 1)
}
