//! What an OpenAI-compatible server answered: the choices of a chat completion (each a reply or
//! the reason it cannot be used) and the message of an error answer.

use serde::Deserialize;
use wst_core::{Completion, FinishReason};

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<serde_json::Value>,
}

/// The choices of a chat-completions body, in `index` order: a completion, or why the choice is
/// no reply (no message, `null` or missing content, `finish_reason: "content_filter"`). `Err`
/// when the body is not a chat completion with at least one choice.
pub(crate) fn parse_choices(body: &str) -> Result<Vec<Result<Completion, String>>, String> {
    let r: ChatResponse =
        serde_json::from_str(body).map_err(|e| format!("malformed chat completion: {e}"))?;
    if r.choices.is_empty() {
        return Err("answer has no choices".into());
    }
    let mut choices: Vec<(usize, Choice)> = r.choices.into_iter().enumerate().collect();
    choices.sort_by_key(|(i, c)| c.index.unwrap_or(*i));
    Ok(choices.into_iter().map(|(_, c)| choice(c)).collect())
}

fn choice(c: Choice) -> Result<Completion, String> {
    let fr = c.finish_reason.as_deref();
    let fr_text = fr.map_or("none".to_string(), |f| format!("{f:?}"));
    if fr == Some("content_filter") {
        return Err(
            "the reply was withheld by the server's content filter (finish_reason \
             \"content_filter\")"
                .into(),
        );
    }
    let Some(m) = c.message else {
        return Err(format!(
            "the choice has no message (finish_reason {fr_text})"
        ));
    };
    match m.content {
        Some(text) => Ok(Completion {
            text,
            num_tokens: None,
            finish_reason: if fr == Some("length") {
                FinishReason::Length
            } else {
                FinishReason::Stop
            },
        }),
        None => {
            let mut why = format!("the reply has no content (null; finish_reason {fr_text})");
            if let Some(r) = m.refusal.filter(|r| !r.trim().is_empty()) {
                why.push_str(&format!("; the model refused: {}", clip(&r, 200)));
            }
            if m.reasoning_content.is_some_and(|r| !r.is_null()) {
                why.push_str(
                    "; it has reasoning_content only (a reasoning model may have spent \
                     max_new_tokens before answering)",
                );
            }
            Err(why)
        }
    }
}

/// The server's own words in an error body: `error.message` (OpenAI), `message` (vLLM),
/// `detail` (FastAPI), `error` as a string (TGI), else the body; whitespace collapsed, at most
/// 300 characters.
pub(crate) fn server_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let s = |x: &serde_json::Value| match x {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            };
            v.pointer("/error/message")
                .and_then(s)
                .or_else(|| v.get("message").and_then(s))
                .or_else(|| v.get("detail").and_then(s))
                .or_else(|| v.get("error").filter(|e| e.is_string()).and_then(s))
        });
    let text = from_json.unwrap_or_else(|| body.to_string());
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "(empty body)".into()
    } else {
        clip(&text, 300)
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_missing_and_filtered_content_are_no_replies() {
        let body = r#"{"choices": [
            {"index": 1, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"},
            {"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "length"},
            {"index": 2, "finish_reason": "stop"},
            {"index": 3, "message": {"role": "assistant", "content": "partial"}, "finish_reason": "content_filter"},
            {"index": 4, "message": {"role": "assistant", "content": null, "reasoning_content": "Let me think"}, "finish_reason": "length"},
            {"index": 5, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
        ]}"#;
        let c = parse_choices(body).unwrap();
        assert_eq!(c.len(), 6);
        let ok = c[0].as_ref().unwrap();
        assert_eq!(
            (ok.text.as_str(), ok.finish_reason),
            ("4", FinishReason::Length)
        );
        let e1 = c[1].as_ref().unwrap_err();
        assert!(
            e1.contains("no content") && e1.contains("can't help"),
            "{e1}"
        );
        assert!(c[2].as_ref().unwrap_err().contains("no message"));
        assert!(c[3].as_ref().unwrap_err().contains("content_filter"));
        let e4 = c[4].as_ref().unwrap_err();
        assert!(
            e4.contains("reasoning_content") && e4.contains("\"length\""),
            "{e4}"
        );
        // An empty string is a reply (the student said nothing), not a failure.
        assert_eq!(c[5].as_ref().unwrap().text, "");
        assert!(parse_choices(r#"{"choices": []}"#)
            .unwrap_err()
            .contains("no choices"));
        assert!(parse_choices("{").unwrap_err().contains("malformed"));
    }

    #[test]
    fn server_messages_of_common_servers() {
        let openai = r#"{"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}}"#;
        assert_eq!(server_message(openai), "Incorrect API key provided.");
        let vllm = r#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}"#;
        assert_eq!(server_message(vllm), "The model `x` does not exist.");
        assert_eq!(server_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            server_message(r#"{"error":"Input validation error","error_type":"validation"}"#),
            "Input validation error"
        );
        assert_eq!(server_message("  plain\n text "), "plain text");
        assert_eq!(server_message(""), "(empty body)");
        assert_eq!(server_message(&"x".repeat(400)).len(), 303);
    }
}
