//! The baseline store: per-query student baselines `s_i` in Parquet, shared across runs.
//!
//! A store is a folder of part files `part-<ms>-<pid>-<n>.parquet`. Each [`BaselineStore::put`]
//! writes one new part atomically, so several runs may append to the same folder at once without
//! losing each other's values; opening reads every part (a later part wins on equal keys).
//! [`ParquetBaselines::compact`] merges the parts into one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int64Builder, StringBuilder, UInt32Builder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use wst_core::{BaselineKey, BaselineStore, BaselineValue};

use crate::atomic::{now_ms, remove_stale_temps, write_parquet_atomic};
use crate::error::{DataError, Result};
use crate::rollouts::scan_files;

/// The baseline columns: key (7), value (3) and when it was written.
pub const BASELINE_COLUMNS: [&str; 11] = [
    "student_id",
    "dataset",
    "query_id",
    "query_hash",
    "template_hash",
    "reward_hash",
    "sampling",
    "mean",
    "samples",
    "failures",
    "written_ms",
];

static PART: AtomicU64 = AtomicU64::new(0);

/// The conventional baseline folder of an output folder (`runs/baselines`), shared by its runs.
pub fn baselines_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("baselines")
}

/// Baselines cached in a folder of Parquet parts, loaded into memory on open.
#[derive(Debug, Clone)]
pub struct ParquetBaselines {
    dir: PathBuf,
    values: BTreeMap<BaselineKey, BaselineValue>,
}

fn schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        s("student_id"),
        s("dataset"),
        s("query_id"),
        s("query_hash"),
        s("template_hash"),
        s("reward_hash"),
        s("sampling"),
        Field::new("mean", DataType::Float64, false),
        Field::new("samples", DataType::UInt32, false),
        Field::new("failures", DataType::UInt32, false),
        Field::new("written_ms", DataType::Int64, false),
    ]))
}

fn to_batch(entries: &[(BaselineKey, BaselineValue)]) -> Result<RecordBatch> {
    let mut keys: [StringBuilder; 7] = std::array::from_fn(|_| StringBuilder::new());
    let mut mean = Float64Builder::new();
    let mut samples = UInt32Builder::new();
    let mut failures = UInt32Builder::new();
    let mut written = Int64Builder::new();
    let now = now_ms();
    for (k, v) in entries {
        keys[0].append_value(&k.student_id);
        keys[1].append_value(&k.dataset);
        keys[2].append_value(&k.query_id);
        keys[3].append_value(&k.query_hash);
        keys[4].append_value(&k.template_hash);
        keys[5].append_value(&k.reward_hash);
        keys[6].append_value(&k.sampling);
        mean.append_value(v.mean);
        samples.append_value(v.samples);
        failures.append_value(v.failures);
        written.append_value(now);
    }
    let mut cols: Vec<ArrayRef> = keys
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    cols.push(Arc::new(mean.finish()));
    cols.push(Arc::new(samples.finish()));
    cols.push(Arc::new(failures.finish()));
    cols.push(Arc::new(written.finish()));
    RecordBatch::try_new(schema(), cols).map_err(|source| DataError::Arrow {
        path: PathBuf::from("<baselines>"),
        what: "cannot build the baseline batch".into(),
        source,
    })
}

impl ParquetBaselines {
    /// Opens (creating) the store folder and loads every part.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "cannot create", e))?;
        // Other runs may be writing here right now: only remove temp files that are old.
        remove_stale_temps(&dir, std::time::Duration::from_secs(3600))?;
        let mut store = ParquetBaselines {
            dir,
            values: BTreeMap::new(),
        };
        store.reload()?;
        Ok(store)
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of cached baselines.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Every cached baseline.
    pub fn entries(&self) -> &BTreeMap<BaselineKey, BaselineValue> {
        &self.values
    }

    /// The part files, oldest first.
    pub fn parts(&self) -> Result<Vec<PathBuf>> {
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| DataError::io(&self.dir, "cannot list", e))?;
        let mut parts: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
            })
            .collect();
        parts.sort();
        Ok(parts)
    }

    /// Re-reads every part (picking up values other runs appended since `open`). Parts written
    /// before the key held `query_hash` and `reward_hash` are skipped (their values could belong
    /// to another question or reward): those baselines are computed again.
    pub fn reload(&mut self) -> Result<()> {
        let parts = self.parts()?;
        self.values.clear();
        let mut old_rows = 0;
        if parts.is_empty() {
            return Ok(());
        }
        let what = format!("baselines in {}", self.dir.display());
        for part in &parts {
            let df = scan_files(std::slice::from_ref(part), &what)?
                .collect()
                .map_err(|e| DataError::polars(format!("{}: cannot read", part.display()), e))?;
            let bad = |reason: String| DataError::Schema {
                path: part.clone(),
                reason,
            };
            let get = |name: &str| {
                df.column(name)
                    .map_err(|_| bad(format!("missing baseline column `{name}`")))
            };
            let strs = |name: &str| -> Result<Vec<String>> {
                Ok(get(name)?
                    .str()
                    .map_err(|e| bad(format!("column `{name}`: {e}")))?
                    .iter()
                    .map(|s| s.unwrap_or_default().to_string())
                    .collect())
            };
            if df.column("query_hash").is_err() || df.column("reward_hash").is_err() {
                old_rows += df.height();
                continue;
            }
            let (student, dataset, query, query_hash, template, reward_hash, sampling) = (
                strs("student_id")?,
                strs("dataset")?,
                strs("query_id")?,
                strs("query_hash")?,
                strs("template_hash")?,
                strs("reward_hash")?,
                strs("sampling")?,
            );
            let mean = get("mean")?
                .f64()
                .map_err(|e| bad(format!("column `mean`: {e}")))?;
            let samples = get("samples")?
                .u32()
                .map_err(|e| bad(format!("column `samples`: {e}")))?;
            let failures = get("failures")?
                .u32()
                .map_err(|e| bad(format!("column `failures`: {e}")))?;
            for i in 0..df.height() {
                let key = BaselineKey {
                    student_id: student[i].clone(),
                    dataset: dataset[i].clone(),
                    query_id: query[i].clone(),
                    query_hash: query_hash[i].clone(),
                    template_hash: template[i].clone(),
                    reward_hash: reward_hash[i].clone(),
                    sampling: sampling[i].clone(),
                };
                let value = BaselineValue {
                    mean: mean
                        .get(i)
                        .ok_or_else(|| bad(format!("null mean in row {i}")))?,
                    samples: samples.get(i).unwrap_or(0),
                    failures: failures.get(i).unwrap_or(0),
                };
                self.values.insert(key, value);
            }
        }
        if old_rows > 0 {
            tracing::warn!(
                store = %self.dir.display(),
                rows = old_rows,
                "ignoring baselines of an older cache format (no query or reward hash in the key); \
                 they are computed again"
            );
        }
        Ok(())
    }

    /// Writes the given entries as a new part file (atomically) and records them in memory.
    pub fn append(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let name = format!(
            "part-{:013}-{}-{:06}.parquet",
            now_ms(),
            std::process::id(),
            PART.fetch_add(1, Ordering::Relaxed)
        );
        write_parquet_atomic(&self.dir.join(name), &to_batch(entries)?)?;
        for (k, v) in entries {
            self.values.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    /// Merges every part into one (after reloading, so concurrent appends are kept up to now).
    pub fn compact(&mut self) -> Result<()> {
        self.reload()?;
        let old = self.parts()?;
        if old.len() <= 1 {
            return Ok(());
        }
        let all: Vec<(BaselineKey, BaselineValue)> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.append(&all)?;
        for p in old {
            std::fs::remove_file(&p).map_err(|e| DataError::io(&p, "cannot remove", e))?;
        }
        Ok(())
    }
}

impl BaselineStore for ParquetBaselines {
    fn get(&self, key: &BaselineKey) -> Option<BaselineValue> {
        self.values.get(key).cloned()
    }

    fn put(&mut self, entries: &[(BaselineKey, BaselineValue)]) -> wst_core::Result<()> {
        self.append(entries)?;
        Ok(())
    }
}
