//! The student seam: any model that answers `(query, instruction)` pairs, local or remote.

use serde::{Deserialize, Serialize};

use crate::{Query, Result, SamplingParams};

/// Where the student sees the teacher's instruction (`student.instruction_role`).
///
/// The instruction is what the student system template renders (`templates.student_system`).
/// Some chat templates reject a system message (Gemma's raises "System role not supported"), so
/// the rendered system text can instead open the user message, followed by a blank line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InstructionRole {
    /// The system message, unless the student's chat template rejects one (a local model's
    /// template is rendered once with a system message to find out); then the user message. An
    /// HTTP student's template is not visible, so `auto` means `system` there.
    #[default]
    Auto,
    /// Always the system message.
    System,
    /// Always the start of the user message (no system message is sent).
    User,
}

impl InstructionRole {
    /// The name used in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            InstructionRole::Auto => "auto",
            InstructionRole::System => "system",
            InstructionRole::User => "user",
        }
    }
}

/// One request to the student: answer `query`, guided by `instruction` if present, `k` times.
#[derive(Debug, Clone, PartialEq)]
pub struct StudentRequest<'a> {
    /// The query to answer.
    pub query: &'a Query,
    /// The teacher's instruction `m1`, or `None` for the student-alone baseline.
    pub instruction: Option<&'a str>,
    /// How many independent replies to draw.
    pub k: usize,
}

/// Why a student reply stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// The token limit.
    Length,
}

/// A reply the student produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The reply text (stop string and end-of-sequence token removed).
    pub text: String,
    /// Number of generated tokens, when the student reports it.
    pub num_tokens: Option<usize>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// A reply that could not be obtained, after every retry. It is never scored as zero: the trainer
/// excludes it from reward means and counts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedReply {
    /// What went wrong the last time (HTTP status, timeout, malformed body, ...).
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
}

/// One of the `k` replies to a request: a completion or an explicit failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StudentReply {
    /// The student answered.
    Completed(Completion),
    /// The student could not be reached or answered garbage.
    Failed(FailedReply),
}

impl StudentReply {
    /// A completed reply that stopped normally.
    pub fn text(text: impl Into<String>) -> Self {
        StudentReply::Completed(Completion {
            text: text.into(),
            num_tokens: None,
            finish_reason: FinishReason::Stop,
        })
    }

    /// A failed reply.
    pub fn failed(error: impl Into<String>, attempts: u32) -> Self {
        StudentReply::Failed(FailedReply {
            error: error.into(),
            attempts,
        })
    }

    /// The text, if the reply completed.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            StudentReply::Completed(c) => Some(&c.text),
            StudentReply::Failed(_) => None,
        }
    }

    /// True for a failed reply.
    pub fn is_failed(&self) -> bool {
        matches!(self, StudentReply::Failed(_))
    }
}

/// A model that answers queries. Implementations: a local tch model (batched) and an
/// OpenAI-compatible HTTP endpoint.
///
/// `generate` returns, for each request in order, exactly `request.k` replies. A transport-level
/// problem for one sample is a [`StudentReply::Failed`] value; `Err` is for problems that make the
/// whole batch meaningless (a model that cannot run, a template that cannot render).
pub trait Student {
    /// Identifies the model and its prompt format, for baseline caches (e.g. `local:SmolLM2...`).
    fn id(&self) -> String;

    /// Draws `k` replies per request with the given sampling parameters.
    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
    ) -> Result<Vec<Vec<StudentReply>>>;

    /// Like [`Student::generate`], but hands each request's `k` replies to `on_reply` (with the
    /// request's index) as soon as they are there, in any order, each request exactly once, so
    /// the caller can score replies while others are still being answered. The default answers
    /// the whole batch with `generate`, then hands the replies over in order; students that
    /// answer requests independently (HTTP) override it. An `Err` from `on_reply` stops the
    /// batch and is returned.
    fn generate_each(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
        on_reply: &mut dyn FnMut(usize, Vec<StudentReply>) -> Result<()>,
    ) -> Result<()> {
        let replies = self.generate(requests, sampling)?;
        for (i, r) in replies.into_iter().enumerate() {
            on_reply(i, r)?;
        }
        Ok(())
    }
}

/// `&mut S` and `Box<S>` are students too.
macro_rules! forward_student {
    ($($outer:ty),+) => {$(
        impl<T: Student + ?Sized> Student for $outer {
            fn id(&self) -> String {
                (**self).id()
            }
            fn generate(
                &mut self,
                requests: &[StudentRequest<'_>],
                sampling: &SamplingParams,
            ) -> Result<Vec<Vec<StudentReply>>> {
                (**self).generate(requests, sampling)
            }
            fn generate_each(
                &mut self,
                requests: &[StudentRequest<'_>],
                sampling: &SamplingParams,
                on_reply: &mut dyn FnMut(usize, Vec<StudentReply>) -> Result<()>,
            ) -> Result<()> {
                (**self).generate_each(requests, sampling, on_reply)
            }
        }
    )+};
}

forward_student!(&mut T, Box<T>);
