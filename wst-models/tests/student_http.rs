//! The HTTP student against a mock OpenAI-compatible server on 127.0.0.1 that misbehaves on
//! purpose: 429 with Retry-After, 500, replies slower than the timeout, malformed JSON and
//! dropped connections.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wst_core::{
    PromptTemplates, Query, SamplingParams, Student, StudentConfig, StudentKind, StudentRequest,
    TemplatePreset,
};
use wst_models::{Backoff, HttpStudent};

/// What the server does with the n-th chat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    RateLimit,
    ServerError,
    Slow,
    Malformed,
    Drop,
    Ok,
}

/// Cycle of behaviours: half of the attempts misbehave.
fn flaky(i: usize) -> Behaviour {
    match i % 10 {
        0 => Behaviour::RateLimit,
        1 => Behaviour::ServerError,
        2 => Behaviour::Slow,
        3 => Behaviour::Malformed,
        4 => Behaviour::Drop,
        _ => Behaviour::Ok,
    }
}

/// One request the server saw: the query it asked about, what was done, when.
type Log = Arc<Mutex<Vec<(String, Behaviour, Instant)>>>;

struct MockServer {
    url: String,
    log: Log,
    _runtime: tokio::runtime::Runtime,
}

async fn read_request(sock: &mut TcpStream) -> Option<(String, String, String)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let first = head.lines().next().unwrap_or("").to_string();
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
    Some((first, head, body))
}

async fn respond(sock: &mut TcpStream, status: &str, extra: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.shutdown().await;
}

impl MockServer {
    fn start(behaviour: fn(usize) -> Behaviour, key: Option<&'static str>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let log: Log = Arc::default();
        let counter = Arc::new(AtomicUsize::new(0));
        let log2 = log.clone();
        runtime.spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let log = log2.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Some((first, head, body)) = read_request(&mut sock).await else {
                        return;
                    };
                    if first.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"mock-model","object":"model"}]}"#;
                        respond(&mut sock, "200 OK", "", body).await;
                        return;
                    }
                    if let Some(k) = key {
                        if !head.contains(&format!("Bearer {k}")) {
                            respond(&mut sock, "401 Unauthorized", "", "{}").await;
                            return;
                        }
                    }
                    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                    let msgs = v["messages"].as_array().unwrap();
                    let user = msgs.last().unwrap()["content"].as_str().unwrap().to_string();
                    let n = v["n"].as_u64().unwrap() as usize;
                    let i = counter.fetch_add(1, Ordering::SeqCst);
                    let b = behaviour(i);
                    log.lock().unwrap().push((user.clone(), b, Instant::now()));
                    match b {
                        Behaviour::RateLimit => {
                            respond(&mut sock, "429 Too Many Requests", "Retry-After: 1\r\n", "{}")
                                .await
                        }
                        Behaviour::ServerError => {
                            respond(&mut sock, "500 Internal Server Error", "", "oops").await
                        }
                        Behaviour::Malformed => respond(&mut sock, "200 OK", "", "{\"choices\": [").await,
                        Behaviour::Drop => drop(sock),
                        Behaviour::Slow | Behaviour::Ok => {
                            if b == Behaviour::Slow {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let choices: Vec<serde_json::Value> = (0..n)
                                .map(|j| {
                                    serde_json::json!({
                                        "index": j,
                                        "message": {"role": "assistant", "content": format!("answer to [{user}] #{j}")},
                                        "finish_reason": "stop"
                                    })
                                })
                                .collect();
                            let body = serde_json::json!({"object": "chat.completion", "choices": choices});
                            respond(&mut sock, "200 OK", "", &body.to_string()).await;
                        }
                    }
                });
            }
        });
        MockServer {
            url,
            log,
            _runtime: runtime,
        }
    }
}

fn student_config(urls: Vec<String>, retries: u32) -> StudentConfig {
    StudentConfig {
        kind: StudentKind::Openai,
        model: "mock-model".into(),
        base_urls: urls,
        max_concurrency: 4,
        timeout_s: 0.5,
        max_retries: retries,
        ..StudentConfig::default()
    }
}

fn templates() -> PromptTemplates {
    PromptTemplates::new(TemplatePreset::Arith.texts()).unwrap()
}

fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
    }
}

#[test]
fn flaky_server_loses_no_request() {
    let a = MockServer::start(flaky, Some("sekret-123"));
    let b = MockServer::start(flaky, Some("sekret-123"));
    std::env::set_var("WST_TEST_HTTP_KEY", "sekret-123");
    let mut cfg = student_config(vec![a.url.clone(), format!("{}/", b.url)], 12);
    cfg.api_key_env = Some("WST_TEST_HTTP_KEY".into());
    let mut s = HttpStudent::from_config(&cfg, templates())
        .unwrap()
        .with_backoff(fast_backoff());
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("sekret"), "{dbg}");
    s.probe().unwrap();

    let queries: Vec<Query> = (0..16)
        .map(|i| Query::new(format!("q{i}"), format!("What is {i} + 1?")))
        .collect();
    let reqs: Vec<StudentRequest<'_>> = queries
        .iter()
        .map(|q| StudentRequest {
            query: q,
            instruction: Some("Add carefully."),
            k: 3,
        })
        .collect();
    let out = s.generate(&reqs, &SamplingParams::default()).unwrap();
    assert_eq!(out.len(), 16);
    for (q, replies) in queries.iter().zip(&out) {
        assert_eq!(replies.len(), 3);
        for (j, r) in replies.iter().enumerate() {
            let text = r.as_text().unwrap_or_else(|| panic!("{}: {r:?}", q.id));
            assert_eq!(
                text,
                format!("answer to [{}] #{j}", q.text),
                "reply mixed up"
            );
        }
    }
    let st = s.stats();
    eprintln!("{st:?}");
    assert_eq!(st.completed_replies, 48);
    assert_eq!(st.failed_replies, 0);
    assert_eq!(st.ok, 16);
    // Every misbehaviour was met and counted.
    assert!(st.rate_limited > 0 && st.server_errors > 0 && st.timeouts > 0);
    assert!(st.malformed > 0 && st.connection_errors > 0);
    assert_eq!(st.attempts, st.ok + st.retries);
    // Both servers were used (round-robin).
    let (la, lb) = (a.log.lock().unwrap().len(), b.log.lock().unwrap().len());
    assert!(la > 0 && lb > 0, "{la} / {lb}");
    // Retry-After was honoured: the next attempt of a rate-limited query came >= 1 s later.
    let mut all: Vec<(String, Behaviour, Instant)> = a.log.lock().unwrap().clone();
    all.extend(b.log.lock().unwrap().iter().cloned());
    all.sort_by_key(|e| e.2);
    let mut by_query: BTreeMap<String, Vec<(Behaviour, Instant)>> = BTreeMap::new();
    for (q, b, t) in all {
        by_query.entry(q).or_default().push((b, t));
    }
    let mut checked = 0;
    for seq in by_query.values() {
        for w in seq.windows(2) {
            if w[0].0 == Behaviour::RateLimit {
                assert!(w[1].1 - w[0].1 >= Duration::from_millis(950));
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
}

#[test]
fn failures_after_the_last_retry_are_explicit_and_counted() {
    let srv = MockServer::start(|_| Behaviour::ServerError, None);
    let mut s = HttpStudent::from_config(&student_config(vec![srv.url.clone()], 2), templates())
        .unwrap()
        .with_backoff(fast_backoff());
    let q = Query::new("q", "What is 1 + 1?");
    let reqs = vec![
        StudentRequest {
            query: &q,
            instruction: None,
            k: 4,
        };
        3
    ];
    let out = s.generate(&reqs, &SamplingParams::default()).unwrap();
    for replies in &out {
        assert_eq!(replies.len(), 4);
        for r in replies {
            match r {
                wst_core::StudentReply::Failed(f) => {
                    assert_eq!(f.attempts, 3);
                    assert!(f.error.contains("500"), "{}", f.error);
                }
                other => panic!("expected a failure, got {other:?}"),
            }
        }
    }
    let st = s.stats();
    assert_eq!(st.failed_replies, 12);
    assert_eq!(st.attempts, 9);
    assert_eq!(srv.log.lock().unwrap().len(), 9);
}

#[test]
fn probe_names_the_url_that_does_not_answer() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let s = HttpStudent::from_config(&student_config(vec![url.clone()], 0), templates()).unwrap();
    let e = s.probe().unwrap_err().to_string();
    assert!(e.contains(&url) && e.contains("cannot connect"), "{e}");

    let srv = MockServer::start(|_| Behaviour::Ok, None);
    let mut cfg = student_config(vec![srv.url.clone()], 0);
    cfg.model = "other-model".into();
    let e = HttpStudent::from_config(&cfg, templates())
        .unwrap()
        .probe()
        .unwrap_err()
        .to_string();
    assert!(e.contains("other-model") && e.contains("mock-model"), "{e}");

    let mut cfg = student_config(vec![srv.url.clone()], 0);
    cfg.api_key_env = Some("WST_TEST_HTTP_KEY_UNSET".into());
    let e = HttpStudent::from_config(&cfg, templates())
        .unwrap_err()
        .to_string();
    assert!(e.contains("WST_TEST_HTTP_KEY_UNSET"), "{e}");
}
