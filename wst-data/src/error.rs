//! The error type of `wst-data`: every variant names the file, row and field a user can fix.

use std::fmt;
use std::path::PathBuf;

/// Where a row sits in its file: a JSONL line (1-based) or a Parquet row (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowPos {
    /// Line of a JSON Lines file, counting from 1.
    Line(usize),
    /// Row of a Parquet file, counting from 0.
    Row(usize),
}

impl fmt::Display for RowPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowPos::Line(n) => write!(f, "line {n}"),
            RowPos::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// Errors of `wst-data`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{path}: {what}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A JSON Lines row is not valid JSON.
    #[error("{path} {pos}: malformed JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The line.
        pos: RowPos,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON Lines row is valid JSON but not an object.
    #[error("{path} {pos}: expected a JSON object, found {found}")]
    NotObject {
        /// The file.
        path: PathBuf,
        /// The line.
        pos: RowPos,
        /// What was there instead.
        found: &'static str,
    },

    /// A row lacks a field the dataset needs.
    #[error("{path} {pos}: missing field `{field}` (the row has: {available})")]
    MissingField {
        /// The file.
        path: PathBuf,
        /// The row.
        pos: RowPos,
        /// The field.
        field: String,
        /// The fields the row does have, comma-separated.
        available: String,
    },

    /// A field has the wrong type.
    #[error("{path} {pos}: field `{field}` should be {expected}, found {found}")]
    FieldType {
        /// The file.
        path: PathBuf,
        /// The row.
        pos: RowPos,
        /// The field.
        field: String,
        /// The type wanted.
        expected: &'static str,
        /// The type found.
        found: String,
    },

    /// A field has the right type but a value the dataset cannot use.
    #[error("{path} {pos}: field `{field}`: {reason}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The row.
        pos: RowPos,
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A file holds no rows at all (or none usable after skipping bad ones).
    #[error("{path}: no rows{}", if *.skipped > 0 { format!(" left after skipping {} bad rows", .skipped) } else { String::new() })]
    Empty {
        /// The file or folder.
        path: PathBuf,
        /// Rows skipped as bad.
        skipped: usize,
    },

    /// A Parquet file is unreadable (truncated, not Parquet, corrupt).
    #[error("{path}: cannot read Parquet (truncated or not a Parquet file?)")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Arrow data could not be built or converted.
    #[error("{path}: {what}")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A polars query failed.
    #[error("{context}")]
    Polars {
        /// What was being done (names the files or run).
        context: String,
        /// The cause.
        #[source]
        source: polars::error::PolarsError,
    },

    /// A file's columns do not match the schema this crate writes or expects.
    #[error("{path}: {reason}")]
    Schema {
        /// The file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },

    /// A path has no format this crate reads.
    #[error(
        "{path}: unknown data format (expected .jsonl, .jsonl.gz, .parquet or a folder of them)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },

    /// A folder or hub snapshot holds no data file for the split asked for.
    #[error("{path}: no data files{}", .split.as_ref().map(|s| format!(" for split `{s}`")).unwrap_or_default())]
    NoFiles {
        /// The folder.
        path: PathBuf,
        /// The split looked for.
        split: Option<String>,
    },

    /// A Hugging Face dataset id whose files are not in the local hub cache and cannot be
    /// downloaded now.
    #[error(
        "dataset `{repo}`: {missing} is not in the Hugging Face cache (looked in {}); {hint}, or \
         give a local path",
        .looked_in.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    HubNotCached {
        /// The dataset repository id, e.g. `openai/gsm8k`.
        repo: String,
        /// What is missing (the snapshot, a file, the split).
        missing: String,
        /// The cache folders searched.
        looked_in: Vec<PathBuf>,
        /// What to do (download it, or leave offline mode).
        hint: String,
    },

    /// A hub dataset's listing has no data file of the split.
    #[error(
        "dataset `{repo}`: the repository has no data file{} (its data files: {})",
        .split.as_ref().map(|s| format!(" of split `{s}`")).unwrap_or_default(),
        if .listing.is_empty() { "none".to_string() } else { .listing.join(", ") }
    )]
    HubNoSplit {
        /// The dataset repository id.
        repo: String,
        /// The split asked for.
        split: Option<String>,
        /// The data files the repository lists.
        listing: Vec<String>,
    },

    /// Finding or fetching a hub file failed (offline, gated, missing, network).
    #[error(transparent)]
    Hub(#[from] wst_core::hub::HubError),

    /// The data options do not make sense together.
    #[error("invalid data options: {0}")]
    Options(String),

    /// Evaluation queries that are also training queries.
    #[error(
        "{count} of {eval_total} eval queries overlap the training queries (same id or same \
         normalised text); the first: eval `{eval_id}` is training `{train_id}` ({why}): {text:?}. \
         Evaluate on held-out queries: [eval.data] with another split or file, or \
         data.holdout = 0.2 to split one file"
    )]
    Overlap {
        /// Eval queries that overlap.
        count: usize,
        /// Eval queries checked.
        eval_total: usize,
        /// The first overlapping eval query.
        eval_id: String,
        /// The training query it overlaps.
        train_id: String,
        /// `same id` or `same text`.
        why: &'static str,
        /// Its text (cut to 80 characters).
        text: String,
    },
}

/// `Result` with [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    /// True for errors of one row that `skip_bad_rows` may skip (malformed JSON, missing or
    /// mistyped fields, unusable values); false for file-level errors.
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            DataError::Json { .. }
                | DataError::NotObject { .. }
                | DataError::MissingField { .. }
                | DataError::FieldType { .. }
                | DataError::BadValue { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, what: &'static str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            what,
            source,
        }
    }

    pub(crate) fn polars(context: impl Into<String>, source: polars::error::PolarsError) -> Self {
        DataError::Polars {
            context: context.into(),
            source,
        }
    }
}

impl From<DataError> for wst_core::Error {
    fn from(e: DataError) -> Self {
        let context = match &e {
            DataError::Io { .. } | DataError::Parquet { .. } | DataError::Arrow { .. } => {
                "data storage"
            }
            _ => "data",
        };
        wst_core::Error::other(context, e)
    }
}
