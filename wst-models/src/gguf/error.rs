//! The error type of the GGUF reader and converter.

use std::path::PathBuf;

/// Errors of reading, dequantising and converting GGUF files.
///
/// Every variant names what a user can act on: the file, the metadata key, the tensor or the
/// ggml type.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read.
    #[error("cannot read GGUF file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not `GGUF`.
    #[error("{path}: not a GGUF file (magic {found:02x?}, expected \"GGUF\")")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The four bytes found.
        found: [u8; 4],
    },

    /// A GGUF version other than 2 or 3.
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },

    /// The file ends before a field is complete.
    #[error("{path}: truncated while reading {what} at byte {offset} (file has {len} bytes)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read (names the metadata key or the tensor).
        what: String,
        /// Where the read started.
        offset: u64,
        /// The file length.
        len: u64,
    },

    /// A metadata value type id that GGUF does not define.
    #[error("{path}: metadata key `{key}` has unknown value type id {type_id}")]
    UnknownValueType {
        /// The file.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// The type id found.
        type_id: u32,
    },

    /// A string in the header is not UTF-8.
    #[error("{path}: {what} is not valid UTF-8")]
    Utf8 {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// The underlying error.
        #[source]
        source: std::string::FromUtf8Error,
    },

    /// A length or count in the header does not fit this machine or is absurd.
    #[error("{path}: {what} has an impossible size {value}")]
    BadSize {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// The value found.
        value: u64,
    },

    /// The `general.alignment` metadata value is zero or not a power of two.
    #[error("{path}: general.alignment = {alignment} is not a power of two")]
    BadAlignment {
        /// The file.
        path: PathBuf,
        /// The value found.
        alignment: u64,
    },

    /// A tensor's data lies (partly) outside the file.
    #[error(
        "{path}: data of tensor `{tensor}` (bytes {start}..{end}) lies outside the file \
         ({len} bytes)"
    )]
    TensorOutOfBounds {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// First byte of its data.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The file length.
        len: u64,
    },

    /// A ggml type id this reader does not know.
    #[error("tensor `{tensor}` has unknown ggml type id {type_id}")]
    UnknownGgmlType {
        /// The tensor.
        tensor: String,
        /// The type id found.
        type_id: u32,
    },

    /// A known ggml type that [`dequantize`](super::dequantize) does not handle.
    #[error(
        "ggml type {ggml_type} cannot be dequantised (supported: F32, F16, BF16, Q8_0, Q4_0, \
         Q4_1, Q4_K, Q6_K)"
    )]
    UnsupportedGgmlType {
        /// The type name.
        ggml_type: &'static str,
    },

    /// An element count that is not a multiple of the type's block size.
    #[error("{n_elements} elements of ggml type {ggml_type} are not a multiple of its block size {block}")]
    PartialBlock {
        /// The type name.
        ggml_type: &'static str,
        /// The element count asked for.
        n_elements: u64,
        /// The elements per block.
        block: u64,
    },

    /// The byte slice does not hold exactly the element count asked for.
    #[error("{n_elements} elements of ggml type {ggml_type} need {expected} bytes, got {actual}")]
    ByteCount {
        /// The type name.
        ggml_type: &'static str,
        /// The element count asked for.
        n_elements: u64,
        /// The bytes needed.
        expected: u64,
        /// The bytes given.
        actual: u64,
    },

    /// An error while converting one tensor.
    #[error("tensor `{tensor}`")]
    InTensor {
        /// The tensor.
        tensor: String,
        /// The underlying error.
        #[source]
        source: Box<GgufError>,
    },

    /// A required metadata key is absent.
    #[error("missing GGUF metadata key `{key}`")]
    MissingKey {
        /// The key.
        key: String,
    },

    /// A metadata value of an unexpected type.
    #[error("GGUF metadata key `{key}` is {found}, expected {expected}")]
    WrongValueType {
        /// The key.
        key: String,
        /// What was expected.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },

    /// An architecture without a conversion table.
    #[error("GGUF architecture `{arch}` is not supported (supported: {supported})")]
    UnsupportedArchitecture {
        /// The `general.architecture` value.
        arch: String,
        /// The supported ones.
        supported: String,
    },

    /// A tokenizer model that cannot be converted.
    #[error(
        "GGUF tokenizer model `{model}` is not supported (only \"gpt2\" byte-level BPE is \
         converted to tokenizer.json)"
    )]
    UnsupportedTokenizer {
        /// The `tokenizer.ggml.model` value.
        model: String,
    },

    /// A tensor the conversion table has no Hugging Face name for.
    #[error("tensor `{tensor}` has no Hugging Face name for architecture `{arch}`")]
    UnmappedTensor {
        /// The tensor.
        tensor: String,
        /// The architecture.
        arch: String,
    },

    /// A tensor needed by the conversion is absent.
    #[error("GGUF file has no tensor `{tensor}`")]
    MissingTensor {
        /// The tensor.
        tensor: String,
    },

    /// A tensor whose shape does not fit the metadata.
    #[error("tensor `{tensor}` has GGUF dims {dims:?}: {problem}")]
    BadTensorShape {
        /// The tensor.
        tensor: String,
        /// Its dims, innermost first (GGUF order).
        dims: Vec<u64>,
        /// What is wrong.
        problem: String,
    },

    /// The tokenizer vocabulary and the embedding matrix disagree.
    #[error(
        "tokenizer has {tokenizer} tokens but `token_embd.weight` has {embedding} rows \
         (vocab size mismatch)"
    )]
    VocabMismatch {
        /// Tokens in `tokenizer.ggml.tokens`.
        tokenizer: usize,
        /// Rows of the embedding matrix.
        embedding: u64,
    },

    /// A BPE merge that is not two tokens separated by one space.
    #[error("tokenizer.ggml.merges[{index}] = {merge:?} is not `LEFT RIGHT`")]
    BadMerge {
        /// Its position.
        index: usize,
        /// The merge string.
        merge: String,
    },

    /// A special token id outside the vocabulary.
    #[error("`{key}` = {id} is outside the vocabulary of {vocab} tokens")]
    BadTokenId {
        /// The metadata key.
        key: String,
        /// The id.
        id: u64,
        /// The vocabulary size.
        vocab: usize,
    },

    /// JSON serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// An error from libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// `Result` with [`GgufError`].
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
