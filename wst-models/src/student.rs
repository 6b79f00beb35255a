//! [`LocalStudent`]: the [`Student`] seam backed by a local [`LoadedModel`], batched.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wst_core::{
    Completion, PromptTemplates, SamplingParams, Student, StudentReply, StudentRequest,
};

use crate::loader::LoadedModel;

/// A student that runs a local model: each request's prompt is rendered by the student
/// templates and the model's chat template, repeated `k` times, and sampled in batches.
#[derive(Debug)]
pub struct LocalStudent {
    model: LoadedModel,
    templates: PromptTemplates,
    batch_size: usize,
    rng: ChaCha8Rng,
}

impl LocalStudent {
    /// A student over `model` with prompts from `templates`; batches of 32 sequences, seed 0
    /// for calls whose sampling parameters have no seed.
    pub fn new(model: LoadedModel, templates: PromptTemplates) -> Self {
        LocalStudent {
            model,
            templates,
            batch_size: 32,
            rng: ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// Sequences sampled together (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Seeds the generator used when the sampling parameters carry no seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    /// The model.
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Token ids of the chat-formatted prompt of one request.
    pub fn prompt_ids(&self, request: &StudentRequest<'_>) -> wst_core::Result<Vec<u32>> {
        let prompt = self.templates.student(request.query, request.instruction)?;
        self.model
            .encode_prompt(&prompt)
            .map_err(|e| wst_core::Error::other(format!("student {}: prompt", self.id()), e))
    }
}

impl Student for LocalStudent {
    fn id(&self) -> String {
        format!("local:{}", self.model.name)
    }

    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
    ) -> wst_core::Result<Vec<Vec<StudentReply>>> {
        // One row per sample: (request index, prompt ids).
        let mut rows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let ids = self.prompt_ids(r)?;
            rows.extend(std::iter::repeat_n((i, ids), r.k));
        }
        let mut seeded = sampling.seed.map(ChaCha8Rng::seed_from_u64);
        let mut out: Vec<Vec<StudentReply>> =
            requests.iter().map(|r| Vec::with_capacity(r.k)).collect();
        for chunk in rows.chunks(self.batch_size) {
            let prompts: Vec<Vec<u32>> = chunk.iter().map(|(_, p)| p.clone()).collect();
            let rng = seeded.as_mut().unwrap_or(&mut self.rng);
            let gens = self
                .model
                .generator()
                .generate_with_rng(&prompts, sampling, rng)
                .map_err(|e| {
                    wst_core::Error::other(format!("student local:{}", self.model.name), e)
                })?;
            for ((i, _), g) in chunk.iter().zip(gens) {
                out[*i].push(StudentReply::Completed(Completion {
                    text: g.text,
                    num_tokens: Some(g.token_ids.len()),
                    finish_reason: g.finish_reason,
                }));
            }
        }
        Ok(out)
    }
}
