//! [`LocalStudent`]: the [`Student`] seam backed by a local [`LoadedModel`], batched.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use wst_core::{
    ChatPrompt, Completion, InstructionRole, PromptTemplates, SamplingParams, Student,
    StudentReply, StudentRequest,
};

use crate::chat::ChatMessage;
use crate::loader::LoadedModel;

/// A student that runs a local model: each request's prompt is rendered by the student
/// templates and the model's chat template, repeated `k` times, and sampled in batches. The
/// instruction (the rendered student system template) is the system message, or opens the user
/// message when [`InstructionRole::User`] is chosen or found (see
/// [`LocalStudent::with_instruction_role`]).
#[derive(Debug)]
pub struct LocalStudent {
    model: LoadedModel,
    templates: PromptTemplates,
    batch_size: usize,
    rng: ChaCha8Rng,
    instruction_in_user: bool,
}

/// Whether the chat template of `model` rejects a system message: it is rendered once with a
/// system and a user message; the render error, if any (`None`: accepted, or no template).
fn system_message_rejected(model: &LoadedModel) -> Option<crate::Error> {
    let template = model.template().ok()?;
    template
        .render(
            &[
                ChatMessage::system("You are a helpful assistant."),
                ChatMessage::user("Hello"),
            ],
            true,
        )
        .err()
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
            instruction_in_user: false,
        }
    }

    /// Where the instruction goes: `system`, `user` (the start of the user message), or `auto`:
    /// the system message unless the model's chat template raises on one (Gemma's does), which
    /// is found out here by rendering it once.
    pub fn with_instruction_role(mut self, role: InstructionRole) -> Self {
        self.instruction_in_user = match role {
            InstructionRole::System => false,
            InstructionRole::User => true,
            InstructionRole::Auto => match system_message_rejected(&self.model) {
                Some(e) => {
                    tracing::info!(
                        student = %self.model.name,
                        "the chat template rejects a system message ({}); the instruction goes \
                         at the start of the user message",
                        wst_core::error_chain(&e)
                    );
                    true
                }
                None => false,
            },
        };
        self
    }

    /// True when the instruction opens the user message instead of being the system message.
    pub fn instruction_in_user(&self) -> bool {
        self.instruction_in_user
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

    /// The system and user messages of one request, the instruction placed.
    pub fn prompt(&self, request: &StudentRequest<'_>) -> wst_core::Result<ChatPrompt> {
        let prompt = self.templates.student(request.query, request.instruction)?;
        Ok(if self.instruction_in_user {
            prompt.system_in_user()
        } else {
            prompt
        })
    }

    /// The chat-formatted text of one request's prompt (what the model reads).
    pub fn prompt_text(&self, request: &StudentRequest<'_>) -> wst_core::Result<String> {
        let prompt = self.prompt(request)?;
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = prompt.system {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(prompt.user));
        self.model
            .render_chat(&messages)
            .map_err(|e| wst_core::Error::other(format!("student {}: prompt", self.id()), e))
    }

    /// Token ids of the chat-formatted prompt of one request.
    pub fn prompt_ids(&self, request: &StudentRequest<'_>) -> wst_core::Result<Vec<u32>> {
        let prompt = self.prompt(request)?;
        self.model
            .encode_prompt(&prompt)
            .map_err(|e| wst_core::Error::other(format!("student {}: prompt", self.id()), e))
    }
}

/// A student's id: `BACKEND:MODEL`, with `;instruction=user` when the instruction opens the
/// user message (it changes the replies, so baselines keyed by the id stay apart).
pub(crate) fn student_id(backend: &str, model: &str, instruction_in_user: bool) -> String {
    let role = if instruction_in_user {
        ";instruction=user"
    } else {
        ""
    };
    format!("{backend}:{model}{role}")
}

impl Student for LocalStudent {
    fn id(&self) -> String {
        // The weights' type changes the replies: a bf16 or int8 student keeps its baselines
        // apart from the f32 one's (whose id has no suffix).
        let m = &self.model.model;
        let dtype = match m.kind() {
            _ if m.is_int8() => ";dtype=int8",
            tch::Kind::Float => "",
            tch::Kind::BFloat16 => ";dtype=bf16",
            tch::Kind::Half => ";dtype=f16",
            _ => ";dtype=other",
        };
        format!(
            "{}{dtype}",
            student_id("local", &self.model.name, self.instruction_in_user)
        )
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
