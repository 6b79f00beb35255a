//! [`LmPolicy`]: the [`Policy`] of a decoder language model (the real teacher).
//!
//! Prompts are rendered with the model's chat template; sampling runs the batched KV-cache
//! [`wst_models::Generator`] with a ChaCha generator seeded by the trainer's per-step seed (so a
//! run and its resume draw the same instructions); the scorer computes log-probabilities of the
//! completion positions only, chunked over the vocabulary projection.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};
use wst_core::{ChatPrompt, FinishReason, SamplingParams};
use wst_models::LoadedModel;

use crate::policy::{Policy, PolicySample, TokenBatch};
use crate::{Error, Result};

/// Positions per chunk of the output projection in [`Policy::token_logprobs`].
const LOGPROB_CHUNK: i64 = 64;

/// A decoder LM as the GRPO teacher.
#[derive(Debug)]
pub struct LmPolicy {
    model: LoadedModel,
    sample_batch: usize,
}

impl LmPolicy {
    /// The policy of `model`; every weight is trainable.
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
        load_weights(self.model.model.var_store_mut(), path)
    }
}

/// Copies the tensors of a safetensors file into `vs` (names and shapes must match; the file's
/// dtype is converted to the store's).
pub fn load_weights(vs: &mut nn::VarStore, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(ckpt_err(
            path,
            "no such weights file (a checkpoint folder holds model.safetensors)".into(),
        ));
    }
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| ckpt_err(path, format!("unreadable safetensors: {e}")))?;
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    let mut vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !map.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ckpt_err(
            path,
            format!("tensors missing for this model: {}", missing.join(", ")),
        ));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in vars.iter_mut() {
            let src = &map[name];
            if src.size() != var.size() {
                return Err(ckpt_err(
                    path,
                    format!(
                        "tensor {name} has shape {:?}, the model expects {:?}",
                        src.size(),
                        var.size()
                    ),
                ));
            }
            var.f_copy_(src)
                .map_err(|e| ckpt_err(path, format!("{name}: {e}")))?;
        }
        Ok(())
    })
}

fn ckpt_err(path: &Path, reason: String) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason,
    }
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

    fn sample(
        &mut self,
        prompts: &[Vec<i64>],
        n: usize,
        params: &SamplingParams,
        seed: u64,
    ) -> Result<Vec<Vec<PolicySample>>> {
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

    fn token_logprobs(&self, batch: &TokenBatch) -> Result<Tensor> {
        Ok(self.model.model.token_logprobs_from(
            &batch.ids,
            Some(&batch.attention_mask),
            batch.prompt_len as i64 - 1,
            LOGPROB_CHUNK,
        )?)
    }
}
