//! A Hugging Face `tokenizer.json` built from the GGUF tokenizer metadata.
//!
//! Only `tokenizer.ggml.model = "gpt2"` (byte-level BPE with merges) converts. The
//! pre-tokenizer follows `tokenizer.ggml.pre`, as llama.cpp does: each known value selects the
//! splitting of the original Hugging Face tokenizer.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::error::{GgufError, Result};
use super::reader::GgufFile;

/// llama.cpp's token type of control tokens (`<|im_start|>`): special added tokens.
const TOKEN_TYPE_CONTROL: i64 = 3;
/// llama.cpp's token type of user-defined tokens: added tokens that are not special.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Qwen2's pre-tokenizer split (from its `tokenizer.json`).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's pre-tokenizer split (from its `tokenizer.json`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The pre-tokenizer for `tokenizer.ggml.pre` and whether BPE skips merging whole-word tokens
/// (`ignore_merges`, Llama 3).
fn pre_tokenizer(pre: &str) -> (Value, bool) {
    let byte_level = |use_regex: bool| {
        json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
               "use_regex": use_regex})
    };
    let split = |pattern: &str| {
        json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
               "invert": false})
    };
    let seq = |parts: Vec<Value>| json!({"type": "Sequence", "pretokenizers": parts});
    match pre {
        // SmolLM / StarCoder: single digits, then GPT-2's split.
        "smollm" | "starcoder" | "refact" => (
            seq(vec![
                json!({"type": "Digits", "individual_digits": true}),
                byte_level(true),
            ]),
            false,
        ),
        "qwen2" => (seq(vec![split(QWEN2_SPLIT), byte_level(false)]), false),
        "llama-bpe" | "llama3" => (seq(vec![split(LLAMA3_SPLIT), byte_level(false)]), true),
        "gpt2" | "default" => (byte_level(true), false),
        other => {
            tracing::warn!(
                pre = other,
                "unknown tokenizer.ggml.pre: using GPT-2's pre-tokenizer"
            );
            (byte_level(true), false)
        }
    }
}

/// Builds the `tokenizer.json` text from the file's tokenizer metadata (load it with
/// `tokenizers::Tokenizer::from_str`).
pub fn tokenizer_json(file: &GgufFile) -> Result<String> {
    let model = file.require_str("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(GgufError::UnsupportedTokenizer {
            model: model.to_string(),
        });
    }
    let tokens = str_array(file, "tokenizer.ggml.tokens")?;
    let merges = str_array(file, "tokenizer.ggml.merges")?;
    let types = match file.get("tokenizer.ggml.token_type") {
        None => vec![1; tokens.len()],
        Some(v) => v.as_i64_array().ok_or_else(|| GgufError::WrongValueType {
            key: "tokenizer.ggml.token_type".into(),
            expected: "an array of integers",
            found: v.value_type().name(),
        })?,
    };
    if types.len() != tokens.len() {
        return Err(GgufError::BadSize {
            path: file.path().to_path_buf(),
            what: format!(
                "tokenizer.ggml.token_type (vs {} tokens in tokenizer.ggml.tokens)",
                tokens.len()
            ),
            value: types.len() as u64,
        });
    }
    let token_of = |key: &str| -> Result<Option<(u64, &str)>> {
        match file.opt_u64(key)? {
            None => Ok(None),
            Some(id) => match tokens.get(id as usize) {
                Some(tok) => Ok(Some((id, *tok))),
                None => Err(GgufError::BadTokenId {
                    key: key.to_string(),
                    id,
                    vocab: tokens.len(),
                }),
            },
        }
    };
    let unk = token_of("tokenizer.ggml.unknown_token_id")?.map(|(_, t)| t);
    let bos = token_of("tokenizer.ggml.bos_token_id")?;
    let add_bos = file
        .opt_bool("tokenizer.ggml.add_bos_token")?
        .unwrap_or(false);
    let pre = file.opt_str("tokenizer.ggml.pre")?.unwrap_or("default");

    let added: Vec<Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, &t))| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
        .map(|(id, (tok, &t))| {
            json!({"id": id, "content": tok, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": t == TOKEN_TYPE_CONTROL})
        })
        .collect();
    let (pre_tokenizer, ignore_merges) = pre_tokenizer(pre);
    let post_processor = match (add_bos, bos) {
        (true, Some((bos_id, bos))) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}
        }),
        _ => json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false,
                    "use_regex": true}),
    };
    let outer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
    });
    let model_head = json!({
        "type": "BPE",
        "dropout": null,
        "unk_token": unk,
        "continuing_subword_prefix": null,
        "end_of_word_suffix": null,
        "fuse_unk": false,
        "byte_fallback": false,
        "ignore_merges": ignore_merges,
    });

    // The vocabulary and merges (about 50k entries each) are written directly: building
    // `serde_json::Value`s for them costs more than all the rest of the conversion.
    let outer = serde_json::to_string(&outer)?;
    let model_head = serde_json::to_string(&model_head)?;
    let mut out = String::with_capacity(outer.len() + 24 * (tokens.len() + merges.len()));
    out.push_str(outer.strip_suffix('}').unwrap_or(&outer));
    out.push_str(",\"model\":");
    out.push_str(model_head.strip_suffix('}').unwrap_or(&model_head));
    out.push_str(",\"vocab\":{");
    let mut seen = HashSet::with_capacity(tokens.len());
    for (id, tok) in tokens.iter().enumerate() {
        // A repeated token keeps its first id.
        if seen.insert(*tok) {
            if id > 0 {
                out.push(',');
            }
            push_json_str(&mut out, tok);
            out.push(':');
            out.push_str(&id.to_string());
        }
    }
    out.push_str("},\"merges\":[");
    for (index, m) in merges.iter().enumerate() {
        match m.split_once(' ') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains(' ') => {
                if index > 0 {
                    out.push(',');
                }
                out.push('[');
                push_json_str(&mut out, a);
                out.push(',');
                push_json_str(&mut out, b);
                out.push(']');
            }
            _ => {
                return Err(GgufError::BadMerge {
                    index,
                    merge: m.to_string(),
                })
            }
        }
    }
    out.push_str("]}}");
    Ok(out)
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

fn str_array<'a>(file: &'a GgufFile, key: &str) -> Result<Vec<&'a str>> {
    let v = file.require(key)?;
    v.as_str_array().ok_or_else(|| GgufError::WrongValueType {
        key: key.to_string(),
        expected: "an array of strings",
        found: v.value_type().name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        for s in ["plain Ġx", "q\"b\\s", "nl\n\t\r\u{1}", "é😀"] {
            out.clear();
            push_json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{out}");
        }
    }
}
