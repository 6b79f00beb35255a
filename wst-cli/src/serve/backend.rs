//! The two backends of `wst serve`: a local model ([`ModelBackend`]: the conversation rendered
//! by the model's chat template, every choice of every request of a batch one row of the
//! batched generator), and the WST proxy ([`ProxyBackend`]: the teacher writes an instruction
//! for each query with the config's teacher template, the config's student answers it).
//!
//! Requests are grouped by their sampling parameters (temperature, top-p, top-k, length, stop
//! strings), since one generator call samples with one set; each row draws from its own
//! random stream, so a seeded request gets the same choices whatever it is batched with.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wst_core::{Instruction, Query, SamplingParams, Student, StudentReply, StudentRequest};
use wst_models::LoadedModel;
use wst_rl::eval::{InstructionWriter, Written};

use super::queue::Backend;
use super::types::{Answer, ApiError, ChatRequest, Choice, WstInfo};

fn server_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        500,
        "server_error",
        "internal_error",
        format!("{what}: {e}"),
    )
}

/// Indices of `items` grouped by the sampling parameters that change the output (seed aside).
fn groups(sampling: &[SamplingParams]) -> BTreeMap<String, Vec<usize>> {
    let mut g: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in sampling.iter().enumerate() {
        g.entry(s.cache_key()).or_default().push(i);
    }
    g
}

/// A local model, batched.
pub struct ModelBackend {
    model: LoadedModel,
    default_max_tokens: usize,
    max_rows: usize,
    rng: ChaCha8Rng,
}

impl ModelBackend {
    /// Serves `model`: `default_max_tokens` when a request gives none (capped by the context
    /// left), at most `max_rows` sequences per generator call, unseeded requests drawing their
    /// streams from a generator seeded with `seed`.
    pub fn new(model: LoadedModel, default_max_tokens: usize, max_rows: usize, seed: u64) -> Self {
        ModelBackend {
            model,
            default_max_tokens,
            max_rows: max_rows.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The prompt's token ids and the resolved sampling, or a 400.
    fn prepare(&self, r: &ChatRequest) -> Result<(Vec<u32>, SamplingParams), ApiError> {
        let ids = self
            .model
            .encode_chat(&r.messages)
            .map_err(|e| ApiError::invalid("messages", format!("the chat template: {e}")))?;
        let context = self.model.config().max_position_embeddings.max(0) as usize;
        let left = context.saturating_sub(ids.len());
        let max_new = r.max_tokens.unwrap_or(self.default_max_tokens.min(left));
        if left == 0 || max_new > left {
            return Err(ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(
                    "messages",
                    format!(
                        "this model's maximum context length is {context} tokens; the messages \
                         take {} and {max_new} were asked for the completion",
                        ids.len()
                    ),
                )
            });
        }
        Ok((
            ids,
            SamplingParams {
                max_new_tokens: max_new,
                ..r.sampling.clone()
            },
        ))
    }
}

impl Backend for ModelBackend {
    fn run(&mut self, batch: &[&ChatRequest]) -> Vec<Result<Answer, ApiError>> {
        let mut out: Vec<Result<Answer, ApiError>> = Vec::with_capacity(batch.len());
        let mut ready: Vec<(usize, Vec<u32>, SamplingParams)> = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            match self.prepare(r) {
                Ok((ids, s)) => {
                    out.push(Ok(Answer {
                        choices: Vec::with_capacity(r.n),
                        prompt_tokens: ids.len(),
                        wst: None,
                    }));
                    ready.push((i, ids, s));
                }
                Err(e) => out.push(Err(e)),
            }
        }
        let sampling: Vec<SamplingParams> = ready.iter().map(|(_, _, s)| s.clone()).collect();
        for members in groups(&sampling).into_values() {
            let params = &ready[members[0]].2;
            // One row per choice, with its own stream: seeded requests from (seed, choice).
            let mut rows: Vec<(usize, Vec<u32>, ChaCha8Rng)> = Vec::new();
            for &m in &members {
                let (i, ids, s) = &ready[m];
                for c in 0..batch[*i].n {
                    let mut rng = match s.seed {
                        Some(seed) => ChaCha8Rng::seed_from_u64(seed),
                        None => ChaCha8Rng::seed_from_u64(self.rng.gen()),
                    };
                    rng.set_stream(c as u64);
                    rows.push((*i, ids.clone(), rng));
                }
            }
            for chunk in rows.chunks(self.max_rows) {
                let prompts: Vec<Vec<u32>> = chunk.iter().map(|(_, p, _)| p.clone()).collect();
                let mut rngs: Vec<ChaCha8Rng> = chunk.iter().map(|(_, _, r)| r.clone()).collect();
                let gens = self
                    .model
                    .generator()
                    .generate_with_row_rngs(&prompts, params, &mut rngs);
                match gens {
                    Ok(gens) => {
                        for ((i, _, _), g) in chunk.iter().zip(gens) {
                            if let Ok(a) = &mut out[*i] {
                                a.choices.push(Choice {
                                    text: g.text,
                                    finish_reason: g.finish_reason,
                                    tokens: g.token_ids.len(),
                                });
                            }
                        }
                    }
                    Err(e) => {
                        for (i, _, _) in chunk.iter() {
                            out[*i] = Err(server_error("generation", &e));
                        }
                    }
                }
            }
        }
        out
    }
}

/// The choices of one request, or a 502 when the student failed on one of them.
fn collect_replies(replies: Vec<StudentReply>) -> Result<Vec<Choice>, ApiError> {
    replies
        .into_iter()
        .map(|reply| match reply {
            StudentReply::Completed(c) => Ok(Choice {
                text: c.text,
                finish_reason: c.finish_reason,
                tokens: c.num_tokens.unwrap_or(0),
            }),
            StudentReply::Failed(f) => Err(ApiError::new(
                502,
                "server_error",
                "student_failed",
                format!(
                    "the student failed after {} attempts: {}",
                    f.attempts, f.error
                ),
            )),
        })
        .collect()
}

/// The WST proxy: a teacher in front of the config's student.
pub struct ProxyBackend {
    teacher: Box<dyn InstructionWriter>,
    teacher_label: String,
    student: Box<dyn Student>,
    default_max_tokens: usize,
}

impl ProxyBackend {
    /// `teacher` writes the instructions (labelled `teacher_label` in answers), `student`
    /// answers; `default_max_tokens` when a request gives none.
    pub fn new(
        teacher: Box<dyn InstructionWriter>,
        teacher_label: String,
        student: Box<dyn Student>,
        default_max_tokens: usize,
    ) -> Self {
        ProxyBackend {
            teacher,
            teacher_label,
            student,
            default_max_tokens,
        }
    }
}

impl Backend for ProxyBackend {
    fn run(&mut self, batch: &[&ChatRequest]) -> Vec<Result<Answer, ApiError>> {
        let mut out: Vec<Result<Answer, ApiError>> = Vec::with_capacity(batch.len());
        let mut queries: Vec<Option<Query>> = Vec::with_capacity(batch.len());
        for (i, r) in batch.iter().enumerate() {
            match r.last_user() {
                Some(text) => {
                    queries.push(Some(Query::new(format!("request-{i}"), text)));
                    out.push(Ok(Answer {
                        choices: Vec::new(),
                        prompt_tokens: 0,
                        wst: None,
                    }));
                }
                None => {
                    queries.push(None);
                    out.push(Err(ApiError::invalid(
                        "messages",
                        "the WST proxy needs a user message (the query)",
                    )));
                }
            }
        }
        // The teacher writes for every query that wants it, in one batch.
        let taught: Vec<usize> = (0..batch.len())
            .filter(|&i| queries[i].is_some() && batch[i].use_teacher)
            .collect();
        let mut instructions: Vec<Option<Instruction>> = vec![None; batch.len()];
        if !taught.is_empty() {
            let qs: Vec<Query> = taught.iter().filter_map(|&i| queries[i].clone()).collect();
            match self.teacher.write(&qs) {
                Ok(written) => {
                    for (&i, w) in taught.iter().zip(written) {
                        match w {
                            Written::Instruction(m) => instructions[i] = Some(m),
                            Written::Nothing => {}
                            Written::Failed(e) => out[i] = Err(server_error("the teacher", e)),
                        }
                    }
                }
                Err(e) => {
                    for &i in &taught {
                        out[i] = Err(server_error("the teacher", &e));
                    }
                }
            }
        }
        for &i in &taught {
            if let Ok(a) = &mut out[i] {
                let m = instructions[i].as_ref();
                a.wst = Some(WstInfo {
                    instruction: m.map(|m| m.text.clone()),
                    teacher: self.teacher_label.clone(),
                    teacher_tokens: m.map_or(0, |m| m.num_tokens),
                });
            }
        }
        let live: Vec<usize> = (0..batch.len()).filter(|&i| out[i].is_ok()).collect();
        let sampling: Vec<SamplingParams> = live
            .iter()
            .map(|&i| SamplingParams {
                max_new_tokens: batch[i].max_tokens.unwrap_or(self.default_max_tokens),
                ..batch[i].sampling.clone()
            })
            .collect();
        for members in groups(&sampling).into_values() {
            let params = &sampling[members[0]];
            let idx: Vec<usize> = members.iter().map(|&m| live[m]).collect();
            let requests: Vec<StudentRequest<'_>> = idx
                .iter()
                .filter_map(|&i| {
                    queries[i].as_ref().map(|query| StudentRequest {
                        query,
                        instruction: instructions[i].as_ref().map(|m| m.text.as_str()),
                        k: batch[i].n,
                    })
                })
                .collect();
            match self.student.generate(&requests, params) {
                Ok(replies) => {
                    for (&i, replies) in idx.iter().zip(replies) {
                        out[i] = collect_replies(replies).and_then(|choices| {
                            let mut a = out[i].clone()?;
                            a.choices = choices;
                            Ok(a)
                        });
                    }
                }
                Err(e) => {
                    for &i in &idx {
                        out[i] = Err(server_error("the student", &e));
                    }
                }
            }
        }
        out
    }
}
