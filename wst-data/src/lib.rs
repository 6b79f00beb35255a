//! Datasets, rollout and baseline stores, and reports for **wst**.
//!
//! Loads GSM8K, MATH-500, HH-RLHF and generic tables into [`wst_core::Query`] values (from JSON
//! Lines, gzip JSON Lines, Parquet, folders of shards, or hub dataset ids found in the local
//! Hugging Face cache), generates the embedded arithmetic task with a fixed train / held-out
//! split, and stores rollouts and baselines as Parquet. Writers use `arrow`/`parquet` directly
//! (exact control of the schema, atomic temp-file + rename); readers and reports use polars lazy
//! scans, the same way an analyst would read a run. It does not link libtorch.
//!
//! Rollouts of a run, one Parquet file per step, written atomically and read back (or scanned
//! lazily with polars, [`scan_rollouts`]):
//!
//! ```
//! use wst_core::{RewardComponents, RolloutRecord};
//! use wst_data::RolloutStore;
//!
//! let run = tempfile::tempdir()?;
//! let record = RolloutRecord {
//!     run_id: "demo".into(),
//!     step: 0,
//!     query_id: "gsm8k/0".into(),
//!     query: "What is 2 + 3?".into(),
//!     group_index: 0,
//!     instruction: "Add the two numbers.".into(),
//!     instruction_tokens: 5,
//!     truncated: false,
//!     replies: vec![Some("5".into()), None],
//!     reward_components: vec![
//!         RewardComponents::from_pairs([("correct", 1.0)]),
//!         RewardComponents::default(),
//!     ],
//!     rewards: vec![Some(1.0), None],
//!     reward_mean: Some(1.0),
//!     baseline: 0.5,
//!     reward: Some(0.5),
//!     advantage: 0.0,
//!     teacher_logprob_sum: -3.25,
//!     created_ms: 0,
//!     scored_ms: 1,
//! };
//! let store = RolloutStore::open(run.path())?;
//! store.write(0, &[record.clone()])?;
//! assert_eq!(store.steps()?, vec![0]);
//! assert_eq!(store.read_all()?, vec![record]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arith;
mod atomic;
mod baselines;
mod datasets;
mod disjoint;
mod error;
mod evals;
mod hub;
mod report;
mod rollouts;
mod rows;

pub use arith::{
    arith_held_out, arith_queries, arith_split, arith_universe, level_name, ArithSplit,
};
pub use atomic::write_file_atomic;
pub use baselines::{baselines_dir, ParquetBaselines, BASELINE_COLUMNS};
pub use datasets::{
    check_eval_disjoint, eval_queries, hh_prompt, kind_name, load_dataset, load_held_out,
    prompt_source, resolve_files, Dataset, HH_ASSISTANT,
};
pub use disjoint::{check_disjoint, is_held_out};
pub use error::{DataError, Result, RowPos};
pub use evals::{write_eval_samples, EVAL_SCHEMA_DOC};
pub use hub::{
    looks_like_hub_id, resolve as resolve_hub_dataset, resolve_with as resolve_hub_dataset_with,
};
pub use report::{read_metrics, run_report, step_frame, RunReport, StepSummary, METRICS_FILE};
pub use rollouts::{
    frame_to_records, read_rollout_file, read_rollouts, rollout_files, rollout_schema,
    rollouts_dir, rollouts_to_batch, scan_rollouts, step_file_name, write_rollouts, RolloutStore,
    ROLLOUT_SCHEMA_DOC,
};
pub use rows::{files_in_dir, read_file, Format, RawRow, RawTable};
pub use wst_core::parse_gsm8k_reference;
