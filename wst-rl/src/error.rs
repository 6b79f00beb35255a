//! The error type of `wst-rl`.

use std::path::PathBuf;

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),

    /// An error from a `wst-core` seam (student, reward, prompt source, sink, baselines, config).
    #[error(transparent)]
    Core(#[from] wst_core::Error),

    /// An error from `wst-models`.
    #[error(transparent)]
    Models(#[from] wst_models::Error),

    /// A file or folder could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`cannot write`, `cannot read`, ...).
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (trainer state, metrics) is malformed.
    #[error("malformed JSON in {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A checkpoint is missing a piece or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A component broke its contract (wrong number of samples, shapes that do not fit).
    #[error("{0}")]
    Contract(String),

    /// The configuration cannot be used by the trainer.
    #[error("configuration: {0}")]
    Config(String),

    /// The student failed too often for rewards to mean anything: a step's share of failed
    /// replies above `student.max_failure_rate`, or a baseline with no usable reply. The text
    /// names the most common error.
    #[error("{0}")]
    StudentFailures(String),

    /// A step could not finish before its update; the trainer's state is still that of the
    /// last finished step (the data cursor was put back), so it can be saved and resumed.
    #[error("step {} could not finish", .step + 1)]
    Incomplete {
        /// The step (0-based).
        step: u64,
        /// Why.
        #[source]
        source: Box<Error>,
    },

    /// The run stopped; `saved` says what of it is on disk.
    #[error("the run stopped in step {step} of {total} ({saved})")]
    Stopped {
        /// The step that could not finish (1-based, as the progress lines count).
        step: u64,
        /// The steps the run was to have.
        total: u64,
        /// What was saved.
        saved: String,
        /// Why it stopped.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
