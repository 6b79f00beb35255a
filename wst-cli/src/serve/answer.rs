//! The answers of the chat-completions API: the `chat.completion` object, the
//! `chat.completion.chunk`s of a stream (server-sent events) and the `/v1/models` list.

use serde_json::{json, Value};
use wst_core::FinishReason;

/// One generated choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The reply.
    pub text: String,
    /// `stop` or `length`.
    pub finish_reason: FinishReason,
    /// Tokens generated (0 when the student does not say).
    pub tokens: usize,
}

/// What the proxy's teacher did for a request.
#[derive(Debug, Clone, PartialEq)]
pub struct WstInfo {
    /// The instruction given to the student (`None`: skipped or none written).
    pub instruction: Option<String>,
    /// Which teacher wrote it.
    pub teacher: String,
    /// Its length in teacher tokens.
    pub teacher_tokens: usize,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `n` choices.
    pub choices: Vec<Choice>,
    /// Prompt tokens (0 when the student does not say).
    pub prompt_tokens: usize,
    /// The proxy's extra field.
    pub wst: Option<WstInfo>,
}

fn finish(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

impl Answer {
    fn usage(&self) -> Value {
        let completion: usize = self.choices.iter().map(|c| c.tokens).sum();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    fn wst_value(&self) -> Option<Value> {
        self.wst.as_ref().map(|w| {
            json!({"instruction": w.instruction, "teacher": w.teacher, "teacher_tokens": w.teacher_tokens})
        })
    }

    /// The `chat.completion` object.
    pub fn completion(&self, id: &str, created: u64, model: &str) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "index": i,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": null,
                    "finish_reason": finish(c.finish_reason),
                })
            })
            .collect();
        let mut v = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": concat!("wst-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
            "usage": self.usage(),
        });
        if let Some(w) = self.wst_value() {
            v["wst"] = w;
        }
        v
    }

    /// The server-sent events of a streamed answer: per choice a role chunk, content chunks
    /// (word by word) and a chunk with the finish reason; then, with `include_usage`, a chunk
    /// with no choices and the usage; then `data: [DONE]`.
    pub fn sse(&self, id: &str, created: u64, model: &str, include_usage: bool) -> String {
        let chunk = |choices: Value, usage: Option<Value>| {
            let mut v = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": concat!("wst-", env!("CARGO_PKG_VERSION")),
                "choices": choices,
            });
            if include_usage {
                v["usage"] = usage.unwrap_or(Value::Null);
            }
            v
        };
        let mut events: Vec<Value> = Vec::new();
        for (i, c) in self.choices.iter().enumerate() {
            let delta = |d: Value, f: Option<&str>| json!([{"index": i, "delta": d, "logprobs": null, "finish_reason": f}]);
            let mut first = chunk(
                delta(json!({"role": "assistant", "content": ""}), None),
                None,
            );
            if let (0, Some(w)) = (i, self.wst_value()) {
                first["wst"] = w;
            }
            events.push(first);
            for piece in c.text.split_inclusive(' ') {
                events.push(chunk(delta(json!({"content": piece}), None), None));
            }
            events.push(chunk(delta(json!({}), Some(finish(c.finish_reason))), None));
        }
        if include_usage {
            events.push(chunk(json!([]), Some(self.usage())));
        }
        let mut out = String::new();
        for e in events {
            out.push_str("data: ");
            out.push_str(&e.to_string());
            out.push_str("\n\n");
        }
        out.push_str("data: [DONE]\n\n");
        out
    }
}

/// The `/v1/models` list.
pub fn model_list(ids: &[String], created: u64) -> Value {
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": created, "owned_by": "wst"}))
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_concatenate_to_the_completion() {
        let a = Answer {
            choices: vec![Choice {
                text: "Hello there, you".into(),
                finish_reason: FinishReason::Length,
                tokens: 4,
            }],
            prompt_tokens: 3,
            wst: None,
        };
        let sse = a.sse("id", 0, "m", true);
        let mut text = String::new();
        let mut usage = None;
        for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if line == "[DONE]" {
                break;
            }
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                text.push_str(c);
            }
            if !v["usage"].is_null() {
                usage = Some(v["usage"].clone());
            }
        }
        assert_eq!(text, "Hello there, you");
        assert_eq!(usage.unwrap()["total_tokens"], 7);
        assert!(sse.ends_with("data: [DONE]\n\n"));
        let c = a.completion("id", 0, "m");
        assert_eq!(c["choices"][0]["finish_reason"], "length");
        assert!(c.get("wst").is_none());
    }
}
