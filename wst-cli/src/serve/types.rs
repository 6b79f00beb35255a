//! The OpenAI chat-completions API as data: the request parsed and checked field by field (a
//! bad field is a 400 naming it, as OpenAI's `param`), the answers (`chat.completion`, the
//! `chat.completion.chunk`s of a stream, `/v1/models`), and the error body
//! `{"error": {"message", "type", "param", "code"}}` with its HTTP status.

use serde_json::{json, Map, Value};
use wst_core::{FinishReason, SamplingParams};
use wst_models::ChatMessage;

/// An error answered in OpenAI's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, ...).
    pub kind: &'static str,
    /// The request field at fault.
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`, `invalid_api_key`, ...).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 for a bad field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.to_string()),
            code: Some("invalid_value"),
        }
    }

    /// Another status, without a field.
    pub fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: Some(code),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// A chat-completions request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The `model` asked for.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Choices wanted (`n`).
    pub n: usize,
    /// Temperature, top-p, top-k, stop strings and seed; `max_new_tokens` holds `max_tokens`
    /// when `max_tokens` is `Some`.
    pub sampling: SamplingParams,
    /// `max_completion_tokens`, else `max_tokens`; `None`: the server's default.
    pub max_tokens: Option<usize>,
    /// Answer as server-sent events.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `wst_teacher` (proxy): `false` skips the teacher.
    pub use_teacher: bool,
}

/// Limits a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest `n`.
    pub max_n: usize,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn number(obj: &Map<String, Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` must be a number, got {v}"))),
    }
}

fn integer(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            ApiError::invalid(name, format!("`{name}` must be an integer, got {v}"))
        }),
    }
}

fn boolean(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| {
            ApiError::invalid(name, format!("`{name}` must be true or false, got {v}"))
        }),
    }
}

/// The text of a message's `content`: a string, or an array of `{"type": "text", "text"}`
/// parts (joined); `null` is empty (an assistant turn with tool calls).
fn content(v: Option<&Value>, param: &str) -> Result<String, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => out.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{j}]"),
                            "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported",
                        ))
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(ApiError::invalid(
            param,
            format!("`{param}` must be a string or an array of text parts, got {other}"),
        )),
    }
}

fn messages(obj: &Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let list = match field(obj, "messages") {
        None => return Err(ApiError::invalid("messages", "`messages` is required")),
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ApiError::invalid(
                "messages",
                format!("`messages` must be an array, got {v}"),
            ))
        }
    };
    if list.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must contain at least one message",
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let param = format!("messages[{i}]");
            let m = m
                .as_object()
                .ok_or_else(|| ApiError::invalid(&param, format!("`{param}` must be an object")))?;
            let role = match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => "system",
                Some(r @ ("user" | "assistant")) => r,
                Some(r) => {
                    return Err(ApiError::invalid(
                        &format!("{param}.role"),
                        format!("role `{r}` is not supported (system, developer, user, assistant)"),
                    ))
                }
                None => {
                    return Err(ApiError::invalid(
                        &format!("{param}.role"),
                        format!("`{param}.role` is required"),
                    ))
                }
            };
            let text = content(m.get("content"), &format!("{param}.content"))?;
            Ok(ChatMessage::new(role, text))
        })
        .collect()
}

fn stop(obj: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::invalid(
            "stop",
            "`stop` must be a string or an array of up to 4 non-empty strings",
        )
    };
    let list: Vec<String> = match field(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    if list.len() > 4 || list.iter().any(String::is_empty) {
        return Err(bad());
    }
    Ok(list)
}

impl ChatRequest {
    /// Parses and checks a request body; unknown fields are ignored, `null` is absent.
    pub fn parse(body: &[u8], limits: Limits) -> Result<Self, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| ApiError {
            param: None,
            code: None,
            ..ApiError::invalid("", format!("the body is not valid JSON: {e}"))
        })?;
        let obj = v.as_object().ok_or_else(|| ApiError {
            param: None,
            ..ApiError::invalid("", "the body must be a JSON object")
        })?;
        let model = match field(obj, "model") {
            Some(Value::String(s)) => s.clone(),
            None => return Err(ApiError::invalid("model", "`model` is required")),
            Some(v) => {
                return Err(ApiError::invalid(
                    "model",
                    format!("`model` must be a string, got {v}"),
                ))
            }
        };
        let messages = messages(obj)?;
        let n = integer(obj, "n")?.unwrap_or(1);
        if n < 1 || n as u64 > limits.max_n as u64 {
            return Err(ApiError::invalid(
                "n",
                format!("`n` must be in 1..={}, got {n}", limits.max_n),
            ));
        }
        let temperature = number(obj, "temperature")?.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                "temperature",
                format!("`temperature` must be in [0, 2], got {temperature}"),
            ));
        }
        let top_p = number(obj, "top_p")?.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                "top_p",
                format!("`top_p` must be in (0, 1], got {top_p}"),
            ));
        }
        // vLLM's extension: -1 or 0 disables it.
        let top_k = integer(obj, "top_k")?.unwrap_or(0);
        if top_k < -1 {
            return Err(ApiError::invalid(
                "top_k",
                format!("`top_k` must be >= -1, got {top_k}"),
            ));
        }
        let mut max_tokens = None;
        for name in ["max_tokens", "max_completion_tokens"] {
            if let Some(m) = integer(obj, name)? {
                if m < 1 {
                    return Err(ApiError::invalid(
                        name,
                        format!("`{name}` must be >= 1, got {m}"),
                    ));
                }
                max_tokens = Some(m as usize);
            }
        }
        let seed = integer(obj, "seed")?.map(|s| s as u64);
        let stream = boolean(obj, "stream")?.unwrap_or(false);
        let include_usage = match field(obj, "stream_options") {
            None => false,
            Some(Value::Object(o)) => boolean(o, "include_usage")?.unwrap_or(false),
            Some(_) => {
                return Err(ApiError::invalid(
                    "stream_options",
                    "`stream_options` must be an object",
                ))
            }
        };
        Ok(ChatRequest {
            model,
            messages,
            n: n as usize,
            sampling: SamplingParams {
                temperature: temperature as f32,
                top_p: top_p as f32,
                top_k: top_k.max(0) as usize,
                max_new_tokens: max_tokens.unwrap_or(1),
                stop: stop(obj)?,
                seed,
            },
            max_tokens,
            stream,
            include_usage,
            use_teacher: boolean(obj, "wst_teacher")?.unwrap_or(true),
        })
    }

    /// The text of the last user message (the query the proxy's teacher and student see).
    pub fn last_user(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
    }
}

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

    const LIMITS: Limits = Limits { max_n: 8 };

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        ChatRequest::parse(v.to_string().as_bytes(), LIMITS)
    }

    #[test]
    fn requests_parse_with_defaults_and_ignore_unknown_fields() {
        let r = parse(json!({
            "model": "m", "messages": [{"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "max_completion_tokens": 7, "stop": "x", "seed": 3, "frequency_penalty": 0, "user": null,
            "stream": true, "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert_eq!(r.messages[1], ChatMessage::user("ab"));
        assert_eq!((r.n, r.max_tokens, r.sampling.seed), (1, Some(7), Some(3)));
        assert_eq!(r.sampling.stop, vec!["x".to_string()]);
        assert_eq!(r.sampling.temperature, 1.0);
        assert!(r.stream && r.include_usage && r.use_teacher);
        assert_eq!(r.last_user(), Some("ab"));
    }

    #[test]
    fn bad_fields_are_400s_naming_the_field() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "q"}]});
        let cases = [
            ("messages", json!([])),
            ("n", json!(0)),
            ("n", json!(9)),
            ("n", json!("2")),
            ("temperature", json!(3)),
            ("top_p", json!(0)),
            ("max_tokens", json!(0)),
            ("stop", json!(["a", ""])),
            ("stream", json!("yes")),
        ];
        for (name, value) in cases {
            let mut v = base();
            v[name] = value.clone();
            let e = parse(v).unwrap_err();
            assert_eq!(
                (e.status, e.param.as_deref()),
                (400, Some(name)),
                "{name}={value}: {e:?}"
            );
        }
        let mut v = base();
        v["messages"][0]["role"] = json!("tool");
        assert_eq!(
            parse(v).unwrap_err().param.as_deref(),
            Some("messages[0].role")
        );
        let e = ChatRequest::parse(b"{not json", LIMITS).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("not valid JSON"));
    }

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
