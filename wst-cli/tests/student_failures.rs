//! A broken student stops `wst train` at once, with a message that says why: a student that
//! answers only 401 (named as such, the key never printed), only `content: null`, or 400 on
//! every request; and one that starts failing mid-run stops after its finished steps are saved,
//! then resumes once it answers again. The student is a small HTTP server on 127.0.0.1.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wst_core::http_test::read_request;

use crate::wst;

const KEY: &str = "sk-cli-test-5f3a9c1e7b2d";

/// What the server answers to one chat request: status line and JSON body.
type Handler = dyn Fn(&serde_json::Value) -> (&'static str, String) + Send + Sync;

struct Server {
    url: String,
    chats: Arc<AtomicUsize>,
}

impl Server {
    /// Serves `GET /v1/models` and answers chat requests with `handler`, one thread per
    /// connection, until the test process ends.
    fn start(handler: Arc<Handler>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let chats = Arc::new(AtomicUsize::new(0));
        let counter = chats.clone();
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { continue };
                let handler = handler.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let Some(req) = read_request(&mut sock) else {
                        return;
                    };
                    let (status, body) = if req.first.starts_with("GET") {
                        ("200 OK", r#"{"data":[{"id":"mock-model"}]}"#.to_string())
                    } else {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let v = serde_json::from_str(&req.body).unwrap_or_default();
                        handler(&v)
                    };
                    let msg = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: \
                         {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(msg.as_bytes());
                });
            }
        });
        Server { url, chats }
    }
}

/// `n` choices with `content` (a JSON value: a string or null).
fn choices(v: &serde_json::Value, content: serde_json::Value) -> String {
    let n = v["n"].as_u64().unwrap_or(1);
    let list: Vec<serde_json::Value> = (0..n)
        .map(|j| {
            serde_json::json!({"index": j, "message": {"role": "assistant", "content": content},
                               "finish_reason": "stop"})
        })
        .collect();
    serde_json::json!({ "choices": list }).to_string()
}

/// The tiny random Qwen2 teacher with an HTTP student at `url`: B = 2, G = 2, K = 2 (baselines
/// of 3 replies, so the server tells them apart by `n`), 2 steps.
fn config(dir: &Path, url: &str) -> PathBuf {
    let student = format!(
        r#"
[student]
kind = "openai"
model = "mock-model"
base_urls = ["{url}"]
api_key_env = "WST_CLI_TEST_KEY"
max_concurrency = 4
timeout_s = 5.0
max_retries = 3
samples = 2
baseline_samples = 3
"#
    );
    crate::train::tiny_config_with(dir, 10, &student, "")
}

struct Outcome {
    ok: bool,
    stderr: String,
    elapsed: Duration,
}

fn train(cfg: &Path, extra: &[&str]) -> Outcome {
    let t = Instant::now();
    let out = wst()
        .env("WST_CLI_TEST_KEY", KEY)
        .args(["train", "--quiet", "--config"])
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    let (stdout, stderr) = crate::text(&out);
    Outcome {
        ok: out.status.success(),
        stderr: format!("{stdout}{stderr}"),
        elapsed: t.elapsed(),
    }
}

/// [`train`] with a fresh [`config`] against `srv`.
fn train_against(srv: &Server) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    train(&config(dir.path(), &srv.url), &[])
}

fn assert_stopped(o: &Outcome, needles: &[&str]) {
    assert!(!o.ok, "the run did not fail:\n{}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(60), "{:?}", o.elapsed);
    for n in needles {
        assert!(o.stderr.contains(n), "no {n:?} in:\n{}", o.stderr);
    }
    assert!(
        !o.stderr.contains(KEY),
        "the key was printed:\n{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains('\u{1b}'),
        "colour codes in piped output:\n{}",
        o.stderr
    );
}

#[test]
fn a_student_answering_401_stops_train_at_once_naming_it() {
    let srv = Server::start(Arc::new(|_| {
        (
            "401 Unauthorized",
            r#"{"error":{"message":"Incorrect API key provided.","code":"invalid_api_key"}}"#
                .into(),
        )
    }));
    let o = train_against(&srv);
    assert_stopped(
        &o,
        &[
            "401 Unauthorized",
            "Incorrect API key provided.",
            "check the key in $WST_CLI_TEST_KEY",
            "nothing to save",
        ],
    );
    // Not retried: one refusal ends the call (max_retries = 3 would send 4 per request).
    assert!(srv.chats.load(Ordering::SeqCst) <= 2);
}

#[test]
fn a_student_answering_only_null_content_stops_train() {
    let srv = Server::start(Arc::new(|v| {
        ("200 OK", choices(v, serde_json::Value::Null))
    }));
    let o = train_against(&srv);
    assert_stopped(
        &o,
        &[
            "no baseline s_i",
            "the reply has no content (null",
            "step 1 of 2",
        ],
    );
    // Null content is an answer, not a transport error: nothing was retried.
    assert_eq!(srv.chats.load(Ordering::SeqCst), 2);
}

#[test]
fn a_student_answering_400_to_every_request_stops_train() {
    let srv = Server::start(Arc::new(|_| {
        (
            "400 Bad Request",
            r#"{"object":"error","message":"top_k is not supported","code":400}"#.into(),
        )
    }));
    let o = train_against(&srv);
    assert_stopped(&o, &["400 Bad Request", "top_k is not supported"]);
}

#[test]
fn a_student_failing_mid_run_stops_after_saving_then_resumes() {
    // Baselines (n = 3) always answer; replies to instructions (n = 2) answer for the first
    // step (4 requests), then come back without content until `healed`.
    let healed = Arc::new(AtomicBool::new(false));
    let with_instruction = Arc::new(AtomicUsize::new(0));
    let (h, w) = (healed.clone(), with_instruction.clone());
    let srv = Server::start(Arc::new(move |v| {
        let fine = v["n"] == 3 || w.fetch_add(1, Ordering::SeqCst) < 4 || h.load(Ordering::SeqCst);
        let content = if fine {
            serde_json::json!("The answer is 7.")
        } else {
            serde_json::Value::Null
        };
        ("200 OK", choices(v, content))
    }));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &srv.url);
    let run = dir.path().join("runs/tiny");
    let o = train(&cfg, &[]);
    assert_stopped(
        &o,
        &[
            "the run stopped in step 2 of 2",
            "8 of 8 student replies of step 2 failed",
            "student.max_failure_rate = 0.5",
            "most common error (8 of 8)",
            "no content",
            "saved: metrics and rollouts of step 1",
            "checkpoints/step-00000001",
            "--resume",
            "WARN",
        ],
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 1, "{metrics}");
    assert!(run.join("rollouts/step-000000.parquet").is_file());
    assert!(!run.join("rollouts/step-000001.parquet").exists());
    assert!(run
        .join("checkpoints/step-00000001/model.safetensors")
        .is_file());

    // Once the student answers, the run continues from the saved step.
    healed.store(true, Ordering::SeqCst);
    crate::run_ok(
        wst()
            .env("WST_CLI_TEST_KEY", KEY)
            .args(["train", "--quiet", "--resume"])
            .arg(&run),
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
}

#[test]
fn paper_configs_place_gemma_instructions_in_the_user_message_and_average_10_baselines() {
    let configs = crate::repo().join("configs");
    let load = |name: &str| wst_core::Config::load(&configs.join(name), &[]).unwrap();
    assert_eq!(
        load("gsm8k-gemma-student.toml").student.instruction_role,
        wst_core::InstructionRole::User
    );
    for name in [
        "hh-rlhf-qwen.toml",
        "gsm8k-qwen-math.toml",
        "math500-qwen-math.toml",
        "gsm8k-llama3-student.toml",
        "gsm8k-gemma-student.toml",
    ] {
        assert_eq!(load(name).student.baseline_samples, 10, "{name}");
    }
}
