//! The TOML configuration of a run: serde structs with defaults, `--set` overrides and a
//! `validate()` that reports every problem at once.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod choice;
mod data;
mod eval;
mod grpo;
mod reward;
mod run;
mod student;
mod teacher;

use data::data_problems;
pub use data::{ArithLevel, DataConfig, DatasetKind};
pub use eval::EvalConfig;
pub use grpo::{GrpoConfig, LossType, ScaleRewards, Schedule};
pub use reward::{RewardConfig, RewardKind};
pub use run::{DType, DeviceChoice, RunConfig};
pub use student::{StudentBackend, StudentConfig, StudentKind};
pub use teacher::{LoraConfig, TeacherConfig, LORA_TARGETS};

use crate::{Error, Result, RewardWeights, TemplatesConfig};

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
        let mut p = self.run.problems("run");
        p.extend(self.teacher.problems("teacher"));
        if self.teacher.sampling.is_greedy() && self.grpo.group_size > 1 {
            p.push(
                "teacher.sampling.temperature is 0 (greedy): all G instructions of a group would \
                 be identical; use a temperature > 0"
                    .into(),
            );
        }
        p.extend(self.student.problems("student"));
        p.extend(data_problems(&self.data, "data"));
        p.extend(self.reward.problems(self.data.dataset));
        p.extend(self.grpo.problems("grpo"));
        if let Err(e) = crate::PromptTemplates::new(self.templates.resolve()) {
            p.push(error_chain(&e));
        }
        p.extend(self.eval.problems("eval"));
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
