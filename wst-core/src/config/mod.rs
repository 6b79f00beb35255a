//! The TOML configuration of a run: serde structs with defaults, `--set` overrides and a
//! `validate()` that reports every problem at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod data;
mod grpo;
mod teacher;

use data::data_problems;
pub use data::{ArithLevel, DataConfig, DatasetKind};
pub use grpo::{GrpoConfig, LossType, ScaleRewards, Schedule};
pub use teacher::{LoraConfig, TeacherConfig, LORA_TARGETS};

use crate::InstructionRole;
use crate::{Error, Result, RewardComponentConfig, RewardWeights, SamplingParams, TemplatesConfig};

/// A whole run: `[run]`, `[teacher]`, `[student]`, `[data]`, `[reward]`, `[grpo]`, `[templates]`,
/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Run identity, output, seed, device, length and checkpointing.
    pub run: RunConfig,
    /// The model being trained.
    pub teacher: TeacherConfig,
    /// The model being instructed.
    pub student: StudentConfig,
    /// Training queries.
    pub data: DataConfig,
    /// How student replies are scored.
    pub reward: RewardConfig,
    /// The GRPO optimiser.
    pub grpo: GrpoConfig,
    /// Prompt templates.
    pub templates: TemplatesConfig,
    /// Held-out evaluation.
    pub eval: EvalConfig,
}

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

/// Floating-point type of model weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// bf16 on CUDA, f32 on the CPU.
    #[default]
    Auto,
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
    /// float16.
    F16,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Name of the run (its directory under `output_dir`).
    pub name: String,
    /// Parent folder of run directories.
    pub output_dir: PathBuf,
    /// Seed of every random choice in the run.
    pub seed: u64,
    /// Device for the teacher and local models.
    pub device: DeviceChoice,
    /// Optimiser steps.
    pub steps: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub save_every: u64,
    /// Keep at most this many checkpoints (0: all).
    pub keep_checkpoints: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            name: "wst".into(),
            output_dir: "runs".into(),
            seed: 0,
            device: DeviceChoice::Auto,
            steps: 100,
            save_every: 0,
            keep_checkpoints: 2,
        }
    }
}

/// What answers the queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StudentKind {
    /// A model run in-process on tch.
    #[default]
    Local,
    /// An OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, hosted APIs).
    Openai,
}

/// `[student]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// Local or HTTP.
    pub kind: StudentKind,
    /// Local: path or hub id. HTTP: the model name sent in requests.
    pub model: String,
    /// Local: weight type.
    pub dtype: DType,
    /// HTTP: base URLs (ending before `/chat/completions`), used round-robin.
    pub base_urls: Vec<String>,
    /// HTTP: name of the environment variable that holds the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// HTTP: requests in flight at once, per base URL.
    pub max_concurrency: usize,
    /// HTTP: seconds before a request is abandoned and retried.
    pub timeout_s: f64,
    /// HTTP: retries after the first attempt.
    pub max_retries: u32,
    /// Local: prompts per forward batch.
    pub batch_size: usize,
    /// K: replies per (query, instruction).
    pub samples: usize,
    /// Replies per query without instruction for the baseline `s_i`.
    pub baseline_samples: usize,
    /// Sampling of replies.
    pub sampling: SamplingParams,
    /// Where the instruction goes: `auto` (the system message unless a local student's chat
    /// template rejects one; HTTP students: the system message), `system` or `user` (the start
    /// of the user message).
    pub instruction_role: InstructionRole,
    /// A step whose share of failed student replies is above this stops the run (after saving
    /// the finished steps); 1 never stops.
    pub max_failure_rate: f64,
}

impl Default for StudentConfig {
    fn default() -> Self {
        StudentConfig {
            kind: StudentKind::Local,
            model: String::new(),
            dtype: DType::Auto,
            base_urls: Vec::new(),
            api_key_env: None,
            max_concurrency: 16,
            timeout_s: 120.0,
            max_retries: 5,
            batch_size: 64,
            samples: 10,
            baseline_samples: 10,
            sampling: SamplingParams {
                temperature: 0.7,
                max_new_tokens: 512,
                ..SamplingParams::default()
            },
            instruction_role: InstructionRole::Auto,
            max_failure_rate: 0.5,
        }
    }
}

/// How replies are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RewardKind {
    /// 1 when the extracted answer equals the reference, else 0 (component `correct`).
    #[default]
    Math,
    /// Sequence-classifier reward models, one component per entry of `reward.models`.
    RewardModel,
}

/// `[reward]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// Which scorer (a shorthand for one `[reward.components]` set; ignored when those are given).
    pub kind: RewardKind,
    /// Weights `w` over components (shorthand kinds: sum 1, each >= 0; components: any finite).
    pub weights: BTreeMap<String, f64>,
    /// Reward models: component name -> path or hub id.
    pub models: BTreeMap<String, String>,
    /// Math: fall back to the last number of a reply when nothing else marks the answer.
    pub last_number_fallback: bool,
    /// Reward models: pairs per forward batch.
    pub batch_size: usize,
    /// Reward components by name (`[reward.components.NAME]`), mixed by `weights`.
    pub components: BTreeMap<String, RewardComponentConfig>,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            kind: RewardKind::Math,
            weights: BTreeMap::from([("correct".to_string(), 1.0)]),
            models: BTreeMap::new(),
            last_number_fallback: true,
            batch_size: 16,
            components: BTreeMap::new(),
        }
    }
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out queries; `None` uses `[data]` with a different seed and no overlap.
    pub data: Option<DataConfig>,
    /// Queries evaluated.
    pub limit: usize,
    /// Student replies per query and condition.
    pub samples: usize,
    /// The two reward components a weighted evaluation (`wst eval --weights w,...`) trades off:
    /// weight `1 - w` on the first, `w` on the second.
    pub weight_axis: [String; 2],
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            data: None,
            limit: 100,
            samples: 4,
            weight_axis: ["harmless".into(), "helpful".into()],
        }
    }
}

impl Config {
    /// Parses TOML text (no overrides).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::ConfigParse {
            origin: origin.to_string(),
            source: Box::new(e),
        })
    }

    /// Reads a file, applies `key=value` overrides (TOML values; bare words are strings), and
    /// parses. Does not validate: call [`Config::validate`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_with_overrides(&text, &path.display().to_string(), overrides)
    }

    /// Parses TOML text after applying `key=value` overrides.
    pub fn from_toml_with_overrides(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| Error::ConfigParse {
            origin: origin.to_string(),
            source: Box::new(e),
        })?;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let text = toml::to_string(&value).map_err(|e| Error::BadOverride {
            assignment: overrides.join(" "),
            reason: e.to_string(),
        })?;
        let origin = if overrides.is_empty() {
            origin.to_string()
        } else {
            format!("{origin} with --set {}", overrides.join(" --set "))
        };
        Self::from_toml_str(&text, &origin)
    }

    /// The configuration as TOML (what a run directory stores).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialise config: {e}\n"))
    }

    /// The run directory: `output_dir/name`.
    pub fn run_dir(&self) -> PathBuf {
        self.run.output_dir.join(&self.run.name)
    }

    /// The reward weights as a validated type (any finite weights with `[reward.components]`).
    pub fn reward_weights(&self) -> Result<RewardWeights> {
        if self.reward.components.is_empty() {
            RewardWeights::new(self.reward.weights.clone())
        } else {
            RewardWeights::signed(self.reward.weights.clone())
        }
    }

    /// Every problem with the configuration, or `Ok`.
    pub fn validate(&self) -> Result<()> {
        let p = self.problems();
        if p.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidConfig(p))
        }
    }

    /// Every problem with the configuration, as messages naming the key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let r = &self.run;
        if r.name.trim().is_empty() || r.name.contains(['/', '\\']) {
            p.push(format!(
                "run.name must be a non-empty folder name, got {:?}",
                r.name
            ));
        }
        if r.steps == 0 {
            p.push("run.steps must be >= 1".into());
        }

        p.extend(self.teacher.problems("teacher"));
        if self.teacher.sampling.is_greedy() && self.grpo.group_size > 1 {
            p.push(
                "teacher.sampling.temperature is 0 (greedy): all G instructions of a group would \
                 be identical; use a temperature > 0"
                    .into(),
            );
        }

        let s = &self.student;
        if s.model.trim().is_empty() {
            p.push("student.model must name a model".into());
        }
        match s.kind {
            StudentKind::Openai => {
                if s.base_urls.is_empty() {
                    p.push(
                        "student.base_urls must list at least one URL for kind = \"openai\"".into(),
                    );
                }
                for u in &s.base_urls {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        p.push(format!(
                            "student.base_urls: {u:?} must start with http:// or https://"
                        ));
                    }
                }
                if let Some(env) = &s.api_key_env {
                    if env.is_empty() || env.contains(['=', ' ']) {
                        p.push(format!(
                            "student.api_key_env must be an environment variable name, got {env:?}"
                        ));
                    }
                }
                if s.max_concurrency == 0 {
                    p.push("student.max_concurrency must be >= 1".into());
                }
                if !(s.timeout_s.is_finite() && s.timeout_s > 0.0) {
                    p.push(format!(
                        "student.timeout_s must be > 0, got {}",
                        s.timeout_s
                    ));
                }
            }
            StudentKind::Local => {
                if s.batch_size == 0 {
                    p.push("student.batch_size must be >= 1".into());
                }
            }
        }
        if s.samples == 0 {
            p.push("student.samples (K) must be >= 1".into());
        }
        if !(0.0..=1.0).contains(&s.max_failure_rate) {
            p.push(format!(
                "student.max_failure_rate must be in [0, 1] (a share of replies), got {}",
                s.max_failure_rate
            ));
        }
        p.extend(s.sampling.problems("student.sampling"));

        p.extend(data_problems(&self.data, "data"));

        let rw = &self.reward;
        if !rw.components.is_empty() {
            p.extend(rw.component_problems());
            if self.data.dataset == DatasetKind::HhRlhf
                && rw
                    .components
                    .values()
                    .any(|c| c.kind == Some(crate::ComponentKind::Math))
            {
                p.push(
                    "a math reward component needs reference answers, which hh-rlhf has not".into(),
                );
            }
        } else {
            p.extend(RewardWeights(rw.weights.clone()).problems("reward.weights"));
        }
        match rw.kind {
            _ if !rw.components.is_empty() => {}
            RewardKind::Math => {
                for k in rw.weights.keys() {
                    if k != "correct" {
                        p.push(format!(
                            "reward.weights.{k}: the math reward has only the component `correct`"
                        ));
                    }
                }
                if self.data.dataset == DatasetKind::HhRlhf {
                    p.push(
                        "reward.kind = \"math\" needs reference answers, which hh-rlhf has not; \
                         use reward.kind = \"reward-model\""
                            .into(),
                    );
                }
            }
            RewardKind::RewardModel => {
                if rw.models.is_empty() {
                    p.push("reward.models must map component names to reward models".into());
                }
                for k in rw.weights.keys() {
                    if !rw.models.contains_key(k) {
                        p.push(format!("reward.weights.{k} has no model in reward.models"));
                    }
                }
                if rw.batch_size == 0 {
                    p.push("reward.batch_size must be >= 1".into());
                }
            }
        }

        p.extend(self.grpo.problems("grpo"));

        if let Err(e) = crate::PromptTemplates::new(self.templates.resolve()) {
            p.push(error_chain(&e));
        }

        if let Some(d) = &self.eval.data {
            p.extend(data_problems(d, "eval.data"));
        }
        if self.eval.weight_axis[0] == self.eval.weight_axis[1] {
            p.push("eval.weight_axis must name two different reward components".into());
        }
        if self.eval.samples == 0 {
            p.push("eval.samples must be >= 1".into());
        }
        p
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut causes = Vec::new();
    let mut cur = e.source();
    while let Some(c) = cur {
        causes.push(c.to_string());
        cur = c.source();
    }
    join_causes(e.to_string(), causes)
}

/// Joins an error's message and its causes with `": "`, leaving out a cause whose text is
/// already in the message so far (libraries that print their source inside their own message,
/// as reqwest and hf-hub do, would otherwise repeat it).
pub fn join_causes(message: String, causes: impl IntoIterator<Item = String>) -> String {
    let mut s = message;
    for c in causes {
        if !c.is_empty() && !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s
}

/// Applies one `dotted.key=value` assignment to a TOML table. The value is parsed as a TOML value
/// (`0.5`, `true`, `[1, 2]`, `"text"`); anything that does not parse is taken as a bare string.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let bad = |reason: String| Error::BadOverride {
        assignment: assignment.to_string(),
        reason,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| bad("expected key=value".into()))?;
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if key.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!("`{key}` is not a dotted key")));
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    };
    let mut cur = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            bad(format!(
                "`{}` is a value, not a table",
                parts[..=i].join(".")
            ))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
