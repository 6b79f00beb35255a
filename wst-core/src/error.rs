//! The error type of `wst-core`.

use std::path::PathBuf;

/// Errors raised by `wst-core` and by the trait implementations that choose to reuse it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration has one or more problems; each is listed.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    InvalidConfig(Vec<String>),

    /// A configuration file could not be read.
    #[error("cannot read config file {path}")]
    ConfigIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file is not valid TOML or does not match the schema.
    #[error("cannot parse config {origin}")]
    ConfigParse {
        /// Where the text came from (a path or `<string>`).
        origin: String,
        /// The cause.
        #[source]
        source: Box<toml::de::Error>,
    },

    /// A `--set key=value` override could not be applied.
    #[error("bad override `{assignment}`: {reason}")]
    BadOverride {
        /// The override as given.
        assignment: String,
        /// Why it was refused.
        reason: String,
    },

    /// A prompt template failed to compile or render.
    #[error("template `{name}`")]
    Template {
        /// Which template (e.g. `templates.teacher_user`).
        name: String,
        /// The cause.
        #[source]
        source: minijinja::Error,
    },

    /// Reward components and weights do not fit together.
    #[error("reward combination: {0}")]
    RewardCombination(String),

    /// A trait implementation reported an error of its own.
    #[error("{context}")]
    Other {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Wraps any error with a description of what was being done, keeping its source chain.
    pub fn other<E>(context: impl Into<String>, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Other {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
