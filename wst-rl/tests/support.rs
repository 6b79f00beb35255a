//! Mocks and configs shared by the trainer tests.

use std::path::{Path, PathBuf};

use wst_core::{
    Config, Query, Result, Reward, RewardComponents, RewardInput, SamplingParams, Student,
    StudentReply, StudentRequest, TemplatePreset, VecSource,
};
use wst_rl::{TinyConfig, TinyPolicy};

/// Words of the tiny teacher; the mock student only succeeds when told to "check" "carefully".
pub const WORDS: &[&str] = &[
    "carefully",
    "add",
    "the",
    "numbers",
    "please",
    "think",
    "step",
    "check",
    "answer",
    "now",
    "quickly",
    "guess",
];

/// A student that answers right exactly when the instruction says "check" and "carefully".
#[derive(Debug, Default)]
pub struct MockStudent {
    pub calls: usize,
}

impl Student for MockStudent {
    fn id(&self) -> String {
        "mock".into()
    }
    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        _sampling: &SamplingParams,
    ) -> Result<Vec<Vec<StudentReply>>> {
        self.calls += 1;
        Ok(requests
            .iter()
            .map(|r| {
                let good = r.instruction.is_some_and(|m| {
                    let has = |x: &str| m.split_whitespace().any(|w| w == x);
                    has("check") && has("carefully")
                });
                let text = if good {
                    r.query.reference.clone().unwrap_or_default()
                } else {
                    "no idea".to_string()
                };
                vec![StudentReply::text(text); r.k]
            })
            .collect())
    }
}

/// `correct` = 1 when the reply equals the reference.
#[derive(Debug, Default)]
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
                RewardComponents::from_pairs([("correct", if ok { 1.0 } else { 0.0 })])
            })
            .collect())
    }
}

/// Sums `a + b` for small digits.
pub fn source(seed: u64) -> VecSource {
    let qs = (0..20)
        .map(|i| {
            let (a, b) = (i % 7, (i * 3) % 5);
            Query::new(format!("q{i}"), format!("What is {a} + {b}?"))
                .with_reference((a + b).to_string())
        })
        .collect();
    VecSource::new("sums", qs, seed, true)
}

/// A valid config for the tiny setup.
pub fn config(steps: u64, seed: u64) -> Config {
    let mut c = Config::default();
    c.run.name = "t".into();
    c.run.seed = seed;
    c.run.steps = steps;
    c.run.keep_checkpoints = 0;
    c.teacher.model = "tiny".into();
    c.teacher.sampling = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 4,
        ..SamplingParams::default()
    };
    c.student.model = "mock".into();
    c.student.samples = 2;
    c.student.baseline_samples = 2;
    c.templates.preset = TemplatePreset::Arith;
    c.grpo.batch_size = 4;
    c.grpo.group_size = 8;
    c.grpo.lr = 0.01;
    c.grpo.micro_batch_size = 8;
    c.grpo.max_grad_norm = 1.0;
    c
}

/// The tiny teacher.
pub fn policy(seed: u64) -> TinyPolicy {
    TinyPolicy::new(&TinyConfig::new(WORDS, seed))
}

/// The tiny random Qwen2 of the reference vectors (vocab 512, hidden 64, 2 layers).
pub fn tiny_qwen2() -> PathBuf {
    let shared = match std::env::var_os("WST_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    };
    let p = shared.join("testvectors/tiny-qwen2");
    assert!(p.is_dir(), "test asset {} is missing", p.display());
    p
}

/// Answers right when the instruction has an even number of characters: random instructions
/// give untied groups, so the update has a gradient.
pub struct ParityStudent;

impl Student for ParityStudent {
    fn id(&self) -> String {
        "parity".into()
    }
    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        _sampling: &SamplingParams,
    ) -> Result<Vec<Vec<StudentReply>>> {
        Ok(requests
            .iter()
            .map(|r| {
                let even = r.instruction.is_some_and(|m| m.chars().count() % 2 == 0);
                let text = if even {
                    r.query.reference.clone().unwrap_or_default()
                } else {
                    "no".into()
                };
                vec![StudentReply::text(text); r.k]
            })
            .collect())
    }
}
