//! Queries: what the teacher writes instructions for and the student answers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One task instance: a question, its reference answer when the task has one, and free metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Query {
    /// Stable identifier, unique within its dataset (e.g. `gsm8k/test/17`).
    pub id: String,
    /// The question as the student sees it.
    pub text: String,
    /// Reference answer (GSM8K number, MATH answer); `None` for preference tasks such as HH-RLHF.
    #[serde(default)]
    pub reference: Option<String>,
    /// Extra fields kept from the source (subject, level, chosen/rejected dialogues, ...).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Query {
    /// A query with no reference and no metadata.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> Self {
        Query {
            id: id.into(),
            text: text.into(),
            reference: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the reference answer.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Adds one metadata field.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// [`crate::stable_hash`] of what the student is asked and what it is scored against (the
    /// text and the reference): two queries with the same id but different content differ here.
    pub fn content_hash(&self) -> String {
        crate::stable_hash(&[
            "query",
            &self.text,
            self.reference.as_deref().unwrap_or("\u{0}none"),
        ])
    }
}

/// The text of a query as compared for overlap between training and evaluation: lowercased,
/// runs of whitespace as one space, trimmed.
pub fn normalize_query_text(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// An instruction `m1` written by the teacher for one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instruction {
    /// The decoded text given to the student.
    pub text: String,
    /// Number of teacher tokens it took.
    pub num_tokens: usize,
    /// True when generation stopped at the length cap instead of an end-of-sequence token.
    pub truncated: bool,
}

impl Instruction {
    /// An instruction that did not come from a tokenizer (tests, API teachers).
    pub fn from_text(text: impl Into<String>) -> Self {
        Instruction {
            text: text.into(),
            num_tokens: 0,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_covers_text_and_reference() {
        let q = Query::new("gsm8k/train/0", "What is 2 + 2?").with_reference("4");
        assert_eq!(
            q.content_hash(),
            q.clone().with_meta("x", "y").content_hash()
        );
        assert_ne!(
            q.content_hash(),
            q.clone().with_reference("5").content_hash()
        );
        let other = Query::new("gsm8k/train/0", "What is 2 + 3?").with_reference("4");
        assert_ne!(q.content_hash(), other.content_hash());
        assert_ne!(
            Query::new("a", "x").content_hash(),
            Query::new("a", "x").with_reference("").content_hash()
        );
    }

    #[test]
    fn normalized_text_ignores_case_and_spacing() {
        assert_eq!(
            normalize_query_text("  What is\n2 +  2?\t"),
            normalize_query_text("what IS 2 + 2?")
        );
        assert_ne!(normalize_query_text("2 + 2"), normalize_query_text("2+2"));
    }
}
