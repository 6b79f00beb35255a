//! The HTTP student against a mock OpenAI-compatible server on 127.0.0.1 that misbehaves on
//! purpose: 429 with Retry-After (seconds and HTTP-date), 500, replies slower than the timeout,
//! malformed JSON, dropped connections, refusals (401, 403, 404, 400), `null` content and
//! content filters, and a cap on `n`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wst_core::http_test::{parse_request, Request};
use wst_core::{
    PromptTemplates, Query, SamplingParams, Student, StudentConfig, StudentKind, StudentRequest,
    TemplatePreset,
};
use wst_models::testing::http_date;
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
    /// 401 with an OpenAI-style body that echoes the key.
    Unauthorized,
    Forbidden,
    NotFound,
    BadRequest,
    /// 200 whose choices alternate `content: null` and `finish_reason: "content_filter"`.
    NullContent,
    /// 200 with at most 2 choices whatever `n` asks.
    CapN,
    /// 503 with `Retry-After` as an HTTP-date 2 s ahead.
    RetryAtDate,
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
    /// The JSON body of every chat request, in arrival order.
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    _runtime: tokio::runtime::Runtime,
}

fn choices(n: usize, content: impl Fn(usize) -> serde_json::Value) -> String {
    let choices: Vec<serde_json::Value> = (0..n)
        .map(|j| {
            serde_json::json!({
                "index": j,
                "message": {"role": "assistant", "content": content(j)},
                "finish_reason": "stop"
            })
        })
        .collect();
    serde_json::json!({"object": "chat.completion", "choices": choices}).to_string()
}

/// One request, read until [`parse_request`] finds it whole.
async fn read_request(sock: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    loop {
        if sock.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
        if let Some(req) = parse_request(&buf) {
            return Some(req);
        }
    }
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
        let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let counter = Arc::new(AtomicUsize::new(0));
        let log2 = log.clone();
        let bodies2 = bodies.clone();
        runtime.spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    continue;
                };
                let log = log2.clone();
                let bodies = bodies2.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    if req.first.starts_with("GET /v1/models") {
                        let body = r#"{"object":"list","data":[{"id":"mock-model","object":"model"}]}"#;
                        respond(&mut sock, "200 OK", "", body).await;
                        return;
                    }
                    if let Some(k) = key {
                        if !req.head.contains(&format!("Bearer {k}")) {
                            respond(&mut sock, "401 Unauthorized", "", "{}").await;
                            return;
                        }
                    }
                    let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
                    let msgs = v["messages"].as_array().unwrap();
                    let user = msgs.last().unwrap()["content"].as_str().unwrap().to_string();
                    let n = v["n"].as_u64().unwrap() as usize;
                    let i = counter.fetch_add(1, Ordering::SeqCst);
                    let b = behaviour(i);
                    log.lock().unwrap().push((user.clone(), b, Instant::now()));
                    bodies.lock().unwrap().push(v.clone());
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
                        Behaviour::Unauthorized => {
                            let auth = req
                                .header("authorization")
                                .and_then(|v| v.strip_prefix("Bearer "))
                                .unwrap_or("none")
                                .to_string();
                            let body = serde_json::json!({"error": {
                                "message": format!("Incorrect API key provided: {auth}."),
                                "type": "invalid_request_error", "code": "invalid_api_key"}});
                            respond(&mut sock, "401 Unauthorized", "", &body.to_string()).await
                        }
                        Behaviour::Forbidden => {
                            let body = r#"{"error": {"message": "Project does not have access to model mock-model"}}"#;
                            respond(&mut sock, "403 Forbidden", "", body).await
                        }
                        Behaviour::NotFound => {
                            let body = r#"{"object":"error","message":"The model `mock-model` does not exist.","type":"NotFoundError","code":404}"#;
                            respond(&mut sock, "404 Not Found", "", body).await
                        }
                        Behaviour::BadRequest => {
                            let body = r#"{"object":"error","message":"This model's maximum context length is 8 tokens.","type":"BadRequestError","code":400}"#;
                            respond(&mut sock, "400 Bad Request", "", body).await
                        }
                        Behaviour::NullContent => {
                            let list: Vec<serde_json::Value> = (0..n)
                                .map(|j| if j % 2 == 0 {
                                    serde_json::json!({"index": j, "message": {"role": "assistant", "content": null}, "finish_reason": "stop"})
                                } else {
                                    serde_json::json!({"index": j, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"})
                                })
                                .collect();
                            let body = serde_json::json!({"choices": list}).to_string();
                            respond(&mut sock, "200 OK", "", &body).await
                        }
                        Behaviour::CapN => {
                            let seed = v["seed"].as_u64().unwrap_or(0);
                            let body = choices(n.min(2), |j| format!("seed {}", seed + j as u64).into());
                            respond(&mut sock, "200 OK", "", &body).await
                        }
                        Behaviour::RetryAtDate => {
                            let now = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .unwrap()
                                .as_secs();
                            let extra = format!("Retry-After: {}\r\n", http_date(now + 2));
                            respond(&mut sock, "503 Service Unavailable", &extra, "busy").await
                        }
                        Behaviour::Slow | Behaviour::Ok => {
                            if b == Behaviour::Slow {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let body = choices(n, |j| format!("answer to [{user}] #{j}").into());
                            respond(&mut sock, "200 OK", "", &body).await;
                        }
                    }
                });
            }
        });
        MockServer {
            url,
            log,
            bodies,
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

/// A student of `srv` alone, with `retries` retries and the fast backoff.
fn fast_student(srv: &MockServer, retries: u32) -> HttpStudent {
    HttpStudent::from_config(&student_config(vec![srv.url.clone()], retries), templates())
        .unwrap()
        .with_backoff(fast_backoff())
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
    let mut s = fast_student(&srv, 2);
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

fn one_request(
    s: &mut HttpStudent,
    k: usize,
) -> wst_core::Result<Vec<Vec<wst_core::StudentReply>>> {
    let q = Query::new("q", "What is 1 + 1?");
    let reqs = vec![
        StudentRequest {
            query: &q,
            instruction: Some("Add."),
            k,
        };
        6
    ];
    s.generate(&reqs, &SamplingParams::default())
}

#[test]
fn refusals_stop_the_call_at_once_with_status_message_and_hint() {
    std::env::set_var("WST_TEST_HTTP_KEY_401", "sk-test-0123456789abcdef");
    type Case = (
        fn(usize) -> Behaviour,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            |_| Behaviour::Unauthorized,
            "401 Unauthorized",
            "Incorrect API key provided",
            "check the key in $WST_TEST_HTTP_KEY_401",
        ),
        (
            |_| Behaviour::Forbidden,
            "403 Forbidden",
            "does not have access",
            "is not allowed to use model `mock-model`",
        ),
        (
            |_| Behaviour::NotFound,
            "404 Not Found",
            "The model `mock-model` does not exist.",
            "check student.model",
        ),
    ];
    for (behaviour, status, message, hint) in cases {
        let srv = MockServer::start(behaviour, None);
        let mut cfg = student_config(vec![srv.url.clone()], 5);
        cfg.api_key_env = Some("WST_TEST_HTTP_KEY_401".into());
        cfg.max_concurrency = 1;
        let mut s = HttpStudent::from_config(&cfg, templates()).unwrap();
        let t = Instant::now();
        let e = one_request(&mut s, 3).unwrap_err();
        let chain = wst_core::error_chain(&e);
        assert!(chain.contains(status), "{chain}");
        assert!(chain.contains(message), "{chain}");
        assert!(chain.contains(hint), "{chain}");
        assert!(chain.contains(&srv.url), "{chain}");
        assert!(
            !chain.contains("0123456789abcdef"),
            "the key leaked: {chain}"
        );
        // No retry, and the other requests of the call were stopped, not sent one by one.
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(srv.log.lock().unwrap().len() <= 2, "{:?}", s.stats());
        assert_eq!(s.stats().retries, 0);
    }
    // A server expecting another key, answering a bare 401.
    let srv = MockServer::start(|_| Behaviour::Ok, Some("right-key-123456"));
    let mut cfg = student_config(vec![srv.url.clone()], 3);
    cfg.api_key_env = Some("WST_TEST_HTTP_KEY_401".into());
    let mut s = HttpStudent::from_config(&cfg, templates()).unwrap();
    let e = wst_core::error_chain(&one_request(&mut s, 1).unwrap_err());
    assert!(
        e.contains("401 Unauthorized") && e.contains("$WST_TEST_HTTP_KEY_401"),
        "{e}"
    );
}

#[test]
fn a_bad_request_fails_its_replies_without_retry() {
    let srv = MockServer::start(|_| Behaviour::BadRequest, None);
    let mut s = fast_student(&srv, 5);
    let out = one_request(&mut s, 2).unwrap();
    for r in out.iter().flatten() {
        let wst_core::StudentReply::Failed(f) = r else {
            panic!("{r:?}")
        };
        assert_eq!(f.attempts, 1);
        assert!(
            f.error.contains("400 Bad Request") && f.error.contains("maximum context length"),
            "{}",
            f.error
        );
    }
    assert_eq!(srv.log.lock().unwrap().len(), 6);
    assert_eq!(s.stats().failed_replies, 12);
}

#[test]
fn null_content_and_content_filter_are_failed_replies() {
    let srv = MockServer::start(|_| Behaviour::NullContent, None);
    let mut s = fast_student(&srv, 5);
    let out = one_request(&mut s, 4).unwrap();
    for replies in &out {
        let errors: Vec<&str> = replies
            .iter()
            .map(|r| match r {
                wst_core::StudentReply::Failed(f) => f.error.as_str(),
                other => panic!("scored as a reply: {other:?}"),
            })
            .collect();
        assert!(errors[0].contains("no content"), "{}", errors[0]);
        assert!(errors[1].contains("content_filter"), "{}", errors[1]);
    }
    let st = s.stats();
    assert_eq!(
        (st.failed_replies, st.no_content, st.completed_replies),
        (24, 24, 0)
    );
    // One request each: such choices are answers, not transport errors to retry.
    assert_eq!(srv.log.lock().unwrap().len(), 6);
}

#[test]
fn top_ups_offset_the_seed_by_the_replies_received_and_top_k_is_sent() {
    let srv = MockServer::start(|_| Behaviour::CapN, None);
    let mut s =
        HttpStudent::from_config(&student_config(vec![srv.url.clone()], 0), templates()).unwrap();
    let q = Query::new("q", "What is 1 + 1?");
    let req = [StudentRequest {
        query: &q,
        instruction: None,
        k: 5,
    }];
    let sampling = SamplingParams {
        seed: Some(100),
        top_k: 20,
        ..SamplingParams::default()
    };
    let out = s.generate(&req, &sampling).unwrap();
    let texts: Vec<&str> = out[0].iter().map(|r| r.as_text().unwrap()).collect();
    // The server seeds choice j with seed + j: no reply is drawn twice.
    assert_eq!(
        texts,
        ["seed 100", "seed 101", "seed 102", "seed 103", "seed 104"]
    );
    let bodies = srv.bodies.lock().unwrap().clone();
    let asked: Vec<(u64, u64)> = bodies
        .iter()
        .map(|b| (b["n"].as_u64().unwrap(), b["seed"].as_u64().unwrap()))
        .collect();
    assert_eq!(asked, [(5, 100), (3, 102), (1, 104)]);
    assert!(bodies.iter().all(|b| b["top_k"] == 20), "{bodies:?}");

    // top_k = 0 (off) is not sent.
    let _ = s.generate(&req, &SamplingParams::default()).unwrap();
    let last = srv.bodies.lock().unwrap().last().cloned().unwrap();
    assert!(last.get("top_k").is_none(), "{last}");
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    fn first_busy(i: usize) -> Behaviour {
        if i == 0 {
            Behaviour::RetryAtDate
        } else {
            Behaviour::Ok
        }
    }
    let srv = MockServer::start(first_busy, None);
    let mut s = fast_student(&srv, 2);
    let q = Query::new("q", "What is 1 + 1?");
    let req = [StudentRequest {
        query: &q,
        instruction: None,
        k: 1,
    }];
    let out = s.generate(&req, &SamplingParams::default()).unwrap();
    assert!(out[0][0].as_text().is_some(), "{out:?}");
    let log = srv.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    // The date is 2 s ahead at a resolution of 1 s: at least 1 s passed (the fast backoff alone
    // would retry within 50 ms), and the jitter after it is below the backoff base.
    let gap = log[1].2 - log[0].2;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_millis(2500),
        "{gap:?}"
    );
}

#[test]
fn instruction_role_user_opens_the_user_message() {
    let srv = MockServer::start(|_| Behaviour::Ok, None);
    let q = Query::new("q", "What is 1 + 1?");
    let req = [StudentRequest {
        query: &q,
        instruction: Some("Add carefully."),
        k: 1,
    }];
    for (role, system) in [
        (wst_core::InstructionRole::Auto, true),
        (wst_core::InstructionRole::System, true),
        (wst_core::InstructionRole::User, false),
    ] {
        let mut cfg = student_config(vec![srv.url.clone()], 0);
        cfg.instruction_role = role;
        let mut s = HttpStudent::from_config(&cfg, templates()).unwrap();
        s.generate(&req, &SamplingParams::default()).unwrap();
        let body = srv.bodies.lock().unwrap().last().cloned().unwrap();
        let msgs = body["messages"].as_array().unwrap();
        if system {
            assert_eq!(msgs.len(), 2, "{role:?}: {body}");
            assert_eq!(msgs[0]["role"], "system");
            assert_eq!(msgs[0]["content"], "Add carefully.");
            assert_eq!(s.id(), "openai:mock-model");
        } else {
            assert_eq!(msgs.len(), 1, "{role:?}: {body}");
            assert_eq!(msgs[0]["role"], "user");
            assert_eq!(msgs[0]["content"], "Add carefully.\n\nWhat is 1 + 1?");
            assert_eq!(s.id(), "openai:mock-model;instruction=user");
        }
    }
}

/// `generate_each` hands each request's replies over as its call returns: three fast requests
/// arrive while a slow one (3 s) is still out, and each request arrives exactly once.
#[test]
fn replies_are_handed_over_as_they_arrive() {
    let srv = MockServer::start(
        |i| {
            if i == 0 {
                Behaviour::Slow
            } else {
                Behaviour::Ok
            }
        },
        None,
    );
    let mut cfg = student_config(vec![srv.url.clone()], 0);
    cfg.timeout_s = 20.0;
    let mut student = HttpStudent::from_config(&cfg, templates()).unwrap();
    let queries: Vec<Query> = (0..4)
        .map(|i| Query::new(format!("q{i}"), format!("What is {i} + 1?")))
        .collect();
    let requests: Vec<StudentRequest<'_>> = queries
        .iter()
        .map(|q| StudentRequest {
            query: q,
            instruction: None,
            k: 2,
        })
        .collect();
    let t0 = Instant::now();
    let mut seen: Vec<(usize, usize, Duration)> = Vec::new();
    student
        .generate_each(&requests, &SamplingParams::default(), &mut |i, replies| {
            seen.push((i, replies.len(), t0.elapsed()));
            Ok(())
        })
        .unwrap();
    let mut order: Vec<usize> = seen.iter().map(|s| s.0).collect();
    order.sort_unstable();
    assert_eq!(order, vec![0, 1, 2, 3], "{seen:?}");
    assert!(seen.iter().all(|s| s.1 == 2), "{seen:?}");
    let slow_user = srv.log.lock().unwrap()[0].0.clone();
    let slow = queries
        .iter()
        .position(|q| slow_user.contains(&q.text))
        .unwrap();
    assert_eq!(seen[3].0, slow, "the slow request came last: {seen:?}");
    assert!(
        seen[..3]
            .iter()
            .all(|s| s.2 + Duration::from_secs(2) < seen[3].2),
        "the fast replies waited for the slow one: {seen:?}"
    );
}
