//! Run reports: a per-step table computed with polars from the rollout files, joined with the
//! trainer's `metrics.jsonl` when the run has one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{DataError, Result};
use crate::rollouts::scan_rollouts;

pub use wst_core::layout::METRICS_FILE;

/// Metrics shown in the text table when the run has them, in this order.
const SHOWN_METRICS: [&str; 6] = [
    "loss",
    "kl",
    "grad_norm",
    "answer_in_instruction",
    "tied_groups",
    "t_step",
];

/// One step of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepSummary {
    /// The step.
    pub step: u64,
    /// Teacher samples (rollout rows).
    pub samples: u64,
    /// Distinct queries.
    pub queries: u64,
    /// Mean student reward with instructions (over samples with a reward).
    pub reward_mean: Option<f64>,
    /// Mean baseline `s_i` (student alone).
    pub baseline: Option<f64>,
    /// Mean uplift `reward_mean - s_i`.
    pub uplift: Option<f64>,
    /// Mean instruction length in teacher tokens.
    pub instruction_tokens: Option<f64>,
    /// Share of instructions cut at the length cap.
    pub truncated_frac: Option<f64>,
    /// Student replies requested.
    pub replies: u64,
    /// Student replies that failed.
    pub failures: u64,
    /// Numeric fields of the step's `metrics.jsonl` line (empty without one).
    pub metrics: BTreeMap<String, f64>,
}

/// The report of one run directory.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// One entry per step with rollouts, in step order.
    pub steps: Vec<StepSummary>,
    /// The per-step frame polars computed (columns as in [`StepSummary`], without metrics).
    pub frame: DataFrame,
}

/// Computes the per-step table of a run from `RUN_DIR/rollouts/*.parquet` (polars) and
/// `RUN_DIR/metrics.jsonl` (if present).
pub fn run_report(run_dir: &Path) -> Result<RunReport> {
    let frame = step_frame(run_dir)?;
    let metrics = read_metrics(run_dir)?;
    let bad = |e: PolarsError| DataError::polars(format!("report of {}", run_dir.display()), e);
    let u = |name: &str| -> Result<Vec<u64>> {
        let c = frame
            .column(name)
            .map_err(bad)?
            .cast(&DataType::UInt64)
            .map_err(bad)?;
        Ok(c.u64()
            .map_err(bad)?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let f = |name: &str| -> Result<Vec<Option<f64>>> {
        let c = frame
            .column(name)
            .map_err(bad)?
            .cast(&DataType::Float64)
            .map_err(bad)?;
        Ok(c.f64().map_err(bad)?.iter().collect())
    };
    let (step, samples, queries, replies, failures) = (
        u("step")?,
        u("samples")?,
        u("queries")?,
        u("replies")?,
        u("failures")?,
    );
    let (reward_mean, baseline, uplift, tokens, truncated) = (
        f("reward_mean")?,
        f("baseline")?,
        f("uplift")?,
        f("instruction_tokens")?,
        f("truncated_frac")?,
    );
    let steps = (0..frame.height())
        .map(|i| StepSummary {
            step: step[i],
            samples: samples[i],
            queries: queries[i],
            reward_mean: reward_mean[i],
            baseline: baseline[i],
            uplift: uplift[i],
            instruction_tokens: tokens[i],
            truncated_frac: truncated[i],
            replies: replies[i],
            failures: failures[i],
            metrics: metrics.get(&step[i]).cloned().unwrap_or_default(),
        })
        .collect();
    Ok(RunReport {
        run_dir: run_dir.to_path_buf(),
        steps,
        frame,
    })
}

/// The per-step aggregate of a run's rollouts as a polars frame: `step`, `samples`, `queries`,
/// `reward_mean`, `baseline`, `uplift`, `instruction_tokens`, `truncated_frac`, `replies`,
/// `failures`.
pub fn step_frame(run_dir: &Path) -> Result<DataFrame> {
    scan_rollouts(run_dir)?
        .group_by([col("step")])
        .agg([
            len().alias("samples"),
            col("query_id").n_unique().alias("queries"),
            col("reward_mean").mean().alias("reward_mean"),
            col("baseline").mean().alias("baseline"),
            col("reward").mean().alias("uplift"),
            col("instruction_tokens")
                .cast(DataType::Float64)
                .mean()
                .alias("instruction_tokens"),
            col("truncated")
                .cast(DataType::Float64)
                .mean()
                .alias("truncated_frac"),
            col("num_replies")
                .cast(DataType::UInt64)
                .sum()
                .alias("replies"),
            col("failures")
                .cast(DataType::UInt64)
                .sum()
                .alias("failures"),
        ])
        .sort(["step"], SortMultipleOptions::default())
        .collect()
        .map_err(|e| DataError::polars(format!("report of {}", run_dir.display()), e))
}

/// The numeric fields of each line of `RUN_DIR/metrics.jsonl`, by step (a later line of the
/// same step wins). A missing file gives an empty map.
pub fn read_metrics(run_dir: &Path) -> Result<BTreeMap<u64, BTreeMap<String, f64>>> {
    let path = run_dir.join(METRICS_FILE);
    let mut out = BTreeMap::new();
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(DataError::io(&path, "cannot open", e)),
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DataError::io(&path, "cannot read", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let pos = crate::RowPos::Line(i + 1);
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|source| DataError::Json {
                path: path.clone(),
                pos,
                source,
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(DataError::NotObject {
                path: path.clone(),
                pos,
                found: crate::rows::kind_of(&value),
            });
        };
        let step =
            map.get("step")
                .and_then(|s| s.as_u64())
                .ok_or_else(|| DataError::MissingField {
                    path: path.clone(),
                    pos,
                    field: "step".into(),
                    available: map.keys().cloned().collect::<Vec<_>>().join(", "),
                })?;
        let nums = map
            .iter()
            .filter(|(k, _)| k.as_str() != "step")
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        out.insert(step, nums);
    }
    Ok(out)
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.prec$}"))
}

impl RunReport {
    /// Metrics shown in the text table: the known ones the run has.
    fn shown_metrics(&self) -> Vec<&'static str> {
        let have: BTreeSet<&str> = self
            .steps
            .iter()
            .flat_map(|s| s.metrics.keys().map(String::as_str))
            .collect();
        SHOWN_METRICS
            .iter()
            .copied()
            .filter(|m| have.contains(m))
            .collect()
    }

    /// The report as an aligned text table, with a totals line.
    pub fn to_table(&self) -> String {
        let metrics = self.shown_metrics();
        let mut header: Vec<String> = [
            "step",
            "samples",
            "queries",
            "reward",
            "baseline",
            "uplift",
            "instr_tok",
            "trunc%",
            "failures",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        header.extend(metrics.iter().map(|m| m.to_string()));
        let mut rows: Vec<Vec<String>> = Vec::new();
        for s in &self.steps {
            let mut r = vec![
                s.step.to_string(),
                s.samples.to_string(),
                s.queries.to_string(),
                opt(s.reward_mean, 4),
                opt(s.baseline, 4),
                opt(s.uplift, 4),
                opt(s.instruction_tokens, 1),
                opt(s.truncated_frac.map(|x| 100.0 * x), 1),
                format!("{}/{}", s.failures, s.replies),
            ];
            r.extend(metrics.iter().map(|m| opt(s.metrics.get(*m).copied(), 4)));
            rows.push(r);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].len())
                    .chain([header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        };
        let _ = writeln!(out, "run {}", self.run_dir.display());
        line(&mut out, &header);
        for r in &rows {
            line(&mut out, r);
        }
        let n = self.steps.len();
        if n > 0 {
            let mean = |f: &dyn Fn(&StepSummary) -> Option<f64>| {
                let v: Vec<f64> = self.steps.iter().filter_map(f).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let failures: u64 = self.steps.iter().map(|s| s.failures).sum();
            let replies: u64 = self.steps.iter().map(|s| s.replies).sum();
            let _ = writeln!(
                out,
                "{n} steps; mean reward {}, mean baseline {}, mean uplift {}, first -> last uplift {} -> {}; failed replies {failures}/{replies}",
                opt(mean(&|s| s.reward_mean), 4),
                opt(mean(&|s| s.baseline), 4),
                opt(mean(&|s| s.uplift), 4),
                opt(self.steps[0].uplift, 4),
                opt(self.steps[n - 1].uplift, 4),
            );
        }
        out
    }
}
