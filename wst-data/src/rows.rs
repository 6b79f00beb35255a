//! Raw rows from JSON Lines (plain or gzip) and Parquet files, as JSON objects with their position.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type, Int8Type};
use arrow::datatypes::{Float32Type, Float64Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use crate::error::{DataError, Result, RowPos};

/// One row of a source file.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// The file it came from.
    pub path: PathBuf,
    /// Its position there.
    pub pos: RowPos,
    /// Its fields.
    pub fields: Map<String, Value>,
}

/// Every row of one file: the columns (first row's keys for JSONL, the schema for Parquet) and
/// each row, or the error that made it unreadable (skippable with `skip_bad_rows`).
#[derive(Debug)]
pub struct RawTable {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows in file order; malformed ones as errors.
    pub rows: Vec<Result<RawRow>>,
}

/// File formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines.
    Jsonl,
    /// Gzip-compressed JSON Lines.
    JsonlGz,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format of a path by its extension.
    pub fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(Format::Jsonl)
        } else if name.ends_with(".jsonl.gz") || name.ends_with(".ndjson.gz") {
            Some(Format::JsonlGz)
        } else if name.ends_with(".parquet") {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

/// Reads all rows of a `.jsonl`, `.jsonl.gz` or `.parquet` file.
pub fn read_file(path: &Path) -> Result<RawTable> {
    match Format::of(path) {
        Some(Format::Jsonl) => {
            let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
            read_jsonl(path, BufReader::new(f))
        }
        Some(Format::JsonlGz) => {
            let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
            read_jsonl(
                path,
                BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(f))),
            )
        }
        Some(Format::Parquet) => read_parquet(path),
        None => Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON type name of a value ("a string", "null", ...), for error messages.
pub(crate) fn kind_of(v: &Value) -> &'static str {
    json_kind(v)
}

fn read_jsonl(path: &Path, mut reader: impl BufRead) -> Result<RawTable> {
    let mut rows = Vec::new();
    let mut columns: Option<Vec<String>> = None;
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, "cannot read (truncated or corrupt file?)", e))?;
        if n == 0 {
            break;
        }
        line += 1;
        let pos = RowPos::Line(line);
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.trim(),
            Err(_) => {
                rows.push(Err(DataError::BadValue {
                    path: path.to_path_buf(),
                    pos,
                    field: "<line>".into(),
                    reason: "not valid UTF-8".into(),
                }));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let row = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => {
                if columns.is_none() {
                    columns = Some(fields.keys().cloned().collect());
                }
                Ok(RawRow {
                    path: path.to_path_buf(),
                    pos,
                    fields,
                })
            }
            Ok(other) => Err(DataError::NotObject {
                path: path.to_path_buf(),
                pos,
                found: json_kind(&other),
            }),
            Err(source) => Err(DataError::Json {
                path: path.to_path_buf(),
                pos,
                source,
            }),
        };
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            skipped: 0,
        });
    }
    Ok(RawTable {
        columns: columns.unwrap_or_default(),
        rows,
    })
}

fn read_parquet(path: &Path) -> Result<RawTable> {
    let perr = |source| DataError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(|e| DataError::io(path, "cannot open", e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(perr)?;
    let columns: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let reader = builder.with_batch_size(8192).build().map_err(perr)?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| DataError::Arrow {
            path: path.to_path_buf(),
            what: "cannot decode Parquet data (truncated or corrupt file?)".into(),
            source,
        })?;
        let base = rows.len();
        let mut maps: Vec<Map<String, Value>> = vec![Map::new(); batch.num_rows()];
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            for (i, map) in maps.iter_mut().enumerate() {
                map.insert(field.name().clone(), arrow_value(col.as_ref(), i));
            }
        }
        rows.extend(maps.into_iter().enumerate().map(|(i, fields)| {
            Ok(RawRow {
                path: path.to_path_buf(),
                pos: RowPos::Row(base + i),
                fields,
            })
        }));
    }
    if rows.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            skipped: 0,
        });
    }
    Ok(RawTable { columns, rows })
}

/// One Arrow value as JSON: strings, integers, floats and booleans map directly; other types
/// become their display string.
fn arrow_value(col: &dyn Array, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            Value::from(col.as_primitive::<$t>().value(i))
        };
    }
    match col.data_type() {
        DataType::Utf8 => Value::String(col.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(col.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(col.as_string_view().value(i).to_string()),
        DataType::Boolean => Value::Bool(col.as_boolean().value(i)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => num!(Float32Type),
        DataType::Float64 => num!(Float64Type),
        _ => arrow::util::display::array_value_to_string(col, i)
            .map(Value::String)
            .unwrap_or(Value::Null),
    }
}

/// The data files of a folder (recursively, sorted by path), optionally only those of `split`:
/// a file whose name is `split.*` or starts with `split-` / `split_`, or that sits in a folder
/// named `split`.
pub fn files_in_dir(dir: &Path, split: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    walk(dir, &mut all)?;
    all.retain(|p| Format::of(p).is_some());
    if let Some(split) = split {
        all.retain(|p| matches_split(p.strip_prefix(dir).unwrap_or(p), split));
    }
    all.sort();
    if all.is_empty() {
        return Err(DataError::NoFiles {
            path: dir.to_path_buf(),
            split: split.map(str::to_string),
        });
    }
    Ok(all)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "cannot list", e))?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        // `metadata` follows symlinks (hub snapshots link every file to a blob).
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, out)?,
            Ok(_) => out.push(path),
            // A dangling link (an interrupted hub download) is reported when it is opened.
            Err(_) => out.push(path),
        }
    }
    Ok(())
}

/// True when a path (relative to its dataset root) belongs to `split`.
pub(crate) fn matches_split(rel: &Path, split: &str) -> bool {
    let comps: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let Some((file, dirs)) = comps.split_last() else {
        return false;
    };
    if dirs.iter().any(|d| d == split) {
        return true;
    }
    let stem = file.split('.').next().unwrap_or("");
    stem == split
        || file.starts_with(&format!("{split}-"))
        || file.starts_with(&format!("{split}_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_matching_follows_hub_names() {
        assert!(matches_split(
            Path::new("main/test-00000-of-00001.parquet"),
            "test"
        ));
        assert!(matches_split(Path::new("test.jsonl"), "test"));
        assert!(matches_split(
            Path::new("harmless-base/test.jsonl.gz"),
            "test"
        ));
        assert!(matches_split(Path::new("data/test/0.parquet"), "test"));
        assert!(!matches_split(
            Path::new("main/train-00000-of-00001.parquet"),
            "test"
        ));
        assert!(!matches_split(Path::new("testing.jsonl"), "test"));
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/b.JSONL")), Some(Format::Jsonl));
        assert_eq!(Format::of(Path::new("b.jsonl.gz")), Some(Format::JsonlGz));
        assert_eq!(Format::of(Path::new("b.parquet")), Some(Format::Parquet));
        assert_eq!(Format::of(Path::new("b.csv")), None);
    }
}
