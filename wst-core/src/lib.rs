//! Core types and seams of **wst**, Weak-to-Strong Transfer.
//!
//! A small *teacher* model writes an instruction for each query; a larger *student* answers the
//! query with it `K` times; a *reward* scores each answer; the teacher is trained by GRPO on the
//! mean reward minus the student's own baseline. This crate holds what every other crate agrees
//! on — queries, instructions, student requests and replies (with an explicit failed value),
//! named reward components and their weighted combination, sampling parameters, rollout records,
//! the TOML configuration and the prompt templates — and the traits at the seams: [`Student`],
//! [`Reward`], [`PromptSource`], [`RolloutSink`] and [`BaselineStore`]. It has no libtorch and no
//! I/O beyond reading a config file, so tools that only need the types build in seconds; the
//! trainer (`wst-rl`) is written against these traits and the binary wires concrete ones in.
//!
//! A run's configuration, read from TOML with `--set`-style overrides and checked at once:
//!
//! ```
//! use wst_core::{Config, DeviceChoice, StudentBackend};
//!
//! let toml = r#"
//!     [teacher]
//!     model = "HuggingFaceTB/SmolLM2-135M-Instruct"
//!     [student]
//!     kind = "openai"
//!     model = "Qwen/Qwen2.5-7B-Instruct"
//!     base_urls = ["http://127.0.0.1:8000/v1"]
//! "#;
//! let overrides = ["grpo.group_size=4".to_string(), "run.device=cpu".to_string()];
//! let cfg = Config::from_toml_with_overrides(toml, "example.toml", &overrides)?;
//! cfg.validate()?;
//! assert_eq!(cfg.grpo.group_size, 4);
//! assert_eq!(cfg.run.device, "cpu".parse::<DeviceChoice>().unwrap());
//! let StudentBackend::Openai { base_urls, .. } = cfg.student.backend() else {
//!     panic!("an HTTP student");
//! };
//! assert_eq!(base_urls.len(), 1);
//!
//! // Every problem is reported at once, each naming its key.
//! let bad = ["grpo.lr=-1".to_string(), "student.samples=0".to_string()];
//! let problems = Config::from_toml_with_overrides(toml, "example.toml", &bad)?.problems();
//! assert!(problems.iter().any(|p| p.starts_with("grpo.lr")));
//! assert!(problems.iter().any(|p| p.starts_with("student.samples")));
//! # Ok::<(), wst_core::Error>(())
//! ```

pub mod atomic;
mod baseline;
mod config;
mod error;
mod gsm8k;
#[cfg(feature = "testing")]
pub mod http_test;
pub mod hub;
pub mod layout;
pub use layout::RunLayout;
mod leak;
mod query;
mod reward;
mod reward_config;
mod reward_mix;
mod rollout;
mod sampling;
mod source;
pub mod special;
mod student;
mod template;
#[cfg(feature = "testing")]
pub mod testing;

pub use baseline::{
    reward_hash, stable_hash, BaselineKey, BaselineStore, BaselineValue, MemoryBaselines,
};
pub use config::{
    apply_override, error_chain, join_causes, ArithLevel, Config, DType, DataConfig, DatasetKind,
    DeviceChoice, EvalConfig, GrpoConfig, LoraConfig, LossType, RewardConfig, RewardKind,
    RunConfig, ScaleRewards, Schedule, StudentBackend, StudentConfig, StudentKind, TeacherConfig,
    LORA_TARGETS,
};
pub use error::{Error, Result};
pub use gsm8k::parse_gsm8k_reference;
pub use leak::{contains_answer, leaks_answer, states_answer};
pub use query::{normalize_query_text, Instruction, Query};
pub use reward::{Reward, RewardComponents, RewardInput, RewardWeights, WeightedReward};
pub use reward_config::{ComponentKind, RewardComponentConfig};
pub use reward_mix::{Aggregation, Normalize, RewardMix, RunningStats, NORM_EPS};
pub use rollout::{EvalSample, MemorySink, NullSink, RolloutRecord, RolloutSink};
pub use sampling::SamplingParams;
pub use source::{splitmix64, PromptSource, VecSource};
pub use student::{
    Completion, FailedReply, FinishReason, InstructionRole, Student, StudentReply, StudentRequest,
};
pub use template::{ChatPrompt, PromptTemplates, TemplatePreset, TemplateTexts, TemplatesConfig};
