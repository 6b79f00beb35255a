//! Datasets into [`Query`] values: GSM8K, MATH-500, HH-RLHF, generic tables and the embedded
//! arithmetic task, from a file, a folder of shards, or a hub dataset id in the local cache.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use wst_core::{DataConfig, DatasetKind, EvalConfig, Query, VecSource};

use crate::arith::{arith_queries, level_name, ArithSplit};
use crate::disjoint::{check_disjoint, is_held_out};
use crate::error::{DataError, Result};
use crate::hub;
use crate::rows::{files_in_dir, kind_of, read_file, RawRow};

/// What a dataset kind is called in ids and on the command line.
pub fn kind_name(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Gsm8k => "gsm8k",
        DatasetKind::Math500 => "math500",
        DatasetKind::HhRlhf => "hh-rlhf",
        DatasetKind::Arith => "arith",
        DatasetKind::Generic => "generic",
    }
}

/// Marker that ends the prompt part of an HH-RLHF dialogue.
pub const HH_ASSISTANT: &str = "\n\nAssistant:";

/// A loaded dataset.
#[derive(Debug)]
pub struct Dataset {
    /// Name for baseline caches and logs, e.g. `gsm8k/train` or `arith/single-digit/train`.
    pub id: String,
    /// The queries, in source order (after `limit`).
    pub queries: Vec<Query>,
    /// The files read (empty for the arithmetic task).
    pub files: Vec<PathBuf>,
    /// Column names of the first file.
    pub columns: Vec<String>,
    /// Data rows read, good and bad (blank lines not counted).
    pub rows: usize,
    /// Rows skipped as bad (only with `skip_bad_rows`); each error names file, row and field.
    pub skipped: Vec<DataError>,
}

impl Dataset {
    /// A training source over the queries, reshuffled per epoch with `seed` when `shuffle`.
    pub fn into_source(self, seed: u64, shuffle: bool) -> VecSource {
        VecSource::new(self.id, self.queries, seed, shuffle)
    }
}

/// The data files a config names: the file itself, the files of a folder (of `split`, when
/// given), or those of a hub dataset id in the local hub cache.
pub fn resolve_files(kind: DatasetKind, path: &str, split: Option<&str>) -> Result<Vec<PathBuf>> {
    let p = Path::new(path);
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    if p.is_dir() {
        return files_in_dir(p, split);
    }
    if hub::looks_like_hub_id(path) {
        let default_config = (kind == DatasetKind::Gsm8k).then_some("main");
        return hub::resolve(path, split, default_config);
    }
    Err(DataError::io(
        p,
        "no such file or folder (and not an `org/name` hub dataset id)",
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

/// The split a config reads: `split`, else the file name up to its first dot (`test.jsonl.gz`
/// -> `test`), else `train`.
fn split_label(cfg: &DataConfig) -> String {
    if let Some(s) = &cfg.split {
        return s.clone();
    }
    cfg.path
        .as_deref()
        .map(Path::new)
        .filter(|p| p.is_file())
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map(|n| n.split(['.', '-']).next().unwrap_or(n).to_string())
        .unwrap_or_else(|| "train".into())
}

/// The dataset id: kind, the HH-RLHF subset (read from the path) when there is one, and split.
fn dataset_id(cfg: &DataConfig) -> String {
    let split = split_label(cfg);
    let path = cfg.path.as_deref().unwrap_or("");
    match cfg.dataset {
        DatasetKind::Arith => format!("arith/{}/{split}", level_name(cfg.arith_level)),
        DatasetKind::HhRlhf => {
            let subset = Path::new(path).components().rev().find_map(|c| {
                let s = c.as_os_str().to_str()?;
                (s.starts_with("harmless") || s.starts_with("helpful") || s.starts_with("red-team"))
                    .then(|| s.to_string())
            });
            match subset {
                Some(s) => format!("hh-rlhf/{s}/{split}"),
                None => format!("hh-rlhf/{split}"),
            }
        }
        DatasetKind::Generic => {
            let stem = Path::new(path)
                .file_name()
                .and_then(|n| n.to_str())
                .map(|n| n.split('.').next().unwrap_or(n))
                .unwrap_or("generic");
            format!("{stem}/{split}")
        }
        k => format!("{}/{split}", kind_name(k)),
    }
}

/// Which side of a `data.holdout` split a load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Everything not held out (all of it without `holdout`).
    Train,
    /// The held-out fraction.
    HeldOut,
}

/// Loads the queries a `[data]` table names: with `holdout`, those not held out. The arithmetic
/// task generates the training side of its split (or the held-out side for
/// `split = "held-out"`) with `data.seed` or `run_seed`.
pub fn load_dataset(cfg: &DataConfig, run_seed: u64) -> Result<Dataset> {
    load_side(cfg, run_seed, Side::Train)
}

/// The held-out fraction `holdout` of the queries a `[data]` table names (the queries
/// [`load_dataset`] leaves out).
pub fn load_held_out(cfg: &DataConfig, run_seed: u64) -> Result<Dataset> {
    if cfg.holdout.is_none() {
        return Err(DataError::Options(
            "no holdout fraction set (e.g. holdout = 0.2)".into(),
        ));
    }
    load_side(cfg, run_seed, Side::HeldOut)
}

fn load_side(cfg: &DataConfig, run_seed: u64, side: Side) -> Result<Dataset> {
    let id = dataset_id(cfg);
    if cfg.limit == Some(0) {
        return Err(DataError::Options("limit must be >= 1".into()));
    }
    if cfg.dataset == DatasetKind::Arith {
        let split = ArithSplit::parse(cfg.split.as_deref())?;
        let count = cfg
            .limit
            .map_or(cfg.arith_count, |l| l.min(cfg.arith_count));
        let queries = arith_queries(cfg.arith_level, split, count, cfg.seed.unwrap_or(run_seed));
        return Ok(Dataset {
            id: format!("arith/{}/{}", level_name(cfg.arith_level), split.name()),
            rows: queries.len(),
            queries,
            files: Vec::new(),
            columns: vec!["id".into(), "text".into(), "reference".into()],
            skipped: Vec::new(),
        });
    }
    let path = cfg.path.as_deref().ok_or_else(|| {
        DataError::Options(format!(
            "dataset `{}` needs a path (file, folder or hub id)",
            kind_name(cfg.dataset)
        ))
    })?;
    if cfg.dataset == DatasetKind::Generic && cfg.query_field.is_none() {
        return Err(DataError::Options(
            "dataset `generic` needs query_field (the column holding the question)".into(),
        ));
    }
    let files = resolve_files(cfg.dataset, path, cfg.split.as_deref())?;
    let mut out = Dataset {
        id: match (side, cfg.holdout) {
            (Side::HeldOut, Some(h)) => format!("{id}/held-out-{h}"),
            (Side::Train, Some(h)) => format!("{id}/without-held-out-{h}"),
            _ => id.clone(),
        },
        queries: Vec::new(),
        files: files.clone(),
        columns: Vec::new(),
        rows: 0,
        skipped: Vec::new(),
    };
    let mut seen_ids = BTreeSet::new();
    'files: for file in &files {
        let table = read_file(file)?;
        if out.columns.is_empty() {
            out.columns = table.columns;
        }
        for row in table.rows {
            let index = out.rows;
            out.rows += 1;
            let parsed = row.and_then(|r| {
                let q = to_query(cfg, &id, index, &r)?;
                if !seen_ids.insert(q.id.clone()) {
                    return Err(DataError::BadValue {
                        path: r.path.clone(),
                        pos: r.pos,
                        field: cfg.id_field.clone().unwrap_or_else(|| "id".into()),
                        reason: format!("duplicate query id `{}`", q.id),
                    });
                }
                Ok(q)
            });
            match parsed {
                Ok(q) => {
                    if let Some(h) = cfg.holdout {
                        if is_held_out(&q, h) != (side == Side::HeldOut) {
                            continue;
                        }
                    }
                    out.queries.push(q);
                    if cfg.limit.is_some_and(|l| out.queries.len() >= l) {
                        break 'files;
                    }
                }
                Err(e) if cfg.skip_bad_rows && e.is_row_error() => out.skipped.push(e),
                Err(e) => return Err(e),
            }
        }
    }
    if out.queries.is_empty() {
        return Err(DataError::Empty {
            path: PathBuf::from(path),
            skipped: out.skipped.len(),
        });
    }
    if !out.skipped.is_empty() {
        tracing::warn!(
            dataset = %out.id,
            skipped = out.skipped.len(),
            first = %out.skipped[0],
            "skipped bad rows"
        );
    }
    Ok(out)
}

/// The training prompt source of a `[data]` table: its queries, shuffled per epoch (when
/// `data.shuffle`) with `data.seed` or `run_seed`.
pub fn prompt_source(cfg: &DataConfig, run_seed: u64) -> Result<VecSource> {
    Ok(load_dataset(cfg, run_seed)?.into_source(cfg.seed.unwrap_or(run_seed), cfg.shuffle))
}

/// Seed offset that makes evaluation draws differ from training draws of the same run seed.
const EVAL_SEED: u64 = 0x5EED_E7A1_0000_0000;

/// The evaluation queries of a run (at most `eval.limit`):
/// - `[eval.data]` when set (for `arith`, the held-out side unless it names `split = "train"`;
///   with `holdout`, its held-out fraction);
/// - else, when `[data]` sets `holdout`, the held-out fraction of `[data]`;
/// - else for `arith`, held-out problems of `[data]`'s level;
/// - else, when `[data]` reads split `train`, the same source with split `test`;
/// - else an error asking for `[eval.data]`.
///
/// With `shuffle` the queries are a seeded sample; otherwise the first ones in source order.
/// [`check_eval_disjoint`] also checks that none of them is a training query.
pub fn eval_queries(eval: &EvalConfig, data: &DataConfig, run_seed: u64) -> Result<Vec<Query>> {
    let cfg =
        match &eval.data {
            Some(d) => {
                let mut d = d.clone();
                if d.dataset == DatasetKind::Arith && d.split.is_none() {
                    d.split = Some("held-out".into());
                }
                d
            }
            None if data.holdout.is_some() => DataConfig {
                limit: None,
                ..data.clone()
            },
            None if data.dataset == DatasetKind::Arith => DataConfig {
                split: Some("held-out".into()),
                seed: Some(data.seed.unwrap_or(run_seed) ^ EVAL_SEED),
                ..data.clone()
            },
            None if data.split.as_deref() == Some("train") => DataConfig {
                split: Some("test".into()),
                ..data.clone()
            },
            None => return Err(DataError::Options(
                "[eval.data] is not set and [data] does not read a `train` split, so no held-out \
                 queries are known; set [eval.data]"
                    .into(),
            )),
        };
    let seed = cfg.seed.unwrap_or(run_seed ^ EVAL_SEED);
    let mut cfg = cfg;
    if cfg.dataset == DatasetKind::Arith {
        cfg.arith_count = eval.limit.min(cfg.limit.unwrap_or(usize::MAX));
        cfg.seed = Some(seed);
        return Ok(load_dataset(&cfg, run_seed)?.queries);
    }
    let mut queries = match cfg.holdout {
        Some(_) => load_held_out(&cfg, run_seed)?.queries,
        None => load_dataset(&cfg, run_seed)?.queries,
    };
    if cfg.shuffle {
        let mut state = seed;
        for i in (1..queries.len()).rev() {
            let j = (wst_core::splitmix64(&mut state) % (i as u64 + 1)) as usize;
            queries.swap(i, j);
        }
    }
    queries.truncate(eval.limit);
    Ok(queries)
}

/// The evaluation queries of a run ([`eval_queries`]), refused with [`DataError::Overlap`] when
/// any of them is also a training query of `[data]` (same id or same normalised text).
pub fn check_eval_disjoint(
    eval: &EvalConfig,
    data: &DataConfig,
    run_seed: u64,
) -> Result<Vec<Query>> {
    let train = load_dataset(data, run_seed)?;
    let queries = eval_queries(eval, data, run_seed)?;
    check_disjoint(&train.queries, &queries)?;
    Ok(queries)
}

fn field<'a>(row: &'a RawRow, name: &str) -> Result<&'a Value> {
    row.fields.get(name).ok_or_else(|| DataError::MissingField {
        path: row.path.clone(),
        pos: row.pos,
        field: name.to_string(),
        available: row.fields.keys().cloned().collect::<Vec<_>>().join(", "),
    })
}

/// A field that must be a string.
fn string(row: &RawRow, name: &str) -> Result<String> {
    match field(row, name)? {
        Value::String(s) => Ok(s.clone()),
        other => Err(type_error(row, name, "a string", other)),
    }
}

/// A field that may be a string or a number (ids, levels, generic references).
fn scalar(row: &RawRow, name: &str) -> Result<String> {
    match field(row, name)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(type_error(row, name, "a string or a number", other)),
    }
}

fn type_error(row: &RawRow, name: &str, expected: &'static str, found: &Value) -> DataError {
    DataError::FieldType {
        path: row.path.clone(),
        pos: row.pos,
        field: name.to_string(),
        expected,
        found: kind_of(found).to_string(),
    }
}

fn bad_value(row: &RawRow, name: &str, reason: impl Into<String>) -> DataError {
    DataError::BadValue {
        path: row.path.clone(),
        pos: row.pos,
        field: name.to_string(),
        reason: reason.into(),
    }
}

/// The prompt of an HH-RLHF dialogue: everything up to and including its last `\n\nAssistant:`.
pub fn hh_prompt(dialogue: &str) -> Option<&str> {
    dialogue
        .rfind(HH_ASSISTANT)
        .map(|i| &dialogue[..i + HH_ASSISTANT.len()])
}

fn to_query(cfg: &DataConfig, id: &str, index: usize, row: &RawRow) -> Result<Query> {
    let row_id = format!("{id}/{index}");
    match cfg.dataset {
        DatasetKind::Gsm8k => {
            let question = string(row, "question")?;
            let answer = string(row, "answer")?;
            let reference = wst_core::parse_gsm8k_reference(&answer).ok_or_else(|| {
                bad_value(
                    row,
                    "answer",
                    "no number after `####` (the GSM8K final answer)",
                )
            })?;
            Ok(Query::new(row_id, question)
                .with_reference(reference)
                .with_meta("solution", answer))
        }
        DatasetKind::Math500 => {
            let problem = string(row, "problem")?;
            let answer = scalar(row, "answer")?;
            let mut q = Query::new(row_id, problem).with_reference(answer);
            for key in ["subject", "level", "unique_id"] {
                if row.fields.get(key).is_some_and(|v| !v.is_null()) {
                    q = q.with_meta(key, scalar(row, key)?);
                }
            }
            if let Some(uid) = q.metadata.get("unique_id") {
                q.id = format!("math500/{uid}");
            }
            Ok(q)
        }
        DatasetKind::HhRlhf => {
            let chosen = string(row, "chosen")?;
            let rejected = string(row, "rejected")?;
            let prompt = hh_prompt(&chosen)
                .ok_or_else(|| bad_value(row, "chosen", "no `\\n\\nAssistant:` turn"))?
                .to_string();
            Ok(Query::new(row_id, prompt)
                .with_meta("chosen", chosen)
                .with_meta("rejected", rejected))
        }
        DatasetKind::Generic => {
            let qf = cfg.query_field.as_deref().unwrap_or("query");
            let mut q = Query::new(row_id, scalar(row, qf)?);
            if let Some(rf) = &cfg.reference_field {
                if !field(row, rf)?.is_null() {
                    q.reference = Some(scalar(row, rf)?);
                }
            }
            if let Some(idf) = &cfg.id_field {
                let v = scalar(row, idf)?;
                if v.is_empty() {
                    return Err(bad_value(row, idf, "empty id"));
                }
                q.id = v;
            }
            Ok(q)
        }
        DatasetKind::Arith => Err(DataError::Options(
            "the arithmetic task is generated, not read".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hh_prompt_ends_at_last_assistant_turn() {
        let d = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant: ciao";
        assert_eq!(
            hh_prompt(d),
            Some("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye\n\nAssistant:")
        );
        assert_eq!(hh_prompt("\n\nHuman: only"), None);
    }
}
