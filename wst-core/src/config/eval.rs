//! `[eval]`: the held-out evaluation.

use serde::{Deserialize, Serialize};

use super::data::{data_problems, DataConfig};

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Held-out queries; `None` uses `[data]` with a different seed and no overlap.
    pub data: Option<DataConfig>,
    /// Queries evaluated.
    pub limit: usize,
    /// Instructions written per query and condition (M): each gets `samples` replies. More than
    /// one measures a teacher's expected effect over its instructions, not the luck of one draw.
    pub instructions: usize,
    /// Student replies per instruction (K; per query for the student alone, asked M times).
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
            instructions: 1,
            samples: 4,
            weight_axis: ["harmless".into(), "helpful".into()],
        }
    }
}

impl EvalConfig {
    /// Problems of `[eval]`, keys under `prefix`.
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(d) = &self.data {
            p.extend(data_problems(d, &format!("{prefix}.data")));
        }
        if self.weight_axis[0] == self.weight_axis[1] {
            p.push(format!(
                "{prefix}.weight_axis must name two different reward components"
            ));
        }
        if self.samples == 0 {
            p.push(format!("{prefix}.samples must be >= 1"));
        }
        if self.instructions == 0 {
            p.push(format!("{prefix}.instructions must be >= 1"));
        }
        p
    }
}
