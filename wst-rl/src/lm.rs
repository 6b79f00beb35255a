//! [`LmPolicy`]: the [`Policy`] of a decoder language model (the real teacher).
//!
//! Prompts are rendered with the model's chat template; sampling runs the batched KV-cache
//! [`wst_models::Generator`] with a ChaCha generator seeded by the trainer's per-step seed (so a
//! run and its resume draw the same instructions); the scorer computes log-probabilities of the
//! completion positions only, the output head applied to a chunk of positions at a time.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};
use wst_core::{ChatPrompt, FinishReason};
use wst_models::{DecoderLm, LoadedModel, WeightStore};

use crate::policy::{Draw, Policy, PolicySample, TokenBatch};
use crate::{Error, Result};

/// A decoder LM as the GRPO teacher.
#[derive(Debug)]
pub struct LmPolicy {
    model: LoadedModel,
    sample_batch: usize,
}

impl LmPolicy {
    /// The policy of `model`: the optimiser trains the trainable variables of its store (every
    /// weight, or only LoRA adapters after [`DecoderLm::add_lora`]).
    pub fn new(model: LoadedModel) -> Self {
        LmPolicy {
            model,
            sample_batch: 64,
        }
    }

    /// A frozen copy for the KL reference: same weights, no gradients.
    pub fn frozen(mut model: LoadedModel) -> Self {
        model.model.var_store_mut().freeze();
        Self::new(model)
    }

    /// Sequences sampled together (at least 1; default 64).
    pub fn with_sample_batch(mut self, rows: usize) -> Self {
        self.sample_batch = rows.max(1);
        self
    }

    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Gives the model back (e.g. to serve it as an instruction writer after training).
    pub fn into_model(self) -> LoadedModel {
        self.model
    }

    /// Overwrites the weights with those of a checkpoint's `model.safetensors` (as written by
    /// the trainer): every variable must be present with its shape.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        load_weights(self.model.model.var_store_mut(), path).map(|_| ())
    }
}

/// Copies the tensors of a safetensors file into `vs` through [`WeightStore`]: every variable
/// must be present with its shape (all missing names are reported at once), the file's kind is
/// converted to the variable's (an f32 checkpoint loads into a bf16 model), and tensors the model
/// does not use are returned (and logged).
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<Vec<String>> {
    if !path.is_file() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            reason: "no such weights file (a checkpoint folder holds model.safetensors)".into(),
        });
    }
    let mut store = WeightStore::open_files(&[path.to_path_buf()])?;
    store.load_into(vs)?;
    let unused = store.unused();
    if !unused.is_empty() {
        tracing::warn!(file = %path.display(), ?unused, "tensors not used by the model");
    }
    Ok(unused)
}

/// The body of a decoder for a batch: final-normed hidden states at the completion-predicting
/// positions, `[N, completion_len, H]` (plain causal attention when no row is padded; prompt
/// tokens the batch shares, [`TokenBatch::shared`], run once).
pub fn decoder_features(model: &DecoderLm, batch: &TokenBatch) -> Result<Tensor> {
    let (h, prompt_len) = match &batch.shared {
        Some(s) => (
            model.hidden_states_after(
                &s.prefixes,
                s.prefix_mask.as_ref(),
                s.source.as_ref(),
                &s.ids,
                Some(&s.attention_mask),
            )?,
            s.prompt_len,
        ),
        None => {
            let mask = batch.padded.then_some(&batch.attention_mask);
            (model.hidden_states(&batch.ids, mask)?, batch.prompt_len)
        }
    };
    Ok(h.narrow(1, prompt_len as i64 - 1, batch.completion_len as i64))
}

impl Policy for LmPolicy {
    fn device(&self) -> Device {
        self.model.model.device()
    }

    fn pad_id(&self) -> i64 {
        i64::from(self.model.pad_token_id)
    }

    fn vars(&self) -> &nn::VarStore {
        self.model.model.var_store()
    }

    fn vars_mut(&mut self) -> &mut nn::VarStore {
        self.model.model.var_store_mut()
    }

    fn encode_prompt(&self, prompt: &ChatPrompt) -> Result<Vec<i64>> {
        let ids = self.model.encode_prompt(prompt)?;
        Ok(ids.into_iter().map(i64::from).collect())
    }

    fn sample(&mut self, prompts: &[Vec<i64>], draw: Draw<'_>) -> Result<Vec<Vec<PolicySample>>> {
        let Draw { n, params, seed } = draw;
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(prompts.len() * n);
        for (i, p) in prompts.iter().enumerate() {
            let ids: Vec<u32> = p
                .iter()
                .map(|&t| u32::try_from(t))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| Error::Contract(format!("prompt {i} has a negative token id")))?;
            rows.extend(std::iter::repeat_n(ids, n));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let generator = self.model.generator();
        let mut flat = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.sample_batch) {
            let gens = generator.generate_with_rng(chunk, params, &mut rng)?;
            flat.extend(gens.into_iter().map(|g| PolicySample {
                tokens: g.token_ids.iter().map(|&t| i64::from(t)).collect(),
                text: g.text.trim().to_string(),
                logprobs: g.logprobs,
                truncated: g.finish_reason == FinishReason::Length,
            }));
        }
        let mut out = Vec::with_capacity(prompts.len());
        let mut it = flat.into_iter();
        for _ in prompts {
            out.push(it.by_ref().take(n).collect());
        }
        Ok(out)
    }

    fn logits(&self, batch: &TokenBatch) -> Result<Tensor> {
        Ok(self
            .model
            .model
            .forward(&batch.ids, Some(&batch.attention_mask))?)
    }

    fn completion_features(&self, batch: &TokenBatch) -> Result<Tensor> {
        decoder_features(&self.model.model, batch)
    }

    fn head_logits(&self, features: &Tensor, temperature: f64) -> Result<Tensor> {
        Ok(self.model.model.head_logits_at(features, temperature)?)
    }

    fn head_logprobs(&self, features: &Tensor, targets: &Tensor, temp: f64) -> Result<Tensor> {
        Ok(self.model.model.head_logprobs_at(features, targets, temp)?)
    }
}
