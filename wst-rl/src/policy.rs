//! The teacher as the trainer sees it: a sampler with per-token log-probabilities and a
//! differentiable scorer of given completions, over a `VarStore` of trainable weights.
//!
//! An adapter over a decoder LM implements [`Policy`] with its tokenizer and chat template:
//! `encode_prompt` renders the [`ChatPrompt`] (system + user message from
//! `wst_core::PromptTemplates::teacher`) with the model's chat template, adds the generation
//! prompt and tokenizes; `sample` runs batched KV-cache generation; `logits` is one forward pass
//! over a padded [`TokenBatch`]. The default [`Policy::token_logprobs`] turns those logits into the
//! log-probabilities of the completion tokens.

use tch::{nn, Device, Kind, Tensor};
use wst_core::{ChatPrompt, SamplingParams};

use crate::{Error, Result};

/// One sampled completion (an instruction) of the teacher.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PolicySample {
    /// Generated token ids without the prompt, ending with the end-of-sequence token when
    /// generation stopped on one (the loss scores it: stopping is learned too).
    pub tokens: Vec<i64>,
    /// The decoded text (special tokens left out).
    pub text: String,
    /// Log-probability of each generated token under the sampling distribution.
    pub logprobs: Vec<f32>,
    /// Generation stopped at `max_new_tokens` instead of an end-of-sequence token.
    pub truncated: bool,
}

/// How [`Policy::sample`] draws: `n` completions per prompt with `params` (whose
/// `max_new_tokens` is the length cap), from `seed`.
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// Completions per prompt.
    pub n: usize,
    /// The sampling parameters.
    pub params: &'a SamplingParams,
    /// The seed: the same prompts, parameters and seed give the same samples.
    pub seed: u64,
}

/// A padded batch of `prompt + completion` sequences.
///
/// Row `n` is laid out as `[pad.. prompt_n | completion_n ..pad]`: prompts are left-padded to
/// `prompt_len` columns, completions right-padded to `completion_len` columns. The completion
/// token at column `j` is `ids[n, prompt_len + j]`, predicted by the logits at
/// `prompt_len + j - 1`.
#[derive(Debug)]
pub struct TokenBatch {
    /// `[N, prompt_len + completion_len]` token ids (int64), pads set to the policy's pad id.
    pub ids: Tensor,
    /// `[N, prompt_len + completion_len]` 1 for real tokens, 0 for pads (int64).
    pub attention_mask: Tensor,
    /// `[N, completion_len]` 1 for completion tokens that count in the loss (float32).
    pub completion_mask: Tensor,
    /// Columns of the (left-padded) prompt part.
    pub prompt_len: usize,
    /// Columns of the (right-padded) completion part.
    pub completion_len: usize,
    /// Some row has a pad (else `attention_mask` is all ones and a model may run plain causal
    /// attention without it).
    pub padded: bool,
    /// Prompt tokens that several rows share, run once for them: the prompt of a query that
    /// a group of samples continues, or the opening every prompt has (a system message). A
    /// model may use it ([`wst_models::DecoderLm::hidden_states_after`]); `None` (nothing
    /// shared, or not enough to pay off) runs every row whole.
    pub shared: Option<SharedPrefix>,
}

/// Fewer common leading prompt tokens than this are not worth a separate forward pass.
pub const MIN_SHARED_PREFIX: usize = 4;

/// Prompt prefixes of a [`TokenBatch`] and its rows after them. A prefix is never a whole
/// prompt: each row keeps at least its last prompt token, whose output predicts the first
/// completion token.
#[derive(Debug)]
pub struct SharedPrefix {
    /// `[U, L]` the prefixes (left-padded when `prefix_mask` is set).
    pub prefixes: Tensor,
    /// `[U, L]` their padding mask (`None`: no pads).
    pub prefix_mask: Option<Tensor>,
    /// `[N]` the prefix each row continues (`None`: the one prefix, `U = 1`).
    pub source: Option<Tensor>,
    /// `[N, prompt_len + completion_len]` the rows after their prefix, laid out as
    /// [`TokenBatch::ids`] (prompt remainders left-padded, completions right-padded).
    pub ids: Tensor,
    /// The attention mask of `ids`.
    pub attention_mask: Tensor,
    /// Columns of the prompt remainders in `ids`.
    pub prompt_len: usize,
}

/// `(ids, mask, prompt columns, completion columns)` of `pairs` with each prompt's first
/// `skip[row]` tokens left out, prompts left-padded and completions right-padded to the
/// longest.
fn pack(
    pairs: &[(&[i64], &[i64])],
    skip: impl Fn(usize) -> usize,
    pad_id: i64,
) -> (Vec<i64>, Vec<i64>, usize, usize) {
    let rest = |row: usize| &pairs[row].0[skip(row)..];
    let p_len = (0..pairs.len()).map(|r| rest(r).len()).max().unwrap_or(0);
    let c_len = pairs.iter().map(|(_, c)| c.len()).max().unwrap_or(0).max(1);
    let width = p_len + c_len;
    let mut ids = vec![pad_id; pairs.len() * width];
    let mut att = vec![0i64; pairs.len() * width];
    for (row, (_, c)) in pairs.iter().enumerate() {
        let base = row * width;
        let p = rest(row);
        let off = p_len - p.len();
        for (i, &t) in p.iter().chain(c.iter()).enumerate() {
            ids[base + off + i] = t;
            att[base + off + i] = 1;
        }
    }
    (ids, att, p_len, c_len)
}

/// The cheaper way, if any beats running every row whole, to share prompt tokens among
/// `pairs`, counted in token positions: one forward per distinct prompt (less its last token),
/// or one forward of the prefix common to all prompts.
fn share(pairs: &[(&[i64], &[i64])], pad_id: i64, device: Device) -> Option<SharedPrefix> {
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let tensor = |v: &[i64], rows: usize| {
        Tensor::from_slice(v)
            .view([rows as i64, (v.len() / rows) as i64])
            .to_device(device)
    };
    let prompts: Vec<&[i64]> = pairs.iter().map(|(p, _)| *p).collect();
    let c_len = pairs.iter().map(|(_, c)| c.len()).max().unwrap_or(0).max(1);
    let p_len = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let whole = n * (p_len + c_len);
    let (distinct, source) = wst_models::distinct_rows(&prompts);
    let u = distinct.len();
    let by_prompt =
        (u < n && prompts.iter().all(|p| p.len() >= 2)).then(|| u * (p_len - 1) + n * (1 + c_len));
    let common = wst_models::shared_prefix_len(&prompts);
    let by_common = (common >= MIN_SHARED_PREFIX).then(|| common + n * (p_len - common + c_len));
    match (by_prompt, by_common) {
        (Some(g), c) if g < whole && c.is_none_or(|c| g <= c) => {
            let l = p_len - 1;
            let mut ids = vec![pad_id; u * l];
            let mut mask = vec![0i64; u * l];
            for (row, p) in distinct.iter().enumerate() {
                let p = &p[..p.len() - 1];
                let off = row * l + l - p.len();
                ids[off..off + p.len()].copy_from_slice(p);
                mask[off..off + p.len()].fill(1);
            }
            let padded = mask.contains(&0);
            let (rest, att, rp, _) = pack(pairs, |r| prompts[r].len() - 1, pad_id);
            Some(SharedPrefix {
                prefixes: tensor(&ids, u),
                prefix_mask: padded.then(|| tensor(&mask, u)),
                source: Some(Tensor::from_slice(&source).to_device(device)),
                ids: tensor(&rest, n),
                attention_mask: tensor(&att, n),
                prompt_len: rp,
            })
        }
        (_, Some(c)) if c < whole => {
            let (rest, att, rp, _) = pack(pairs, |_| common, pad_id);
            Some(SharedPrefix {
                prefixes: tensor(&prompts[0][..common], 1),
                prefix_mask: None,
                source: None,
                ids: tensor(&rest, n),
                attention_mask: tensor(&att, n),
                prompt_len: rp,
            })
        }
        _ => None,
    }
}

impl TokenBatch {
    /// Builds a batch from `(prompt, completion)` token pairs on `device`. Every prompt must be
    /// non-empty.
    pub fn new(pairs: &[(&[i64], &[i64])], pad_id: i64, device: Device) -> Result<Self> {
        if pairs.is_empty() {
            return Err(Error::Contract("TokenBatch::new: empty batch".into()));
        }
        if pairs.iter().any(|(p, _)| p.is_empty()) {
            return Err(Error::Contract(
                "TokenBatch::new: a prompt has no token".into(),
            ));
        }
        let (ids, att, p_len, c_len) = pack(pairs, |_| 0, pad_id);
        let n = pairs.len();
        let mut cmask = vec![0f32; n * c_len];
        for (row, (_, c)) in pairs.iter().enumerate() {
            cmask[row * c_len..row * c_len + c.len()].fill(1.0);
        }
        let shape = [n as i64, (p_len + c_len) as i64];
        let tensor = |v: &[i64]| Tensor::from_slice(v).view(shape).to_device(device);
        let shared = share(pairs, pad_id, device);
        Ok(TokenBatch {
            ids: tensor(&ids),
            attention_mask: tensor(&att),
            completion_mask: Tensor::from_slice(&cmask)
                .view([n as i64, c_len as i64])
                .to_device(device),
            prompt_len: p_len,
            completion_len: c_len,
            padded: att.contains(&0),
            shared,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.size()[0] as usize
    }

    /// True when the batch has no row (never, for a batch built by [`TokenBatch::new`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[N, completion_len]` the completion token ids.
    pub fn completion_ids(&self) -> Tensor {
        self.ids
            .narrow(1, self.prompt_len as i64, self.completion_len as i64)
    }
}

/// Log-probabilities `[N, completion_len]` of the completion tokens of `batch` from full-sequence
/// logits `[N, T, V]` (float32 result; pads give finite values masked by
/// `batch.completion_mask`).
pub fn completion_logprobs(logits: &Tensor, batch: &TokenBatch) -> Tensor {
    let p = batch.prompt_len as i64;
    let c = batch.completion_len as i64;
    let pred = logits.narrow(1, p - 1, c).to_kind(Kind::Float);
    let logp = pred.log_softmax(-1, Kind::Float);
    logp.gather(2, &batch.completion_ids().unsqueeze(-1), false)
        .squeeze_dim(-1)
}

/// Positions per chunk of the output head in the default [`Policy::token_logprobs_at`].
pub const HEAD_CHUNK: i64 = 64;

/// The teacher policy trained by GRPO.
///
/// Sampling is seeded: the same prompts, parameters and seed give the same samples, which makes
/// runs and resumes reproducible. A policy is a body ([`Policy::completion_features`]) and an
/// output head ([`Policy::head_logits`]), both differentiable with respect to the trainable
/// variables of [`Policy::vars`]: the update backpropagates the head one chunk of positions at a
/// time (`crate::update`). Log-probabilities are those of `softmax(logits / temperature)`, the
/// distribution instructions are sampled from (top-p and top-k are refused for the teacher by
/// the config's validation, so there is no truncation to account for).
pub trait Policy {
    /// Where the weights live.
    fn device(&self) -> Device;

    /// The token id used for padding in [`TokenBatch`].
    fn pad_id(&self) -> i64;

    /// The weights (trainable variables are what the optimiser updates).
    fn vars(&self) -> &nn::VarStore;

    /// The weights, mutably (loading a checkpoint).
    fn vars_mut(&mut self) -> &mut nn::VarStore;

    /// Renders a chat prompt with the model's chat template (generation prompt appended) and
    /// tokenizes it.
    fn encode_prompt(&self, prompt: &ChatPrompt) -> Result<Vec<i64>>;

    /// Draws `draw.n` completions for each prompt, returned grouped per prompt (outer: prompts,
    /// inner: `n` samples), with `draw.params.max_new_tokens` as the length cap. Runs without
    /// gradients.
    fn sample(&mut self, prompts: &[Vec<i64>], draw: Draw<'_>) -> Result<Vec<Vec<PolicySample>>>;

    /// Full-sequence logits `[N, T, V]` for a batch (with gradients when enabled).
    fn logits(&self, batch: &TokenBatch) -> Result<Tensor>;

    /// The body's output `[N, completion_len, H]` at the positions that predict the completion
    /// tokens (columns `prompt_len - 1 ..` of the batch), with gradients when enabled.
    fn completion_features(&self, batch: &TokenBatch) -> Result<Tensor>;

    /// `head(features) / temperature`: `features` `[N, n, H]` (a slice of
    /// [`Policy::completion_features`]); returns f32 logits `[N, n, V]`, differentiable with
    /// respect to the features and the head's weights.
    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor>;

    /// `log softmax(head(features) / temperature)[targets]`: `features` `[N, n, H]`, `targets`
    /// `[N, n]` Int64; returns `[N, n]` f32, differentiable like [`Policy::head_logits`].
    fn head_logprobs(
        &self,
        features: &Tensor,
        targets: &Tensor,
        temperature: f64,
    ) -> Result<Tensor> {
        let logits = self.head_logits(features, temperature)?;
        Ok(target_logprobs(&logits, targets))
    }

    /// Log-probabilities `[N, completion_len]` of the completion tokens at temperature 1 (with
    /// gradients when enabled).
    fn token_logprobs(&self, batch: &TokenBatch) -> Result<Tensor> {
        self.token_logprobs_at(batch, 1.0)
    }

    /// Log-probabilities `[N, completion_len]` of the completion tokens under
    /// `softmax(logits / temperature)`: the head over [`Policy::completion_features`],
    /// [`HEAD_CHUNK`] positions at a time, in one autograd graph.
    fn token_logprobs_at(&self, batch: &TokenBatch, temperature: f64) -> Result<Tensor> {
        let f = self.completion_features(batch)?;
        head_in_chunks(&f, &batch.completion_ids(), |f, t| {
            self.head_logprobs(f, t, temperature)
        })
    }
}

pub use wst_models::target_logprobs;

/// The entropy `[N, n]` of `softmax(logits)` at each position (`logits` `[N, n, V]` f32),
/// detached.
pub fn entropy(logits: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let lse = logits.logsumexp([-1], false);
        let p = logits.softmax(-1, Kind::Float);
        lse - (p * logits).sum_dim_intlist(-1, false, Kind::Float)
    })
}

/// `head` over `features` `[N, C, H]` and `targets` `[N, C]`, [`HEAD_CHUNK`] positions at a
/// time, concatenated into `[N, C]` (one autograd graph).
pub(crate) fn head_in_chunks(
    features: &Tensor,
    targets: &Tensor,
    head: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let c = targets.size()[1];
    let mut parts = Vec::new();
    let mut at = 0;
    while at < c {
        let n = HEAD_CHUNK.min(c - at);
        parts.push(head(&features.narrow(1, at, n), &targets.narrow(1, at, n))?);
        at += n;
    }
    Ok(Tensor::cat(&parts, 1))
}

/// Forwards every [`Policy`] method through a pointer type.
macro_rules! forward_policy {
    ($($ptr:ty),*) => {$(
        impl<T: Policy + ?Sized> Policy for $ptr {
            fn device(&self) -> Device {
                (**self).device()
            }
            fn pad_id(&self) -> i64 {
                (**self).pad_id()
            }
            fn vars(&self) -> &nn::VarStore {
                (**self).vars()
            }
            fn vars_mut(&mut self) -> &mut nn::VarStore {
                (**self).vars_mut()
            }
            fn encode_prompt(&self, prompt: &ChatPrompt) -> Result<Vec<i64>> {
                (**self).encode_prompt(prompt)
            }
            fn sample(
                &mut self,
                prompts: &[Vec<i64>],
                draw: Draw<'_>,
            ) -> Result<Vec<Vec<PolicySample>>> {
                (**self).sample(prompts, draw)
            }
            fn logits(&self, batch: &TokenBatch) -> Result<Tensor> {
                (**self).logits(batch)
            }
            fn token_logprobs(&self, batch: &TokenBatch) -> Result<Tensor> {
                (**self).token_logprobs(batch)
            }
            fn completion_features(&self, batch: &TokenBatch) -> Result<Tensor> {
                (**self).completion_features(batch)
            }
            fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor> {
                (**self).head_logits(features, temperature)
            }
            fn head_logprobs(&self, features: &Tensor, targets: &Tensor, t: f64) -> Result<Tensor> {
                (**self).head_logprobs(features, targets, t)
            }
            fn token_logprobs_at(&self, batch: &TokenBatch, temperature: f64) -> Result<Tensor> {
                (**self).token_logprobs_at(batch, temperature)
            }
        }
    )*};
}

forward_policy!(Box<T>, &mut T);
