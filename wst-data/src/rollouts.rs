//! The rollout store: one Parquet file per training step, `RUN_DIR/rollouts/step-NNNNNN.parquet`,
//! each written atomically; and a reader that loads a whole run back with a polars lazy scan.
//!
//! The schema (one row per teacher sample) is in the crate README and [`ROLLOUT_SCHEMA_DOC`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use polars::prelude::*;
use wst_core::{RewardComponents, RolloutRecord, RolloutSink};

use crate::atomic::{remove_stale_temps, write_parquet_atomic};
use crate::error::{DataError, Result};

/// The rollout columns with their Arrow types and meaning, in file order (what the README lists).
pub const ROLLOUT_SCHEMA_DOC: &[(&str, &str, &str)] = &[
    ("run_id", "utf8", "the training run"),
    ("step", "uint64", "optimiser step the rollout was collected for (0-based)"),
    ("query_id", "utf8", "the query's id (e.g. `gsm8k/train/17`)"),
    ("query", "utf8", "the query text"),
    ("group_index", "uint32", "index of this teacher sample within its query's group (0..G)"),
    ("instruction", "utf8", "the teacher's instruction m1"),
    ("instruction_tokens", "uint32", "teacher tokens in the instruction"),
    ("truncated", "bool", "the instruction hit the length cap"),
    ("replies", "list<utf8?>", "the K student replies; null where a reply failed after retries"),
    ("rewards", "list<float64?>", "scalar reward per reply; null for a failed reply"),
    ("reward_component_names", "list<utf8>", "names of the reward components (sorted union over the replies)"),
    ("reward_component_values", "list<list<float64?>>", "per reply, the component values aligned with `reward_component_names` (null: the reply has no such component, e.g. it failed)"),
    ("reward_mean", "float64?", "mean scalar reward of the completed replies; null when all failed"),
    ("baseline", "float64", "the student's baseline s_i on this query (no instruction)"),
    ("reward", "float64?", "reward_mean - baseline: what the teacher is trained on"),
    ("advantage", "float64", "the GRPO advantage given to this sample"),
    ("teacher_logprob_sum", "float64", "sum of the teacher's log-probabilities of the instruction"),
    ("created_ms", "int64", "when the teacher sample was drawn (ms since the Unix epoch)"),
    ("scored_ms", "int64", "when its rewards were known (ms since the Unix epoch)"),
    ("num_replies", "uint32", "number of replies (derived, for queries)"),
    ("failures", "uint32", "number of failed replies (derived, for queries)"),
];

/// The Arrow schema of rollout files.
pub fn rollout_schema() -> Arc<Schema> {
    let list = |inner: DataType, nullable: bool| {
        DataType::List(Arc::new(Field::new("item", inner, nullable)))
    };
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("step", DataType::UInt64, false),
        Field::new("query_id", DataType::Utf8, false),
        Field::new("query", DataType::Utf8, false),
        Field::new("group_index", DataType::UInt32, false),
        Field::new("instruction", DataType::Utf8, false),
        Field::new("instruction_tokens", DataType::UInt32, false),
        Field::new("truncated", DataType::Boolean, false),
        Field::new("replies", list(DataType::Utf8, true), false),
        Field::new("rewards", list(DataType::Float64, true), false),
        Field::new("reward_component_names", list(DataType::Utf8, true), false),
        Field::new(
            "reward_component_values",
            list(list(DataType::Float64, true), true),
            false,
        ),
        Field::new("reward_mean", DataType::Float64, true),
        Field::new("baseline", DataType::Float64, false),
        Field::new("reward", DataType::Float64, true),
        Field::new("advantage", DataType::Float64, false),
        Field::new("teacher_logprob_sum", DataType::Float64, false),
        Field::new("created_ms", DataType::Int64, false),
        Field::new("scored_ms", DataType::Int64, false),
        Field::new("num_replies", DataType::UInt32, false),
        Field::new("failures", DataType::UInt32, false),
    ]))
}

/// Rollout records as one Arrow record batch with [`rollout_schema`].
pub fn rollouts_to_batch(records: &[RolloutRecord]) -> Result<RecordBatch> {
    let n = records.len();
    let mut run_id = StringBuilder::new();
    let mut step = UInt64Builder::with_capacity(n);
    let mut query_id = StringBuilder::new();
    let mut query = StringBuilder::new();
    let mut group_index = UInt32Builder::with_capacity(n);
    let mut instruction = StringBuilder::new();
    let mut instruction_tokens = UInt32Builder::with_capacity(n);
    let mut truncated = BooleanBuilder::with_capacity(n);
    let mut replies = ListBuilder::new(StringBuilder::new());
    let mut rewards = ListBuilder::new(Float64Builder::new());
    let mut comp_names = ListBuilder::new(StringBuilder::new());
    let mut comp_values = ListBuilder::new(ListBuilder::new(Float64Builder::new()));
    let mut reward_mean = Float64Builder::with_capacity(n);
    let mut baseline = Float64Builder::with_capacity(n);
    let mut reward = Float64Builder::with_capacity(n);
    let mut advantage = Float64Builder::with_capacity(n);
    let mut logprob = Float64Builder::with_capacity(n);
    let mut created = Int64Builder::with_capacity(n);
    let mut scored = Int64Builder::with_capacity(n);
    let mut num_replies = UInt32Builder::with_capacity(n);
    let mut failures = UInt32Builder::with_capacity(n);

    for r in records {
        run_id.append_value(&r.run_id);
        step.append_value(r.step);
        query_id.append_value(&r.query_id);
        query.append_value(&r.query);
        group_index.append_value(r.group_index);
        instruction.append_value(&r.instruction);
        instruction_tokens.append_value(r.instruction_tokens);
        truncated.append_value(r.truncated);
        for reply in &r.replies {
            replies.values().append_option(reply.as_deref());
        }
        replies.append(true);
        for x in &r.rewards {
            rewards.values().append_option(*x);
        }
        rewards.append(true);
        let names: BTreeSet<&str> = r.reward_components.iter().flat_map(|c| c.names()).collect();
        for name in &names {
            comp_names.values().append_value(name);
        }
        comp_names.append(true);
        for c in &r.reward_components {
            let inner = comp_values.values();
            for name in &names {
                inner.values().append_option(c.get(name));
            }
            inner.append(true);
        }
        comp_values.append(true);
        reward_mean.append_option(r.reward_mean);
        baseline.append_value(r.baseline);
        reward.append_option(r.reward);
        advantage.append_value(r.advantage);
        logprob.append_value(r.teacher_logprob_sum);
        created.append_value(r.created_ms);
        scored.append_value(r.scored_ms);
        num_replies.append_value(r.replies.len() as u32);
        failures.append_value(r.failures() as u32);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(run_id.finish()),
        Arc::new(step.finish()),
        Arc::new(query_id.finish()),
        Arc::new(query.finish()),
        Arc::new(group_index.finish()),
        Arc::new(instruction.finish()),
        Arc::new(instruction_tokens.finish()),
        Arc::new(truncated.finish()),
        Arc::new(replies.finish()),
        Arc::new(rewards.finish()),
        Arc::new(comp_names.finish()),
        Arc::new(comp_values.finish()),
        Arc::new(reward_mean.finish()),
        Arc::new(baseline.finish()),
        Arc::new(reward.finish()),
        Arc::new(advantage.finish()),
        Arc::new(logprob.finish()),
        Arc::new(created.finish()),
        Arc::new(scored.finish()),
        Arc::new(num_replies.finish()),
        Arc::new(failures.finish()),
    ];
    // The builders' list fields are nullable; cast to the declared schema's field names/nullability.
    let schema = rollout_schema();
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c)
            } else {
                arrow::compute::cast(&c, f.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| DataError::Arrow {
            path: PathBuf::from("<rollouts>"),
            what: "cannot build the rollout batch".into(),
            source,
        })?;
    RecordBatch::try_new(schema, columns).map_err(|source| DataError::Arrow {
        path: PathBuf::from("<rollouts>"),
        what: "cannot build the rollout batch".into(),
        source,
    })
}

/// Writes rollout records to one Parquet file, atomically (temp file + rename).
pub fn write_rollouts(path: &Path, records: &[RolloutRecord]) -> Result<()> {
    let batch = rollouts_to_batch(records)?;
    write_parquet_atomic(path, &batch)
}

/// The file name of one step: `step-NNNNNN.parquet`.
pub fn step_file_name(step: u64) -> String {
    format!("step-{step:06}.parquet")
}

fn parse_step_file(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?
        .strip_suffix(".parquet")?
        .parse()
        .ok()
}

/// The rollout folder of a run directory.
pub fn rollouts_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(wst_core::layout::ROLLOUTS_DIR)
}

/// The step files of a run, sorted by step.
pub fn rollout_files(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let dir = rollouts_dir(run_dir);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, "cannot list rollouts", e))?;
    let mut out: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let step = parse_step_file(e.file_name().to_str()?)?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A lazy polars scan over Parquet files (as given, in order).
pub(crate) fn scan_files(files: &[PathBuf], what: &str) -> Result<LazyFrame> {
    let paths = files
        .iter()
        .map(|p| {
            PlRefPath::try_from_path(p)
                .map_err(|e| DataError::polars(format!("{what}: bad path {}", p.display()), e))
        })
        .collect::<Result<Vec<_>>>()?;
    LazyFrame::scan_parquet_files(paths.into_iter().collect(), ScanArgsParquet::default())
        .map_err(|e| DataError::polars(format!("{what}: cannot scan"), e))
}

/// A lazy polars scan over every step file of a run (all rollout columns).
pub fn scan_rollouts(run_dir: &Path) -> Result<LazyFrame> {
    let files: Vec<PathBuf> = rollout_files(run_dir)?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if files.is_empty() {
        return Err(DataError::NoFiles {
            path: rollouts_dir(run_dir),
            split: None,
        });
    }
    scan_files(&files, &format!("rollouts of {}", run_dir.display()))
}

/// Reads every rollout of a run (all steps, in step order) back into records.
pub fn read_rollouts(run_dir: &Path) -> Result<Vec<RolloutRecord>> {
    let what = format!("rollouts of {}", run_dir.display());
    let df = scan_rollouts(run_dir)?
        .collect()
        .map_err(|e| DataError::polars(format!("{what}: cannot read"), e))?;
    frame_to_records(&df, &rollouts_dir(run_dir))
}

/// Reads one rollout file back into records.
pub fn read_rollout_file(path: &Path) -> Result<Vec<RolloutRecord>> {
    let what = format!("rollout file {}", path.display());
    let df = scan_files(&[path.to_path_buf()], &what)?
        .collect()
        .map_err(|e| DataError::polars(format!("{what}: cannot read"), e))?;
    frame_to_records(&df, path)
}

fn col<'a>(df: &'a DataFrame, name: &str, path: &Path) -> Result<&'a Column> {
    df.column(name).map_err(|_| DataError::Schema {
        path: path.to_path_buf(),
        reason: format!("missing rollout column `{name}`"),
    })
}

fn typed<T>(r: PolarsResult<T>, name: &str, path: &Path) -> Result<T> {
    r.map_err(|e| DataError::Schema {
        path: path.to_path_buf(),
        reason: format!("rollout column `{name}` has the wrong type: {e}"),
    })
}

fn required<T>(v: Option<T>, name: &str, row: usize, path: &Path) -> Result<T> {
    v.ok_or_else(|| DataError::Schema {
        path: path.to_path_buf(),
        reason: format!("rollout column `{name}` is null in row {row}"),
    })
}

/// Converts a polars frame with the rollout columns into records.
pub fn frame_to_records(df: &DataFrame, path: &Path) -> Result<Vec<RolloutRecord>> {
    macro_rules! typed_col {
        ($name:literal, $method:ident) => {
            typed(col(df, $name, path)?.$method(), $name, path)?
        };
    }
    let run_id = typed_col!("run_id", str);
    let step = typed_col!("step", u64);
    let query_id = typed_col!("query_id", str);
    let query = typed_col!("query", str);
    let group_index = typed_col!("group_index", u32);
    let instruction = typed_col!("instruction", str);
    let instruction_tokens = typed_col!("instruction_tokens", u32);
    let truncated = typed_col!("truncated", bool);
    let replies = typed_col!("replies", list);
    let rewards = typed_col!("rewards", list);
    let comp_names = typed_col!("reward_component_names", list);
    let comp_values = typed_col!("reward_component_values", list);
    let reward_mean = typed_col!("reward_mean", f64);
    let baseline = typed_col!("baseline", f64);
    let reward = typed_col!("reward", f64);
    let advantage = typed_col!("advantage", f64);
    let logprob = typed_col!("teacher_logprob_sum", f64);
    let created = typed_col!("created_ms", i64);
    let scored = typed_col!("scored_ms", i64);

    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let list_at = |l: &ListChunked, name: &str| -> Result<Series> {
            required(l.get_as_series(i), name, i, path)
        };
        let replies_s = list_at(replies, "replies")?;
        let replies_v: Vec<Option<String>> = typed(replies_s.str(), "replies", path)?
            .iter()
            .map(|s| s.map(str::to_string))
            .collect();
        let rewards_s = list_at(rewards, "rewards")?;
        let rewards_v: Vec<Option<f64>> = typed(rewards_s.f64(), "rewards", path)?.iter().collect();
        let names_s = list_at(comp_names, "reward_component_names")?;
        let names: Vec<String> = typed(names_s.str(), "reward_component_names", path)?
            .iter()
            .map(|s| s.unwrap_or_default().to_string())
            .collect();
        let values_s = list_at(comp_values, "reward_component_values")?;
        let per_reply = typed(values_s.list(), "reward_component_values", path)?;
        let mut components = Vec::with_capacity(per_reply.len());
        for j in 0..per_reply.len() {
            let mut map = BTreeMap::new();
            if let Some(vals) = per_reply.get_as_series(j) {
                let vals = typed(vals.f64(), "reward_component_values", path)?;
                if vals.len() > names.len() {
                    return Err(DataError::Schema {
                        path: path.to_path_buf(),
                        reason: format!(
                            "row {i}: {} component values for {} names",
                            vals.len(),
                            names.len()
                        ),
                    });
                }
                for (name, v) in names.iter().zip(vals.iter()) {
                    if let Some(v) = v {
                        map.insert(name.clone(), v);
                    }
                }
            }
            components.push(RewardComponents(map));
        }
        out.push(RolloutRecord {
            run_id: required(run_id.get(i), "run_id", i, path)?.to_string(),
            step: required(step.get(i), "step", i, path)?,
            query_id: required(query_id.get(i), "query_id", i, path)?.to_string(),
            query: required(query.get(i), "query", i, path)?.to_string(),
            group_index: required(group_index.get(i), "group_index", i, path)?,
            instruction: required(instruction.get(i), "instruction", i, path)?.to_string(),
            instruction_tokens: required(instruction_tokens.get(i), "instruction_tokens", i, path)?,
            truncated: required(truncated.get(i), "truncated", i, path)?,
            replies: replies_v,
            reward_components: components,
            rewards: rewards_v,
            reward_mean: reward_mean.get(i),
            baseline: required(baseline.get(i), "baseline", i, path)?,
            reward: reward.get(i),
            advantage: required(advantage.get(i), "advantage", i, path)?,
            teacher_logprob_sum: required(logprob.get(i), "teacher_logprob_sum", i, path)?,
            created_ms: required(created.get(i), "created_ms", i, path)?,
            scored_ms: required(scored.get(i), "scored_ms", i, path)?,
        });
    }
    Ok(out)
}

/// Rollouts of one run directory: `RUN_DIR/rollouts/step-NNNNNN.parquet`, one file per step,
/// each written atomically. Writing a step again (a resumed run redoing it) replaces the file.
#[derive(Debug, Clone)]
pub struct RolloutStore {
    run_dir: PathBuf,
    dir: PathBuf,
}

impl RolloutStore {
    /// Opens (creating) the rollout folder of `run_dir` and removes temp files that a killed
    /// writer left there.
    pub fn open(run_dir: impl AsRef<Path>) -> Result<Self> {
        let run_dir = run_dir.as_ref().to_path_buf();
        let dir = rollouts_dir(&run_dir);
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "cannot create", e))?;
        let removed = remove_stale_temps(&dir, std::time::Duration::ZERO)?;
        if removed > 0 {
            tracing::info!(dir = %dir.display(), removed, "removed partial rollout files of an interrupted write");
        }
        Ok(RolloutStore { run_dir, dir })
    }

    /// The rollout folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one step.
    pub fn step_path(&self, step: u64) -> PathBuf {
        self.dir.join(step_file_name(step))
    }

    /// Writes the records of one step (replacing an earlier file of that step). Every record's
    /// `step` must equal `step`.
    pub fn write(&self, step: u64, records: &[RolloutRecord]) -> Result<PathBuf> {
        if let Some(r) = records.iter().find(|r| r.step != step) {
            return Err(DataError::Options(format!(
                "rollout of query `{}` has step {} but is written as step {step}",
                r.query_id, r.step
            )));
        }
        let path = self.step_path(step);
        write_rollouts(&path, records)?;
        Ok(path)
    }

    /// The steps stored, in order.
    pub fn steps(&self) -> Result<Vec<u64>> {
        Ok(rollout_files(&self.run_dir)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// The records of one step.
    pub fn read_step(&self, step: u64) -> Result<Vec<RolloutRecord>> {
        read_rollout_file(&self.step_path(step))
    }

    /// Every record of the run, in step order.
    pub fn read_all(&self) -> Result<Vec<RolloutRecord>> {
        read_rollouts(&self.run_dir)
    }
}

impl RolloutSink for RolloutStore {
    fn write_step(&mut self, step: u64, records: &[RolloutRecord]) -> wst_core::Result<()> {
        self.write(step, records)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_sort_and_parse() {
        assert_eq!(step_file_name(7), "step-000007.parquet");
        assert_eq!(parse_step_file("step-000007.parquet"), Some(7));
        assert_eq!(parse_step_file("step-1234567.parquet"), Some(1_234_567));
        assert_eq!(parse_step_file(".step-000007.parquet.tmp-1-0"), None);
    }
}
