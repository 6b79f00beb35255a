//! Batched sampling with a preallocated KV cache.
//!
//! Prompts of different lengths are left-padded into one batch; position ids and the key mask
//! make every row compute what it would alone. After one forward over the prompts, each step
//! runs one token per row through the static-shape decode step ([`DecoderLm::decode_step`]:
//! the whole cache attended under a mask, the write slot in a device tensor), samples on the
//! device (argmax, or inverse-CDF sampling after temperature, top-k and top-p, with uniforms
//! drawn up front from a seeded ChaCha generator so a seed fixes the output), and writes the
//! chosen ids into device buffers that feed the next step. The host reads those buffers (for
//! end tokens and stop strings) every step on the CPU and every few steps on CUDA, where each
//! read waits for the GPU. Tokens a row sampled after it finished are dropped.
//!
//! On CUDA the step (forward, sampling, buffer updates) is captured once as a CUDA graph after
//! two eager warm-up steps and replayed for the rest ([`crate::CudaGraph`]); that removes the
//! launch overhead of a few hundred small kernels per token. `WST_CUDA_GRAPH=0` or
//! [`Generator::cuda_graph`]`(false)` turns it off; the results are the same either way.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};
use wst_core::{FinishReason, SamplingParams};

use crate::cuda_graph::{cuda_graphs_available, cuda_graphs_enabled_by_env, CudaGraph};
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

/// Common leading prompt tokens below this count are prefilled with each row.
const MIN_SHARED_PREFILL: usize = 4;

/// How many leading tokens all `rows` share, each row keeping at least its last token (whose
/// output is still to compute): 0 for no rows or an empty one.
pub fn shared_prefix_len<T: PartialEq, R: AsRef<[T]>>(rows: &[R]) -> usize {
    let Some((first, rest)) = rows.split_first() else {
        return 0;
    };
    let first = first.as_ref();
    rest.iter().fold(first.len().saturating_sub(1), |l, row| {
        let row = row.as_ref();
        first[..l]
            .iter()
            .zip(row)
            .take_while(|(a, b)| a == b)
            .count()
            .min(row.len().saturating_sub(1))
    })
}

/// The distinct rows of `rows` in order of first appearance, and for each row the index of its
/// distinct row (prompts that several samples continue run once).
pub fn distinct_rows<T: Eq + std::hash::Hash, R: AsRef<[T]>>(rows: &[R]) -> (Vec<&[T]>, Vec<i64>) {
    let mut distinct: Vec<&[T]> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let source = rows
        .iter()
        .map(|r| {
            *index.entry(r.as_ref()).or_insert_with(|| {
                distinct.push(r.as_ref());
                distinct.len() as i64 - 1
            })
        })
        .collect();
    (distinct, source)
}

/// Samples continuations from a model.
#[derive(Debug, Clone)]
pub struct Generator<'a> {
    model: &'a DecoderLm,
    tokenizer: Option<&'a Tokenizer>,
    eos_ids: Vec<u32>,
    pad_id: u32,
    read_every: Option<usize>,
    cuda_graph: bool,
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
            tokenizer: Some(tokenizer),
            eos_ids: eos_ids.to_vec(),
            pad_id,
            read_every: None,
            cuda_graph: true,
        }
    }

    /// A generator of token ids only (benchmarks, models without a tokenizer): the
    /// generations' `text` is empty and stop strings are an error.
    pub fn without_tokenizer(model: &'a DecoderLm, eos_ids: &[u32], pad_id: u32) -> Self {
        Generator {
            model,
            tokenizer: None,
            eos_ids: eos_ids.to_vec(),
            pad_id,
            read_every: None,
            cuda_graph: true,
        }
    }

    /// Whether decoding on CUDA may capture and replay the step as a CUDA graph (default:
    /// yes, unless the environment variable `WST_CUDA_GRAPH` is `0`). No effect on the CPU.
    pub fn cuda_graph(mut self, enabled: bool) -> Self {
        self.cuda_graph = enabled;
        self
    }

    /// True when a generation of `max_new` tokens on the model's device would use a CUDA
    /// graph.
    pub fn uses_cuda_graph(&self, max_new: usize) -> bool {
        self.model.device().is_cuda()
            && self.cuda_graph
            && cuda_graphs_enabled_by_env()
            && cuda_graphs_available()
            && max_new >= GRAPH_WARMUP_STEPS + 3
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
        self.check(prompts, params)?;
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        // All uniforms at once, drawn before any device work; greedy decoding draws none.
        let n = params.max_new_tokens * prompts.len();
        let uniforms = (!params.is_greedy()).then(|| (0..n).map(|_| rng.gen::<f32>()).collect());
        tch::no_grad(|| self.run(prompts, params, uniforms))
    }

    /// Samples a continuation of each prompt, row `i` drawing its randomness from `rngs[i]`
    /// alone, so what a row samples does not depend on the rows batched with it (a server
    /// batches unrelated requests, each with its own seed). `params.seed` is ignored.
    pub fn generate_with_row_rngs<R: Rng>(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        rngs: &mut [R],
    ) -> Result<Vec<Generation>> {
        if rngs.len() != prompts.len() {
            return Err(Error::Invalid(format!(
                "{} random generators for {} prompts",
                rngs.len(),
                prompts.len()
            )));
        }
        self.check(prompts, params)?;
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let (b, max_new) = (prompts.len(), params.max_new_tokens);
        // The step-major layout of `generate_with_rng`: uniform `t * b + row`.
        let uniforms = (!params.is_greedy()).then(|| {
            let mut u = vec![0f32; max_new * b];
            for (row, rng) in rngs.iter_mut().enumerate() {
                for t in 0..max_new {
                    u[t * b + row] = rng.gen::<f32>();
                }
            }
            u
        });
        tch::no_grad(|| self.run(prompts, params, uniforms))
    }

    /// The checks shared by the entry points (an empty batch passes).
    fn check(&self, prompts: &[Vec<u32>], params: &SamplingParams) -> Result<()> {
        let problems = params.problems("sampling");
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("; ")));
        }
        if self.tokenizer.is_none() && !params.stop.is_empty() {
            return Err(Error::Invalid(
                "stop strings need a tokenizer (this generator has none)".into(),
            ));
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
        Ok(())
    }

    /// `uniforms`: `[max_new, B]` step-major draws in [0, 1), `None` when greedy.
    fn run(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
        uniforms: Option<Vec<f32>>,
    ) -> Result<Vec<Generation>> {
        let device = self.model.device();
        let b = prompts.len();
        let max_new = params.max_new_tokens;
        // The prompt forward runs once per distinct prompt (the teacher's samples of one query,
        // a student's replies to one request), its cache rows copied to the rows that share it;
        // and the distinct prompts' common start (a system message) runs once for all of them
        // (batch 1), each prompt's remainder after it, left-padded.
        let (distinct, source) = distinct_rows(prompts);
        let u = distinct.len();
        let shared = match shared_prefix_len(&distinct) {
            l if u > 1 && l >= MIN_SHARED_PREFILL => l,
            _ => 0,
        };
        let full = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let len = full - shared;
        let mut ids = vec![i64::from(self.pad_id); u * len];
        let mut mask = vec![0i64; u * len];
        for (row, p) in distinct.iter().enumerate() {
            let p = &p[shared..];
            let start = row * len + len - p.len();
            for (j, &t) in p.iter().enumerate() {
                ids[start + j] = i64::from(t);
                mask[start + j] = 1;
            }
        }
        // On CUDA with graphs, everything (prompt forward included) runs on the graph's
        // side stream; dropping the graph restores the stream.
        let mut graph = if self.uses_cuda_graph(max_new) {
            match CudaGraph::new(device).and_then(|mut g| g.enter_side_stream().map(|()| g)) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "CUDA graph unavailable, decoding eagerly");
                    None
                }
            }
        } else {
            None
        };

        let shape = [u as i64, len as i64];
        let ids = Tensor::f_from_slice(&ids)?.view(shape).to_device(device);
        let mask = Tensor::f_from_slice(&mask)?.view(shape).to_device(device);
        // Capacity rounded up to a multiple of 16: aligned rows for the attention kernels.
        let capacity = (full + max_new).div_ceil(16) * 16;
        let mut cache = KvCache::new(self.model, u as i64, capacity as i64)?;
        if shared > 0 {
            let prefix: Vec<i64> = distinct[0][..shared]
                .iter()
                .map(|&t| i64::from(t))
                .collect();
            let prefix = Tensor::f_from_slice(&prefix)?.view([1, shared as i64]);
            self.model.prefill_shared(&prefix, &mut cache)?;
        }
        let mut logits = self
            .model
            .last_logits_cached(&ids, Some(&mask), &mut cache)?;
        if u < b {
            let source = Tensor::f_from_slice(&source)?.to_device(device);
            cache.keep_rows(&source);
            logits = logits.index_select(0, &source);
        }
        let mut bufs = DecodeBuffers::new(b as i64, max_new as i64, uniforms.as_deref(), device)?;
        bufs.emit(&logits, params)?;
        self.model.prepare_static(&mut cache);

        let max_stop_chars = params
            .stop
            .iter()
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0);
        let mut tokens: Vec<Vec<u32>> = vec![Vec::with_capacity(max_new); b];
        let mut logprobs: Vec<Vec<f32>> = vec![Vec::with_capacity(max_new); b];
        let mut finished: Vec<Option<FinishReason>> = vec![None; b];
        // The host reads the sampled ids every `check_every` steps (every step on the CPU,
        // where reading costs nothing).
        let check_every = self.read_every.unwrap_or(if device.is_cuda() {
            CUDA_CHECK_EVERY
        } else {
            1
        });
        let mut done = 1; // steps whose tokens are in the buffers
        let mut read = 0; // steps the host has read

        // The prompts' indices of the batch's rows: on the CPU, rows that finished leave the
        // batch once enough have (`COMPACT_SHARE`), so they cost no more decoding steps.
        let mut rows: Vec<usize> = (0..b).collect();
        let compacts = device == Device::Cpu && graph.is_none();
        loop {
            if done - read >= check_every || done == max_new {
                let n = done - read;
                // Steps `read..done` of a buffer, on the host, row after row.
                let unread = |buf: &Tensor| {
                    buf.narrow(1, read as i64, n as i64)
                        .to_device(Device::Cpu)
                        .flatten(0, -1)
                };
                let ids = Vec::<i64>::try_from(unread(&bufs.ids))?;
                let lps = Vec::<f32>::try_from(unread(&bufs.logprobs))?;
                for (i, &row) in rows.iter().enumerate() {
                    for j in 0..n {
                        if finished[row].is_some() {
                            break;
                        }
                        let t = ids[i * n + j] as u32;
                        tokens[row].push(t);
                        logprobs[row].push(lps[i * n + j]);
                        let stopped = self.eos_ids.contains(&t)
                            || (max_stop_chars > 0
                                && self.hits_stop(&tokens[row], params, max_stop_chars)?);
                        if stopped {
                            finished[row] = Some(FinishReason::Stop);
                        } else if read + j + 1 == max_new {
                            finished[row] = Some(FinishReason::Length);
                        }
                    }
                }
                read = done;
                if finished.iter().all(Option::is_some) || done == max_new {
                    break;
                }
                let open: Vec<i64> = (0..rows.len())
                    .filter(|&i| finished[rows[i]].is_none())
                    .map(|i| i as i64)
                    .collect();
                let gone = rows.len() - open.len();
                if compacts
                    && gone > 0
                    && gone * COMPACT_SHARE >= rows.len()
                    && max_new - done >= COMPACT_MIN_STEPS
                {
                    let keep = Tensor::f_from_slice(&open)?.to_device(device);
                    cache.keep_rows(&keep);
                    bufs.keep_rows(&keep);
                    rows = open.iter().map(|&i| rows[i as usize]).collect();
                }
            }
            // One more step: the next token of every row.
            let captured = match graph.as_mut() {
                Some(g) if !g.is_captured() && done > GRAPH_WARMUP_STEPS => Some(g.capture(|| {
                    let logits = self
                        .model
                        .decode_logits_static(&bufs.tokens, &mut cache, None);
                    bufs.emit(&logits, params)
                })),
                _ => None,
            };
            if let Some(Err(e)) = captured {
                tracing::warn!(error = %e, "CUDA graph capture failed, decoding eagerly");
                graph = None;
            }
            let replayed = match graph.as_ref() {
                Some(g) if g.is_captured() => {
                    g.replay()?;
                    true
                }
                _ => false,
            };
            if !replayed {
                // On the CPU the step attends over the filled slots only; CUDA keeps the
                // static shapes (the warm-up steps before a capture, and eager decoding, run
                // what the graph runs).
                let filled = (!device.is_cuda()).then(|| cache.len() + 1);
                let logits = self
                    .model
                    .decode_logits_static(&bufs.tokens, &mut cache, filled);
                bufs.emit(&logits, params)?;
            }
            cache.advance(1);
            done += 1;
        }
        if let Some(mut g) = graph {
            g.exit_side_stream()?;
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
                let mut text = match self.tokenizer {
                    Some(tok) => tok.decode(body, true)?,
                    None => String::new(),
                };
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
        let Some(tokenizer) = self.tokenizer else {
            return Ok(false);
        };
        let window = (max_chars + 8).min(tokens.len());
        let tail = tokenizer.decode(&tokens[tokens.len() - window..], false)?;
        Ok(params.stop.iter().any(|s| tail.contains(s.as_str())))
    }
}

/// Steps between reads of the sampled ids on CUDA (each read waits for the GPU).
const CUDA_CHECK_EVERY: usize = 8;

/// Finished rows leave a CPU batch once they are at least one in this many of its rows
/// (compacting copies the cache: worth it for a share of the rows, not for each one)...
const COMPACT_SHARE: usize = 8;

/// ...and at least this many decoding steps may remain.
const COMPACT_MIN_STEPS: usize = 4;

/// Eager decode steps on the graph's stream before the capture (cuBLAS workspaces and the
/// allocator's blocks for the step exist by then).
const GRAPH_WARMUP_STEPS: usize = 2;

/// The device buffers of a generation that one decode step reads and writes in place, so that
/// the step can be replayed from a CUDA graph.
struct DecodeBuffers {
    /// `[B]` i64: the last sampled token of each row (the next step's input).
    tokens: Tensor,
    /// `[B, max_new]` i64: sampled ids by step.
    ids: Tensor,
    /// `[B, max_new]` f32: their log-probs.
    logprobs: Tensor,
    /// `[1]` i64: the step the next sample is written to.
    step: Tensor,
    /// `[max_new, B]` f32 uniforms (None when greedy).
    uniforms: Option<Tensor>,
}

impl DecodeBuffers {
    fn new(b: i64, max_new: i64, uniforms: Option<&[f32]>, device: Device) -> Result<Self> {
        Ok(DecodeBuffers {
            tokens: Tensor::f_zeros([b], (Kind::Int64, device))?,
            ids: Tensor::f_zeros([b, max_new], (Kind::Int64, device))?,
            logprobs: Tensor::f_zeros([b, max_new], (Kind::Float, device))?,
            step: Tensor::f_zeros([1], (Kind::Int64, device))?,
            uniforms: match uniforms {
                Some(u) => Some(
                    Tensor::f_from_slice(u)?
                        .view([max_new, b])
                        .to_device(device),
                ),
                None => None,
            },
        })
    }

    /// Keeps the rows `keep` (indices, Int64) of every buffer, in that order.
    fn keep_rows(&mut self, keep: &Tensor) {
        self.tokens = self.tokens.index_select(0, keep);
        self.ids = self.ids.index_select(0, keep);
        self.logprobs = self.logprobs.index_select(0, keep);
        self.uniforms = self.uniforms.as_ref().map(|u| u.index_select(1, keep));
    }

    /// Samples from `logits` `[B, V]` with this step's uniforms, records the ids and
    /// log-probs at the current step, feeds the ids back as the next input, advances the step.
    fn emit(&mut self, logits: &Tensor, params: &SamplingParams) -> Result<()> {
        let b = self.tokens.size()[0];
        let u = self
            .uniforms
            .as_ref()
            .map(|u| u.index_select(0, &self.step).view([b]));
        let (next, lp) = sample(logits, params, u.as_ref())?;
        let _ = self.ids.index_copy_(1, &self.step, &next.view([b, 1]));
        let _ = self.logprobs.index_copy_(1, &self.step, &lp.view([b, 1]));
        self.tokens.copy_(&next);
        let _ = self.step.g_add_scalar_(1);
        Ok(())
    }
}

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
