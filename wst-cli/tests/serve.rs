//! `wst serve` end to end: the official `openai` Python client against a served tiny model and
//! against the WST proxy in front of it (the served model as its HTTP student), the HTTP
//! details a client cannot see (health without a key, body limit, unknown routes, SIGTERM
//! finishing the request in flight), and `wst train` with the served model as an `openai`
//! student giving what the local student gives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::train::tiny_config;
use crate::{python_with, repo, run_ok, text, wst};

const KEY_VAR: &str = "WST_SERVE_TEST_KEY";
const KEY: &str = "test-key-123";

/// A running `wst serve`, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = wst()
            .arg("serve")
            .args(["--port", "0", "--device", "cpu"])
            .args(args)
            .env(KEY_VAR, KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("wst serve: listening on http://")
            .and_then(|a| a.strip_suffix("/v1"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Server { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn python_with_openai() -> PathBuf {
    python_with(&["openai", "pyarrow", "polars"])
}

fn client_check(python: &Path, mode: &str, url: &str, key: &str, model: &str) -> String {
    let out = Command::new(python)
        .arg(repo().join("scripts/openai-client-check.py"))
        .args([mode, url, key, model])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{mode}:\n{stdout}\n{stderr}");
    stdout
}

fn tiny_model() -> String {
    crate::tiny_model().display().to_string()
}

#[test]
fn openai_client_against_a_served_model_and_the_proxy() {
    let python = python_with_openai();
    let model = tiny_model();
    let served = Server::start(&[
        "--model",
        &model,
        "--served-model-name",
        "tiny",
        "--api-key-env",
        KEY_VAR,
        "--max-body-bytes",
        "4096",
    ]);
    let out = client_check(&python, "model", &served.url(), KEY, "tiny");
    assert_eq!(out.matches("OK ").count(), 11, "{out}");

    // What the client does not show: /health needs no key, /v1/models does, errors have
    // OpenAI's shape, the body is limited.
    let (st, body) = http(&served.addr, "GET", "/health", &[], "");
    assert_eq!((st, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (st, body) = http(&served.addr, "GET", "/v1/models", &[], "");
    assert_eq!(st, 401, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "missing_api_key", "{v}");
    let auth = format!("Authorization: Bearer {KEY}");
    let (st, body) = http(&served.addr, "GET", "/v1/nothing", &[&auth], "");
    assert_eq!(st, 404, "{body}");
    let big = format!(
        r#"{{"model": "tiny", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(6000)
    );
    let (st, body) = http(
        &served.addr,
        "POST",
        "/v1/chat/completions",
        &[&auth, "Content-Type: application/json"],
        &big,
    );
    assert_eq!(st, 413, "{body}");
    let (st, body) = http(
        &served.addr,
        "POST",
        "/v1/chat/completions",
        &[&auth],
        r#"{"model": "tiny", "messages": [{"role": "user", "content": "q"}], "n": "two"}"#,
    );
    assert_eq!(st, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["param"], "n", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    // The proxy: the tiny teacher in front of the served model as the config's HTTP student.
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let cfg_s = cfg.display().to_string();
    let urls = format!("student.base_urls=[\"{}\"]", served.url());
    let key_env = format!("student.api_key_env=\"{KEY_VAR}\"");
    let proxy = Server::start(&[
        "--config",
        &cfg_s,
        "--teacher",
        &model,
        "--set",
        "student.kind=\"openai\"",
        "--set",
        &urls,
        "--set",
        "student.model=\"tiny\"",
        "--set",
        &key_env,
    ]);
    let out = client_check(&python, "proxy", &proxy.url(), "unused", "tiny");
    assert_eq!(out.matches("OK ").count(), 2, "{out}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits() {
    let model = tiny_model();
    let mut server = Server::start(&["--model", &model]);
    let addr = server.addr.clone();
    let body = format!(
        r#"{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi"}}], "n": 8, "max_tokens": 200, "temperature": 1}}"#
    );
    let request =
        std::thread::spawn(move || http(&addr, "POST", "/v1/chat/completions", &[], &body));
    std::thread::sleep(Duration::from_millis(300));
    let status = server.terminate();
    let (st, body) = request.join().unwrap();
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"].as_array().unwrap().len(), 8);
    assert!(status.success(), "{status:?}");
    // Nothing listens any more.
    assert!(TcpStream::connect(&server.addr).is_err());
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn training_with_the_served_model_as_openai_student_matches_the_local_student() {
    let python = python_with_openai();
    let model = tiny_model();
    let served = Server::start(&["--model", &model]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    // A greedy student: the HTTP path must give the very replies of the local one.
    let train = |name: &str, extra: &[String]| {
        let out = wst()
            .args(["train", "--quiet", "--config"])
            .arg(&cfg)
            .args(["--set", &format!("run.name=\"{name}\"")])
            .args([
                "--set",
                "student.sampling.temperature=0.0",
                "--set",
                "run.steps=3",
            ])
            .args(extra.iter().flat_map(|e| ["--set", e.as_str()]))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out).1);
        dir.path().join("runs").join(name)
    };
    let local = train("local", &[]);
    let http = train(
        "http",
        &[
            "student.kind=\"openai\"".into(),
            format!("student.base_urls=[\"{}\"]", served.url()),
            format!("student.model=\"{}\"", model.replace('\\', "\\\\")),
            "student.max_retries=0".into(),
        ],
    );
    let (a, b) = (metrics(&local), metrics(&http));
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        for key in [
            "reward",
            "baseline",
            "uplift",
            "loss",
            "grad_norm",
            "kl",
            "instruction_tokens",
            "failed_replies",
        ] {
            assert_eq!(x[key], y[key], "step {}: {key}", x["step"]);
        }
    }
    // The replies themselves, read back from the rollouts.
    let script = r#"
import sys, polars as pl
def replies(run):
    df = pl.read_parquet(f"{run}/rollouts/*.parquet").sort(["step", "query_id", "group_index"])
    return df["replies"].to_list()
a, b = replies(sys.argv[1]), replies(sys.argv[2])
assert len(a) > 0 and a == b, (a[:2], b[:2])
print("OK", sum(len(r) for r in a), "replies equal")
"#;
    let out = run_ok(
        Command::new(&python)
            .args(["-c", script])
            .arg(&local)
            .arg(&http),
    );
    assert!(text(&out).0.starts_with("OK"), "{}", text(&out).0);
}

/// `eval.instructions = M` against a real OpenAI-compatible server: `wst serve` is both the API
/// teacher (seeded) and the student. The teacher gets one request per problem for `n = M`, so a
/// problem's M instructions are M draws; M separate requests with the one seed would repeat a
/// single instruction M times.
#[test]
fn a_served_api_teacher_writes_m_different_instructions_per_problem() {
    let model = tiny_model();
    let served = Server::start(&["--model", &model]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let quoted = model.replace('\\', "\\\\");
    let sets = [
        "student.kind=\"openai\"".to_string(),
        format!("student.base_urls=[\"{}\"]", served.url()),
        format!("student.model=\"{quoted}\""),
        "student.max_retries=0".into(),
        "teacher.sampling.seed=5".into(),
        "eval.limit=3".into(),
        "eval.instructions=3".into(),
        "eval.samples=1".into(),
    ];
    let out = wst()
        .args(["eval", "--config"])
        .arg(&cfg)
        .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .arg("--conditions")
        .arg(format!("none,api-teacher:{model}@{}=api", served.url()))
        .arg("--out")
        .arg(dir.path().join("eval"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("| api | 3 | 9 | 0 |"), "{stdout}");
    let script = [
        "import sys, pyarrow.parquet as pq",
        "api = [r for r in pq.read_table(sys.argv[1]).to_pylist() if r['condition'] == 'api']",
        "for q in sorted({r['query_id'] for r in api}):",
        "    rows = sorted((r['sample'], r['instruction']) for r in api if r['query_id'] == q)",
        "    assert [s for s, _ in rows] == [0, 1, 2], (q, rows)",
        "    assert len({m for _, m in rows}) > 1, ('one instruction repeated', q, rows)",
        "print('OK', len(api))",
    ];
    let check = run_ok(
        Command::new(python_with(&["pyarrow"]))
            .arg("-c")
            .arg(script.join("\n"))
            .arg(dir.path().join("eval/samples.parquet")),
    );
    assert_eq!(text(&check).0.trim(), "OK 9");
}
