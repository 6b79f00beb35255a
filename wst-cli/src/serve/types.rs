//! The OpenAI chat-completions request as data, parsed and checked field by field (a bad
//! field is a 400 naming it, as OpenAI's `param`), and the error body
//! `{"error": {"message", "type", "param", "code"}}` with its HTTP status. The answers are in
//! [`super::answer`] (re-exported here).

use serde_json::{json, Map, Value};
use wst_core::SamplingParams;
use wst_models::ChatMessage;

pub use super::answer::{model_list, Answer, Choice, WstInfo};

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
}
