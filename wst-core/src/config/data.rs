//! `[data]` (and `[eval.data]`): which queries, from where.

use serde::{Deserialize, Serialize};

use super::choice::named_choices;

/// Known dataset layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// GSM8K: `question`, `answer` with `#### N`.
    Gsm8k,
    /// MATH-500: `problem`, `answer`, `subject`, `level`, `unique_id`.
    Math500,
    /// HH-RLHF: `chosen`, `rejected` dialogues.
    HhRlhf,
    /// The embedded arithmetic generator (no files).
    #[default]
    Arith,
    /// Any table, with the columns named in `query_field` / `reference_field` / `id_field`.
    Generic,
}

named_choices!(DatasetKind {
    Gsm8k => "gsm8k",
    Math500 => "math500",
    HhRlhf => "hh-rlhf",
    Arith => "arith",
    Generic => "generic",
});

/// Difficulty of the embedded arithmetic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ArithLevel {
    /// `What is a + b?` with single digits.
    #[default]
    SingleDigit,
    /// Two-digit sums.
    TwoDigit,
    /// `+ - *` on small numbers.
    Mixed,
    /// One-sentence word problems.
    Word,
}

named_choices!(ArithLevel {
    SingleDigit => "single-digit",
    TwoDigit => "two-digit",
    Mixed => "mixed",
    Word => "word",
});

/// `[data]` (and `[eval.data]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The layout.
    pub dataset: DatasetKind,
    /// File, folder of Parquet shards, or hub dataset id (not used by `arith`).
    pub path: Option<String>,
    /// Split name for folders and hub datasets (`train`, `test`).
    pub split: Option<String>,
    /// Use at most this many rows.
    pub limit: Option<usize>,
    /// Shuffle (per epoch, seeded) during training.
    pub shuffle: bool,
    /// Seed of the shuffle and of generated data; defaults to `run.seed`.
    pub seed: Option<u64>,
    /// Generic: the query column.
    pub query_field: Option<String>,
    /// Generic: the reference column.
    pub reference_field: Option<String>,
    /// Generic: the id column (else ids are `dataset/row`).
    pub id_field: Option<String>,
    /// Arith: difficulty.
    pub arith_level: ArithLevel,
    /// Arith: number of problems to generate.
    pub arith_count: usize,
    /// Skip malformed rows (counted and reported) instead of failing.
    pub skip_bad_rows: bool,
    /// Hold out this fraction of the queries (a deterministic split by a hash of each query's
    /// normalised text): training reads the rest, `[eval]` the held-out part. For a source that
    /// has no separate test split (MATH-500, one file).
    pub holdout: Option<f64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetKind::Arith,
            path: None,
            split: None,
            limit: None,
            shuffle: true,
            seed: None,
            query_field: None,
            reference_field: None,
            id_field: None,
            arith_level: ArithLevel::SingleDigit,
            arith_count: 1000,
            skip_bad_rows: false,
            holdout: None,
        }
    }
}

pub(super) fn data_problems(d: &DataConfig, prefix: &str) -> Vec<String> {
    let mut p = Vec::new();
    match d.dataset {
        DatasetKind::Arith => {
            if d.arith_count == 0 {
                p.push(format!("{prefix}.arith_count must be >= 1"));
            }
        }
        DatasetKind::Generic => {
            if d.path.is_none() {
                p.push(format!(
                    "{prefix}.path is required for dataset = \"generic\""
                ));
            }
            if d.query_field.is_none() {
                p.push(format!(
                    "{prefix}.query_field is required for dataset = \"generic\""
                ));
            }
        }
        _ => {
            if d.path.is_none() {
                p.push(format!(
                    "{prefix}.path is required for dataset = {:?} (a file, a folder of Parquet \
                     shards, or a hub dataset id)",
                    d.dataset
                ));
            }
        }
    }
    if d.limit == Some(0) {
        p.push(format!("{prefix}.limit must be >= 1 when set"));
    }
    if let Some(h) = d.holdout {
        if !(h > 0.0 && h < 1.0) {
            p.push(format!(
                "{prefix}.holdout must be in (0, 1), e.g. 0.2 (got {h})"
            ));
        }
        if d.dataset == DatasetKind::Arith {
            p.push(format!(
                "{prefix}.holdout: the arithmetic task has its own held-out split (split = \"test\")"
            ));
        }
    }
    p
}
