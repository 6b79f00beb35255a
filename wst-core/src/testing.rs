//! Fixtures for the tests and benchmarks of other crates (feature `testing`): a mock
//! [`Student`] that answers right only when the instruction has a key, an exact-match
//! [`Reward`], a small source of sums and the config of a tiny GRPO run.
//!
//! ```
//! use wst_core::testing::{sums_source, ExactReward, MockStudent};
//! use wst_core::{PromptSource, Reward, RewardInput, SamplingParams, Student, StudentRequest};
//!
//! let mut student = MockStudent::keyed("mock", &["check"]).wrong_reply("no idea");
//! let queries = sums_source(0).next_batch(2)?;
//! let requests: Vec<StudentRequest<'_>> = queries
//!     .iter()
//!     .map(|query| StudentRequest { query, instruction: Some("check it"), k: 2 })
//!     .collect();
//! let replies = student.generate(&requests, &SamplingParams::default())?;
//! assert_eq!((student.calls, student.replies), (1, 4));
//! let reply = replies[0][0].as_text().unwrap();
//! assert_eq!(Some(reply), queries[0].reference.as_deref());
//! let scores = ExactReward.score(&[RewardInput::new(&queries[0], reply)])?;
//! assert_eq!(scores[0].get("correct"), Some(1.0));
//! # Ok::<(), wst_core::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::{
    Config, Query, Result, Reward, RewardComponents, RewardInput, SamplingParams, Student,
    StudentReply, StudentRequest, TemplatePreset, VecSource,
};

/// What makes a [`MockStudent`] answer right. A request without an instruction never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// Never: the student always gives its wrong reply.
    Never,
    /// The instruction has every one of these words (split at white space, whole words).
    Words(Vec<String>),
    /// The instruction has an even number of characters: random instructions give untied
    /// groups, so an update has a gradient.
    EvenLength,
}

impl Key {
    /// Whether a reply to `instruction` is right.
    pub fn opens(&self, instruction: Option<&str>) -> bool {
        let Some(m) = instruction else {
            return false;
        };
        match self {
            Key::Never => false,
            Key::Words(words) => words
                .iter()
                .all(|x| m.split_whitespace().any(|w| w == x.as_str())),
            Key::EvenLength => m.chars().count() % 2 == 0,
        }
    }
}

/// A student without latency: the reference answer when the instruction has its [`Key`], its
/// wrong reply otherwise; optionally every `n`-th reply (counted over all replies) to a request
/// without an instruction fails (`boom`, after 3 attempts). It counts its calls and replies.
#[derive(Debug, Clone)]
pub struct MockStudent {
    id: String,
    key: Key,
    wrong: String,
    fail_uninstructed_every: Option<usize>,
    /// Calls of [`Student::generate`].
    pub calls: usize,
    /// Replies made, failed ones too.
    pub replies: usize,
}

impl MockStudent {
    /// A student named `id` that opens with `key` and otherwise replies `no`.
    pub fn new(id: impl Into<String>, key: Key) -> Self {
        MockStudent {
            id: id.into(),
            key,
            wrong: "no".into(),
            fail_uninstructed_every: None,
            calls: 0,
            replies: 0,
        }
    }

    /// Right exactly when the instruction has every one of `words` ([`Key::Words`]).
    pub fn keyed(id: impl Into<String>, words: &[&str]) -> Self {
        let words = words.iter().map(|w| w.to_string()).collect();
        MockStudent::new(id, Key::Words(words))
    }

    /// Right exactly when the instruction has an even number of characters
    /// ([`Key::EvenLength`]).
    pub fn parity(id: impl Into<String>) -> Self {
        MockStudent::new(id, Key::EvenLength)
    }

    /// Always replies `text` ([`Key::Never`]).
    pub fn constant(id: impl Into<String>, text: impl Into<String>) -> Self {
        MockStudent::new(id, Key::Never).wrong_reply(text)
    }

    /// Replies `text` when the key is missing.
    pub fn wrong_reply(mut self, text: impl Into<String>) -> Self {
        self.wrong = text.into();
        self
    }

    /// Fails every `n`-th reply (counted over all replies) to a request without an instruction.
    pub fn failing_uninstructed_every(mut self, n: usize) -> Self {
        self.fail_uninstructed_every = Some(n);
        self
    }

    fn reply(&mut self, r: &StudentRequest<'_>) -> StudentReply {
        self.replies += 1;
        let fails = self
            .fail_uninstructed_every
            .is_some_and(|n| r.instruction.is_none() && self.replies % n == 0);
        if fails {
            StudentReply::failed("boom", 3)
        } else if self.key.opens(r.instruction) {
            StudentReply::text(r.query.reference.clone().unwrap_or_default())
        } else {
            StudentReply::text(self.wrong.clone())
        }
    }
}

impl Student for MockStudent {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        _sampling: &SamplingParams,
    ) -> Result<Vec<Vec<StudentReply>>> {
        self.calls += 1;
        Ok(requests
            .iter()
            .map(|r| (0..r.k).map(|_| self.reply(r)).collect())
            .collect())
    }
}

/// One component, `correct`: 1 when the reply (trimmed) equals the query's reference, else 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExactReward;

impl Reward for ExactReward {
    fn component_names(&self) -> Vec<String> {
        vec!["correct".into()]
    }
    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        Ok(inputs
            .iter()
            .map(|i| {
                let ok = i.query.reference.as_deref() == Some(i.reply.trim());
                RewardComponents::from_pairs([("correct", f64::from(u8::from(ok)))])
            })
            .collect())
    }
}

/// The shared test assets (`data/`, `testvectors/`, `testdata/`): `$WST_SHARED` when set, else
/// the `shared` folder beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("WST_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

/// Dataset `sums`: 20 queries `q0..q19`, "What is a + b?" for small digits, with their sums as
/// references, shuffled with `seed`.
pub fn sums_source(seed: u64) -> VecSource {
    let qs = (0..20)
        .map(|i| {
            let (a, b) = (i % 7, (i * 3) % 5);
            Query::new(format!("q{i}"), format!("What is {a} + {b}?"))
                .with_reference((a + b).to_string())
        })
        .collect();
    VecSource::new("sums", qs, seed, true)
}

/// A valid config of a tiny run named `name` of `steps` steps: a teacher `tiny` sampling 4
/// tokens at temperature 1, the student `student` with 2 replies per instruction and per
/// baseline, the arithmetic templates, GRPO with batch 4, group 8, micro-batch 8 and lr 0.01.
pub fn tiny_config(name: &str, student: &str, steps: u64) -> Config {
    let mut c = Config::default();
    c.run.name = name.into();
    c.run.steps = steps;
    c.teacher.model = "tiny".into();
    c.teacher.sampling = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 4,
        ..SamplingParams::default()
    };
    c.student.model = student.into();
    (c.student.samples, c.student.baseline_samples) = (2, 2);
    c.templates.preset = TemplatePreset::Arith;
    (c.grpo.batch_size, c.grpo.group_size) = (4, 8);
    (c.grpo.micro_batch_size, c.grpo.lr) = (8, 0.01);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PromptSource;

    fn ask(student: &mut MockStudent, instruction: Option<&str>, k: usize) -> Vec<StudentReply> {
        let q = Query::new("q", "What is 1 + 1?").with_reference("2");
        let request = StudentRequest {
            query: &q,
            instruction,
            k,
        };
        let mut out = student
            .generate(&[request], &SamplingParams::default())
            .unwrap();
        out.pop().unwrap()
    }

    #[test]
    fn keys_open_on_whole_words_parity_or_never() {
        let words = Key::Words(vec!["check".into(), "carefully".into()]);
        assert!(words.opens(Some("check it carefully")));
        assert!(!words.opens(Some("check it")));
        assert!(!words.opens(Some("checks carefully")));
        assert!(!words.opens(None));
        assert!(Key::EvenLength.opens(Some("ab")) && !Key::EvenLength.opens(Some("abc")));
        assert!(!Key::Never.opens(Some("anything")));
    }

    #[test]
    fn the_mock_student_answers_fails_and_counts() {
        let mut s = MockStudent::keyed("mock", &["check"])
            .wrong_reply("-1")
            .failing_uninstructed_every(3);
        let right = ask(&mut s, Some("check"), 2);
        assert_eq!(right, vec![StudentReply::text("2"); 2]);
        let alone = ask(&mut s, None, 2);
        assert_eq!(alone[0], StudentReply::failed("boom", 3), "the third reply");
        assert_eq!(alone[1], StudentReply::text("-1"));
        assert_eq!((s.id(), s.calls, s.replies), ("mock".to_string(), 2, 4));
        let mut two = MockStudent::constant("two", "2");
        assert_eq!(ask(&mut two, Some("check"), 1)[0], StudentReply::text("2"));
    }

    #[test]
    fn exact_reward_sums_and_tiny_config_fit_together() {
        let q = sums_source(1).next_batch(20).unwrap();
        assert_eq!(q.len(), 20);
        let reference = q[0].reference.clone().unwrap();
        let reply = format!(" {reference}\n");
        let scores = ExactReward
            .score(&[
                RewardInput::new(&q[0], &reply),
                RewardInput::new(&q[0], "x"),
            ])
            .unwrap();
        assert_eq!(scores[0].get("correct"), Some(1.0));
        assert_eq!(scores[1].get("correct"), Some(0.0));
        let c = tiny_config("t", "mock", 3);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!((c.run.steps, c.student.model.as_str()), (3, "mock"));
    }
}
