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
