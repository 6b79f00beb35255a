//! `kind = "http"` and `kind = "judge"` against scripted servers on 127.0.0.1: the OpenRLHF
//! request shape, batching, 500s and timeouts retried, garbage refused, judge failures counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wst_core::{ComponentKind, Query, Reward, RewardComponentConfig, RewardInput};
use wst_reward::{Backoff, HttpReward, JudgeReward};

/// What the scripted server does with one request.
enum Reply {
    Json(u16, String),
    Sleep(Duration, String),
}

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

/// A server that answers request `n` (0-based, in arrival order) with `handler(n, body)`.
fn serve<F>(handler: F) -> Server
where
    F: Fn(usize, &Value) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let (h, b) = (hits.clone(), bodies.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let (h, b, handler) = (h.clone(), b.clone(), handler.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let body: Value = serde_json::from_slice(&body).unwrap();
                let n = h.fetch_add(1, Ordering::SeqCst);
                b.lock().unwrap().push(body.clone());
                let (code, text) = match handler(n, &body) {
                    Reply::Json(c, t) => (c, t),
                    Reply::Sleep(d, t) => {
                        std::thread::sleep(d);
                        (200, t)
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            });
        }
    });
    Server { url, hits, bodies }
}

fn fast() -> Backoff {
    Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

fn http_cfg(url: &str, batch: usize, retries: u32, timeout: f64) -> RewardComponentConfig {
    RewardComponentConfig {
        url: Some(url.to_string()),
        batch_size: batch,
        max_retries: retries,
        timeout_s: timeout,
        max_concurrency: 2,
        ..RewardComponentConfig::of(ComponentKind::Http)
    }
}

fn queries() -> Vec<Query> {
    (0..5)
        .map(|i| {
            Query::new(format!("q{i}"), format!("What is {i} + 1?"))
                .with_reference((i + 1).to_string())
        })
        .collect()
}

fn inputs<'a>(qs: &'a [Query], replies: &'a [String]) -> Vec<RewardInput<'a>> {
    qs.iter()
        .zip(replies)
        .enumerate()
        .map(|(i, (q, r))| {
            RewardInput::new(q, r).with_instruction((i % 2 == 0).then_some("Add one."))
        })
        .collect()
}

/// The rewards an OpenRLHF-style server computes: 1 when the reply equals the label, plus a
/// tenth of the reply's length (taken from `query[len(prompt):]`).
fn rm(body: &Value) -> String {
    let q = body["query"].as_array().unwrap();
    let p = body["prompts"].as_array().unwrap();
    let l = body["labels"].as_array().unwrap();
    let r: Vec<f64> = q
        .iter()
        .zip(p)
        .zip(l)
        .map(|((q, p), l)| {
            let reply = &q.as_str().unwrap()[p.as_str().unwrap().len()..];
            f64::from(u8::from(reply == l.as_str().unwrap())) + reply.len() as f64 / 10.0
        })
        .collect();
    json!({ "rewards": r }).to_string()
}

#[test]
fn http_reward_posts_openrlhf_batches_and_keeps_order() {
    let s = serve(|_, b| Reply::Json(200, rm(b)));
    let mut r = HttpReward::from_config("rm", &http_cfg(&s.url, 2, 0, 10.0))
        .unwrap()
        .with_backoff(fast());
    let qs = queries();
    let replies: Vec<String> = ["1", "3", "three", "4", "5"].map(String::from).to_vec();
    let out = r.score(&inputs(&qs, &replies)).unwrap();
    let got: Vec<f64> = out.iter().map(|c| c.get("rm").unwrap()).collect();
    assert_eq!(got, vec![1.1, 0.1, 0.5, 1.1, 1.1]);
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        3,
        "5 replies in batches of 2"
    );
    let bodies = s.bodies.lock().unwrap();
    let mut sizes: Vec<usize> = bodies
        .iter()
        .map(|b| b["query"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2]);
    let first = bodies
        .iter()
        .find(|b| b["prompts"][0] == "What is 0 + 1?")
        .unwrap();
    assert_eq!(first["query"][0], "What is 0 + 1?1");
    assert_eq!(first["labels"], json!(["1", "2"]));
    assert_eq!(first["replies"], json!(["1", "3"]));
    assert_eq!(first["instructions"], json!(["Add one.", ""]));
}

#[test]
fn http_reward_retries_500s_and_timeouts() {
    // Attempts 0 and 1 fail with 500, attempt 2 sleeps past the timeout, attempt 3 answers.
    let s = serve(|n, b| match n {
        0 | 1 => Reply::Json(500, "{\"error\": \"busy\"}".into()),
        2 => Reply::Sleep(Duration::from_secs(3), rm(b)),
        _ => Reply::Json(200, rm(b)),
    });
    let mut r = HttpReward::from_config("rm", &http_cfg(&s.url, 8, 3, 0.5))
        .unwrap()
        .with_backoff(fast());
    let qs = queries();
    let replies: Vec<String> = ["1", "2"].map(String::from).to_vec();
    let out = r.score(&inputs(&qs[..2], &replies)).unwrap();
    assert_eq!(out[1].get("rm"), Some(1.1));
    let c = r.counts();
    assert_eq!(
        (c.attempts, c.retries, c.server_errors, c.timeouts),
        (4, 3, 2, 1),
        "{c:?}"
    );
}

#[test]
fn http_reward_garbage_and_exhausted_retries_stop_with_the_url() {
    for (body, want) in [
        ("<html>oops</html>", "not JSON"),
        ("{\"scores\": [1]}", "no `rewards` list"),
        ("{\"rewards\": [1, 2, 3]}", "3 values for 1 replies"),
        ("{\"rewards\": [\"x\"]}", "not a finite number"),
    ] {
        let s = serve(move |_, _| Reply::Json(200, body.into()));
        let mut r = HttpReward::from_config("rm", &http_cfg(&s.url, 4, 2, 5.0))
            .unwrap()
            .with_backoff(fast());
        let qs = queries();
        let replies = vec!["1".to_string()];
        let e = wst_core::error_chain(&r.score(&inputs(&qs[..1], &replies)).unwrap_err());
        assert!(e.contains(want) && e.contains(&s.url), "{want}: {e}");
        assert!(e.contains("after 3 attempts"), "{e}");
        assert_eq!(s.hits.load(Ordering::SeqCst), 3, "garbage is retried");
    }
    // A 400 is not retried.
    let s = serve(|_, _| Reply::Json(400, "{\"error\": \"bad field\"}".into()));
    let mut r = HttpReward::from_config("rm", &http_cfg(&s.url, 4, 5, 5.0))
        .unwrap()
        .with_backoff(fast());
    let qs = queries();
    let replies = vec!["1".to_string()];
    let e = wst_core::error_chain(&r.score(&inputs(&qs[..1], &replies)).unwrap_err());
    assert!(e.contains("400") && e.contains("bad field"), "{e}");
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
}

fn judge_cfg(url: &str, retries: u32, timeout: f64) -> RewardComponentConfig {
    RewardComponentConfig {
        url: Some(format!("{url}/v1")),
        model: Some("judge-7b".into()),
        system: Some("You grade answers.".into()),
        template: Some(
            "Question: {{ query }}\nReference: {{ reference or 'none' }}\nAnswer: {{ reply }}\n\
             {% if instruction %}Hint given: {{ instruction }}\n{% endif %}Give Score: 1-10"
                .into(),
        ),
        score_regex: r"Score:\s*(\d+)".into(),
        score_range: [1.0, 10.0],
        max_retries: retries,
        timeout_s: timeout,
        ..RewardComponentConfig::of(ComponentKind::Judge)
    }
}

fn chat(content: &str) -> String {
    json!({"choices": [{"message": {"role": "assistant", "content": content}}]}).to_string()
}

/// The judge's answer depends on the reply, which the server reads from the rendered prompt.
fn judged(body: &Value) -> Reply {
    let user = body["messages"][1]["content"].as_str().unwrap();
    let reply = user
        .split("Answer: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    Reply::Json(
        200,
        chat(match reply {
            "good" => "Clear and right. Score: 3, no wait, Score: 7",
            "wild" => "Score: 11",
            "slow" => return Reply::Sleep(Duration::from_secs(3), chat("Score: 5")),
            _ => "I cannot say.",
        }),
    )
}

#[test]
fn judge_scores_in_range_and_counts_what_it_cannot_score() {
    let s = serve(|_, b| judged(b));
    let mut j = JudgeReward::from_config("judge", &judge_cfg(&s.url, 0, 1.0))
        .unwrap()
        .with_backoff(fast());
    let qs = queries();
    let replies: Vec<String> = ["good", "wild", "meh", "slow"].map(String::from).to_vec();
    let out = j.score(&inputs(&qs[..4], &replies)).unwrap();
    assert_eq!(
        out[0].get("judge"),
        Some((7.0 - 1.0) / 9.0),
        "the last match counts"
    );
    for (i, c) in out.iter().enumerate().skip(1) {
        assert_eq!(c.get("judge"), None, "reply {i} has no score, not 0");
    }
    let c = j.counts();
    assert_eq!(
        (
            c.replies,
            c.scored,
            c.out_of_range,
            c.no_score,
            c.request_failures
        ),
        (4, 1, 1, 1, 1),
        "{c:?}"
    );
    let bodies = s.bodies.lock().unwrap();
    let b = bodies
        .iter()
        .find(|b| {
            b["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("Answer: good")
        })
        .unwrap();
    assert_eq!(b["model"], "judge-7b");
    assert_eq!(b["messages"][0]["content"], "You grade answers.");
    assert_eq!(
        b["messages"][1]["content"],
        "Question: What is 0 + 1?\nReference: 1\nAnswer: good\nHint given: Add one.\nGive Score: 1-10"
    );
}

#[test]
fn judge_retries_500s_and_stops_when_the_endpoint_is_down() {
    let s = serve(|n, _| {
        if n < 2 {
            Reply::Json(503, "{}".into())
        } else {
            Reply::Json(200, chat("Score: 10"))
        }
    });
    let mut j = JudgeReward::from_config("judge", &judge_cfg(&s.url, 3, 5.0))
        .unwrap()
        .with_backoff(fast());
    let qs = queries();
    let replies = vec!["x".to_string()];
    let out = j.score(&inputs(&qs[..1], &replies)).unwrap();
    assert_eq!(out[0].get("judge"), Some(1.0));
    assert_eq!(j.http_counts().retries, 2);

    let down = serve(|_, _| Reply::Json(500, "{}".into()));
    let mut j = JudgeReward::from_config("judge", &judge_cfg(&down.url, 1, 5.0))
        .unwrap()
        .with_backoff(fast());
    let replies = vec!["x".to_string(), "y".to_string()];
    let e = wst_core::error_chain(&j.score(&inputs(&qs[..2], &replies)).unwrap_err());
    assert!(
        e.contains("every one of 2 judge requests failed") && e.contains("500"),
        "{e}"
    );
    assert_eq!(down.hits.load(Ordering::SeqCst), 4);
}
