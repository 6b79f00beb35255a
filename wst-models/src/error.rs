//! The error type of `wst-models`.

/// Errors of model loading, tokenisation and generation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CUDA was asked for but libtorch sees no device.
    #[error(
        "run.device = \"cuda\" but libtorch sees no CUDA device (is libtorch_cuda linked and a \
         driver present?)"
    )]
    NoCuda,

    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
