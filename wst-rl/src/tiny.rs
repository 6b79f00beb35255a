//! A tiny word-level policy for tests and benchmarks: an embedding, a causal running mean and a
//! two-layer MLP head. It implements [`Policy`] exactly as a decoder-LM adapter would, so the
//! trainer can be tested, resumed and benchmarked without a real model.

use std::collections::HashMap;

use tch::{nn, nn::Module, Device, Kind, Tensor};
use wst_core::{splitmix64, ChatPrompt, SamplingParams};

#[cfg(test)]
use crate::policy::completion_logprobs;
use crate::policy::{Draw, Policy, PolicySample, TokenBatch};
use crate::Result;

/// Padding token (never sampled).
pub const PAD: i64 = 0;
/// End-of-sequence token.
pub const EOS: i64 = 1;
/// Unknown word (never sampled).
pub const UNK: i64 = 2;
const FIRST_WORD: i64 = 3;

/// Shape and seed of a [`TinyPolicy`].
#[derive(Debug, Clone)]
pub struct TinyConfig {
    /// The words the policy can write (token ids from 3 on).
    pub words: Vec<String>,
    /// Embedding width.
    pub dim: i64,
    /// Hidden width of the MLP.
    pub hidden: i64,
    /// Positions with their own embedding (later positions share the last one).
    pub max_positions: i64,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Device.
    pub device: Device,
}

impl TinyConfig {
    /// A small configuration over `words` on the CPU.
    pub fn new(words: &[&str], seed: u64) -> Self {
        TinyConfig {
            words: words.iter().map(|w| w.to_string()).collect(),
            dim: 16,
            hidden: 32,
            max_positions: 64,
            seed,
            device: Device::Cpu,
        }
    }
}

/// The tiny policy (random init, seeded).
#[derive(Debug)]
pub struct TinyPolicy {
    vs: nn::VarStore,
    emb: nn::Embedding,
    pos: nn::Embedding,
    l1: nn::Linear,
    l2: nn::Linear,
    words: Vec<String>,
    index: HashMap<String, i64>,
    banned: Tensor,
    max_positions: i64,
}

impl TinyPolicy {
    /// Builds the policy with weights drawn from `config.seed` (by its own generator, not
    /// libtorch's global one, so policies built on concurrent threads are reproducible).
    pub fn new(config: &TinyConfig) -> Self {
        let vs = nn::VarStore::new(config.device);
        let root = vs.root();
        let vocab = FIRST_WORD + config.words.len() as i64;
        let emb = nn::embedding(&root / "emb", vocab, config.dim, Default::default());
        let pos = nn::embedding(
            &root / "pos",
            config.max_positions,
            config.dim,
            Default::default(),
        );
        let l1 = nn::linear(
            &root / "l1",
            2 * config.dim,
            config.hidden,
            Default::default(),
        );
        let l2 = nn::linear(&root / "l2", config.hidden, vocab, Default::default());
        let mut banned = vec![0f32; vocab as usize];
        banned[PAD as usize] = -1e9;
        banned[UNK as usize] = -1e9;
        let index = config
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_lowercase(), FIRST_WORD + i as i64))
            .collect();
        let mut state = config.seed;
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (_, mut v) in vars {
                let size = v.size();
                let fan_in = if size.len() == 2 { size[1] } else { size[0] };
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                let vals: Vec<f32> = (0..v.numel())
                    .map(|_| ((2.0 * uniform(&mut state) - 1.0) * bound) as f32)
                    .collect();
                v.copy_(&Tensor::from_slice(&vals).view(size.as_slice()));
            }
        });
        TinyPolicy {
            emb,
            pos,
            l1,
            l2,
            words: config.words.clone(),
            index,
            banned: Tensor::from_slice(&banned).to_device(config.device),
            max_positions: config.max_positions,
            vs,
        }
    }

    /// The text of token ids (words joined by spaces; special tokens left out).
    pub fn decode(&self, ids: &[i64]) -> String {
        ids.iter()
            .filter(|&&t| t >= FIRST_WORD)
            .filter_map(|&t| self.words.get((t - FIRST_WORD) as usize))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Token id of a word, if it is in the vocabulary.
    pub fn token(&self, word: &str) -> Option<i64> {
        self.index.get(&word.to_lowercase()).copied()
    }

    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        self.head(&self.hidden(ids, mask))
    }

    fn head(&self, h: &Tensor) -> Tensor {
        self.l2.forward(h) + &self.banned
    }

    fn hidden(&self, ids: &Tensor, mask: &Tensor) -> Tensor {
        let m = mask.to_kind(Kind::Float).unsqueeze(-1);
        let pos_ids = (mask.cumsum(1, Kind::Int64) - 1).clamp(0, self.max_positions - 1);
        let x = (self.emb.forward(ids) + self.pos.forward(&pos_ids)) * &m;
        let count = m.cumsum(1, Kind::Float).clamp_min(1.0);
        let ctx = x.cumsum(1, Kind::Float) / count;
        self.l1.forward(&Tensor::cat(&[&x, &ctx], -1)).tanh()
    }
}

/// A uniform draw in [0, 1) from a splitmix64 state.
fn uniform(state: &mut u64) -> f64 {
    (splitmix64(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// Draws one index from `logits` with temperature, top-k and top-p; returns it and its log-prob
/// under the distribution it was drawn from.
pub(crate) fn sample_logits(
    logits: &[f32],
    params: &SamplingParams,
    state: &mut u64,
) -> (usize, f32) {
    if params.is_greedy() {
        let (i, _) = logits
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |a, (i, &v)| if v > a.1 { (i, v) } else { a },
            );
        return (i, 0.0);
    }
    let t = params.temperature as f64;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i, ((v as f64 - max) / t).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if params.top_k > 0 && params.top_k < probs.len() {
        probs.truncate(params.top_k);
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = 0;
        for p in &probs {
            acc += p.1 / total;
            keep += 1;
            if acc >= params.top_p as f64 {
                break;
            }
        }
        probs.truncate(keep.max(1));
    }
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let u = uniform(state) * total;
    let mut acc = 0.0;
    for &(i, p) in &probs {
        acc += p;
        if u < acc {
            return (i, (p / total).ln() as f32);
        }
    }
    let (i, p) = probs[probs.len() - 1];
    (i, (p / total).ln() as f32)
}

impl Policy for TinyPolicy {
    fn device(&self) -> Device {
        self.vs.device()
    }

    fn pad_id(&self) -> i64 {
        PAD
    }

    fn vars(&self) -> &nn::VarStore {
        &self.vs
    }

    fn vars_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    fn encode_prompt(&self, prompt: &ChatPrompt) -> Result<Vec<i64>> {
        let mut ids = vec![EOS];
        let text = format!("{} {}", prompt.system.as_deref().unwrap_or(""), prompt.user);
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if !w.is_empty() {
                ids.push(self.token(w).unwrap_or(UNK));
            }
        }
        Ok(ids)
    }

    fn sample(&mut self, prompts: &[Vec<i64>], draw: Draw<'_>) -> Result<Vec<Vec<PolicySample>>> {
        let Draw { n, params, seed } = draw;
        let _guard = tch::no_grad_guard();
        let rows: Vec<&[i64]> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.as_slice(), n))
            .collect();
        let mut gen: Vec<Vec<i64>> = vec![Vec::new(); rows.len()];
        let mut lps: Vec<Vec<f32>> = vec![Vec::new(); rows.len()];
        let mut done = vec![false; rows.len()];
        let mut states: Vec<u64> = (0..rows.len() as u64)
            .map(|r| seed ^ r.wrapping_mul(0xD1B5_4A32_D192_ED03))
            .collect();
        let vocab = self.banned.size()[0] as usize;
        for _ in 0..params.max_new_tokens {
            if done.iter().all(|d| *d) {
                break;
            }
            let pairs: Vec<(&[i64], &[i64])> = rows
                .iter()
                .zip(&gen)
                .map(|(p, g)| (*p, g.as_slice()))
                .collect();
            let batch = TokenBatch::new(&pairs, PAD, self.device())?;
            let h = self.hidden(&batch.ids, &batch.attention_mask);
            let cur = gen.iter().map(Vec::len).max().unwrap_or(0);
            let col = (batch.prompt_len + cur) as i64 - 1;
            let last = self
                .head(&h.select(1, col))
                .to_kind(Kind::Float)
                .to_device(Device::Cpu);
            let flat = Vec::<f32>::try_from(last.flatten(0, -1))?;
            for r in 0..rows.len() {
                if done[r] {
                    continue;
                }
                let row = &flat[r * vocab..(r + 1) * vocab];
                let (tok, lp) = sample_logits(row, params, &mut states[r]);
                gen[r].push(tok as i64);
                lps[r].push(lp);
                done[r] = tok as i64 == EOS;
            }
        }
        let mut out = Vec::with_capacity(prompts.len());
        let mut it = gen.into_iter().zip(lps).zip(done);
        for _ in 0..prompts.len() {
            let mut group = Vec::with_capacity(n);
            for ((tokens, logprobs), finished) in it.by_ref().take(n) {
                group.push(PolicySample {
                    text: self.decode(&tokens),
                    tokens,
                    logprobs,
                    truncated: !finished,
                });
            }
            out.push(group);
        }
        Ok(out)
    }

    fn logits(&self, batch: &TokenBatch) -> Result<Tensor> {
        Ok(self.forward(&batch.ids, &batch.attention_mask))
    }

    fn completion_features(&self, batch: &TokenBatch) -> Result<Tensor> {
        // The head only runs at the positions that predict completion tokens.
        Ok(self.hidden(&batch.ids, &batch.attention_mask).narrow(
            1,
            batch.prompt_len as i64 - 1,
            batch.completion_len as i64,
        ))
    }

    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor> {
        Ok(self.head(features).to_kind(Kind::Float) / temperature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_logprobs_match_the_full_logits_and_sampling_is_seeded() {
        let mut p = TinyPolicy::new(&TinyConfig::new(&["a", "b", "c"], 4));
        let prompt = p
            .encode_prompt(&ChatPrompt {
                system: None,
                user: "a b".into(),
            })
            .unwrap();
        let params = SamplingParams {
            max_new_tokens: 5,
            ..SamplingParams::default()
        };
        let draw = Draw {
            n: 3,
            params: &params,
            seed: 9,
        };
        let s1 = p.sample(std::slice::from_ref(&prompt), draw).unwrap();
        let s2 = p.sample(std::slice::from_ref(&prompt), draw).unwrap();
        assert_eq!(s1, s2);
        let pairs: Vec<(&[i64], &[i64])> = s1[0]
            .iter()
            .map(|s| (prompt.as_slice(), s.tokens.as_slice()))
            .collect();
        let b = TokenBatch::new(&pairs, PAD, Device::Cpu).unwrap();
        let fast = p.token_logprobs(&b).unwrap();
        let full = completion_logprobs(&p.logits(&b).unwrap(), &b);
        let diff = ((fast - &full) * &b.completion_mask)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
        // At temperature 1 the sampling log-probs are the model's.
        let lp = Vec::<f32>::try_from(full.get(0)).unwrap();
        for (j, &x) in s1[0][0].logprobs.iter().enumerate() {
            assert!((x - lp[j]).abs() < 1e-4, "{x} vs {}", lp[j]);
        }
    }
}
