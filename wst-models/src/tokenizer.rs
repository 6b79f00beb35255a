//! [`Tokenizer`]: a Hugging Face tokenizer (`tokenizers` crate) loaded from `tokenizer.json` or
//! built from GGUF metadata, with errors that name where it came from.

use std::path::Path;
use std::str::FromStr;

use crate::gguf::GgufFile;
use crate::{Error, Result};

/// A tokenizer and where it came from.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("origin", &self.origin)
            .field("vocab", &self.vocab_size())
            .finish()
    }
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses the text of a `tokenizer.json`; `origin` names it in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_str(json).map_err(|source| Error::Tokenizer {
            origin: origin.to_string(),
            source,
        })?;
        Ok(Tokenizer {
            inner,
            origin: origin.to_string(),
        })
    }

    /// The tokenizer of a GGUF file (vocab, merges, token types and special ids).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let json = crate::gguf::tokenizer_json(file)?;
        Self::from_json(&json, &file.path().display().to_string())
    }

    /// Where the tokenizer came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The `tokenizers` object.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`; `add_special_tokens` applies the post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|source| Error::Tokenizer {
                origin: format!("{}: encoding {:?}", self.origin, preview(text)),
                source,
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`; `skip_special_tokens` drops special tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|source| Error::Tokenizer {
                origin: format!("{}: decoding {} ids", self.origin, ids.len()),
                source,
            })
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if it exists.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The text of a token id, if it exists.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

/// GPT-2's byte-level BPE built from `vocab.json` and `merges.txt` (with `<|endoftext|>` as a
/// special token when the vocabulary has it), for model folders without a `tokenizer.json`.
pub(crate) fn byte_level_bpe(vocab: &Path, merges: &Path) -> Result<tokenizers::Tokenizer> {
    let err = |source| Error::Tokenizer {
        origin: format!("{} with {}", vocab.display(), merges.display()),
        source,
    };
    let bpe = tokenizers::models::bpe::BPE::from_file(
        &vocab.to_string_lossy(),
        &merges.to_string_lossy(),
    )
    .build()
    .map_err(err)?;
    let byte_level = tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, true, true);
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(byte_level))
        .with_decoder(Some(byte_level))
        .with_post_processor(Some(byte_level));
    if tok.token_to_id("<|endoftext|>").is_some() {
        tok.add_special_tokens([tokenizers::AddedToken::from("<|endoftext|>", true)])
            .map_err(err)?;
    }
    Ok(tok)
}

fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}
