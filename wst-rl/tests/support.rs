//! Mocks and configs shared by the trainer tests.

use std::path::PathBuf;

/// Sums `a + b` for small digits.
pub use wst_core::testing::sums_source as source;
pub use wst_core::testing::{tiny_config, ExactReward, MockStudent};
use wst_core::{Config, MemoryBaselines, NullSink, Student};
use wst_rl::{Parts, Policy, TinyConfig, TinyPolicy};

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

/// The mock student of these tests: right exactly when the instruction says "check" and
/// "carefully" (the reference answer), else `no idea`.
pub fn mock_student() -> MockStudent {
    MockStudent::keyed("mock", &["check", "carefully"]).wrong_reply("no idea")
}

/// A valid config for the tiny setup.
pub fn config(steps: u64, seed: u64) -> Config {
    let mut c = tiny_config("t", "mock", steps);
    c.run.seed = seed;
    c.run.keep_checkpoints = 0;
    c.grpo.max_grad_norm = 1.0;
    c
}

/// The tiny teacher.
pub fn policy(seed: u64) -> TinyPolicy {
    TinyPolicy::new(&TinyConfig::new(WORDS, seed))
}

/// The tiny random Qwen2 of the reference vectors (vocab 512, hidden 64, 2 layers).
pub fn tiny_qwen2() -> PathBuf {
    let p = wst_core::testing::shared_dir().join("testvectors/tiny-qwen2");
    assert!(p.is_dir(), "test asset {} is missing", p.display());
    p
}

/// Answers right when the instruction has an even number of characters: random instructions
/// give untied groups, so the update has a gradient.
pub fn parity_student() -> MockStudent {
    MockStudent::parity("parity")
}

/// The trainer's parts around `policy` and `student`: no reference, the exact reward, the sums
/// shuffled with `seed`, rollouts dropped, baselines in memory.
pub fn parts_with<'a>(
    policy: impl Policy + 'a,
    student: impl Student + Send + 'a,
    seed: u64,
) -> Parts<'a> {
    Parts {
        policy: Box::new(policy),
        reference: None,
        student: Box::new(student),
        reward: Box::new(ExactReward),
        prompts: Box::new(source(seed)),
        sink: Box::new(NullSink),
        baselines: Box::new(MemoryBaselines::default()),
    }
}

/// The parts of the tiny setup: the tiny teacher and the mock student ([`parts_with`]).
pub fn mock_parts<'a>(seed: u64) -> Parts<'a> {
    parts_with(policy(seed), mock_student(), seed)
}
