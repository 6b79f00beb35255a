//! `wst eval`, `wst train` and `--dry-run` keep evaluation apart from training (overlap refused,
//! a single file split by hash), and an API teacher never receives the student's key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::wst;

fn shared() -> PathBuf {
    match std::env::var_os("WST_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A config with the tiny random Qwen2 as teacher and student; `data` and `eval_data` are the
/// bodies of `[data]` and `[eval.data]` (none: no `[eval.data]`).
fn config(dir: &Path, data: &str, eval_data: Option<&str>) -> PathBuf {
    let model = shared().join("testvectors/tiny-qwen2");
    let eval_data = eval_data
        .map(|d| format!("[eval.data]\n{d}\n"))
        .unwrap_or_default();
    let text = format!(
        r#"
[run]
name = "tiny"
output_dir = "{out}"
device = "cpu"
steps = 1

[teacher]
model = "{model}"
[teacher.sampling]
max_new_tokens = 4

[student]
kind = "local"
model = "{model}"
samples = 1
baseline_samples = 1
[student.sampling]
max_new_tokens = 4

[data]
{data}

[grpo]
batch_size = 2
group_size = 2

[templates]
preset = "arith"

[eval]
limit = 500
samples = 1
{eval_data}
"#,
        out = dir.join("runs").display(),
        model = model.display()
    );
    let path = dir.join("c.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn eval_data_equal_to_the_training_data_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let gsm = shared().join("data/gsm8k/test.jsonl");
    let data = format!("dataset = \"gsm8k\"\npath = \"{}\"", gsm.display());
    // The same file, read in order: every eval query is a training query.
    let cfg = config(dir.path(), &data, Some(&format!("{data}\nshuffle = false")));

    let out = wst()
        .args(["train", "--dry-run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("eval data"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(
        line.contains("500 of 500 eval queries overlap the training queries"),
        "{line}"
    );
    assert!(
        line.contains("eval `gsm8k/test/0` is training `gsm8k/test/0`"),
        "{line}"
    );
    assert!(stderr.contains("overlap"), "{stderr}");

    for args in [
        vec!["train", "--quiet", "--config"],
        vec!["eval", "--conditions", "none", "--config"],
    ] {
        let out = wst().args(&args).arg(&cfg).output().unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("overlap the training queries"),
            "{args:?}: {stderr}"
        );
    }
    assert!(!dir.path().join("runs/tiny/checkpoints").exists());

    // The same file without [eval.data] and with a holdout: split by hash, no overlap.
    let split = format!("{data}\nholdout = 0.2");
    let cfg = config(dir.path(), &split, None);
    let out = wst()
        .args(["train", "--dry-run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let count = |what: &str| -> usize {
        let line = stdout.lines().find(|l| l.contains(what)).unwrap();
        let tail = line.split(": ").nth(1).unwrap();
        tail.split(' ').next().unwrap().parse().unwrap()
    };
    let (train, held) = (count("training queries"), count("held-out queries"));
    assert_eq!(train + held, 1319, "{stdout}");
    assert!(
        (200..=330).contains(&held),
        "{held} of 1319 held out at 0.2"
    );
    assert!(stdout.contains("none a training query"), "{stdout}");
}

/// What a mock OpenAI-compatible server saw: the `Authorization` header of each request.
type Seen = Arc<Mutex<Vec<Option<String>>>>;

/// Serves chat completions with `reply`; records each request's `Authorization` header. Fails
/// (HTTP 500) the first `fail_first` requests.
fn serve(reply: &'static str, fail_first: usize) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(mut sock) = sock else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(sock.try_clone().unwrap());
                let (mut auth, mut len) = (None, 0usize);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        match k.to_ascii_lowercase().as_str() {
                            "authorization" => auth = Some(v.trim().to_string()),
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let failing = {
                    let mut log = log.lock().unwrap();
                    log.push(auth);
                    log.len() <= fail_first
                };
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let (status, body) = if failing {
                    (
                        "500 Internal Server Error",
                        "{\"error\": \"boom\"}".to_string(),
                    )
                } else {
                    let n = v["n"].as_u64().unwrap_or(1);
                    let choices: Vec<serde_json::Value> = (0..n)
                        .map(|j| {
                            serde_json::json!({"index": j, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply}})
                        })
                        .collect();
                    (
                        "200 OK",
                        serde_json::json!({ "choices": choices }).to_string(),
                    )
                };
                let msg = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(msg.as_bytes());
            });
        }
    });
    (url, seen)
}

#[test]
fn an_api_teacher_never_gets_the_students_key() {
    let dir = tempfile::tempdir().unwrap();
    let (student_url, student_seen) = serve("The answer is 7.", 0);
    let (teacher_url, teacher_seen) = serve("Add the two numbers carefully.", 0);
    let cfg = config(
        dir.path(),
        "dataset = \"arith\"",
        Some("dataset = \"arith\"\nsplit = \"test\""),
    );
    let student = [
        "--set",
        "student.kind=\"openai\"",
        "--set",
        "student.api_key_env=\"WST_TEST_STUDENT_KEY\"",
        "--set",
        "student.max_retries=0",
        "--set",
        "eval.limit=3",
    ];
    let eval = |extra: &[&str], teacher_key: Option<&str>| {
        let mut cmd = wst();
        cmd.args(["eval", "--config"])
            .arg(&cfg)
            .args(student)
            .arg("--set")
            .arg(format!("student.base_urls=[\"{student_url}\"]"))
            .arg("--conditions")
            .arg(format!("none,api-teacher:tiny-teacher@{teacher_url}"))
            .arg("--out")
            .arg(dir.path().join("eval"))
            .args(extra)
            .env("WST_TEST_STUDENT_KEY", "student-secret");
        match teacher_key {
            Some(k) => cmd.env("WST_TEST_TEACHER_KEY", k),
            None => cmd.env_remove("WST_TEST_TEACHER_KEY"),
        };
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        stdout
    };

    let table = eval(&[], None);
    assert!(
        table.contains("| API teacher tiny-teacher | 3 | 3 | 0 |"),
        "{table}"
    );
    let t = std::mem::take(&mut *teacher_seen.lock().unwrap());
    assert_eq!(t.len(), 3, "one instruction per problem");
    assert!(
        t.iter().all(Option::is_none),
        "no key for the teacher: {t:?}"
    );
    let s = std::mem::take(&mut *student_seen.lock().unwrap());
    assert!(
        !s.is_empty()
            && s.iter()
                .all(|a| a.as_deref() == Some("Bearer student-secret"))
    );

    eval(
        &["--teacher-api-key-env", "WST_TEST_TEACHER_KEY"],
        Some("teacher-secret"),
    );
    let t = std::mem::take(&mut *teacher_seen.lock().unwrap());
    assert_eq!(t.len(), 3);
    assert!(
        t.iter()
            .all(|a| a.as_deref() == Some("Bearer teacher-secret")),
        "{t:?}"
    );
    let s = std::mem::take(&mut *student_seen.lock().unwrap());
    assert!(s
        .iter()
        .all(|a| a.as_deref() == Some("Bearer student-secret")));
}

#[test]
fn a_failed_api_instruction_fails_its_condition_and_leaves_every_mean() {
    let dir = tempfile::tempdir().unwrap();
    let (student_url, _) = serve("The answer is 7.", 0);
    // The teacher's first request fails (and is not retried): one problem has no instruction.
    let (teacher_url, _) = serve("Add carefully.", 1);
    let cfg = config(
        dir.path(),
        "dataset = \"arith\"",
        Some("dataset = \"arith\"\nsplit = \"test\"\nshuffle = false"),
    );
    let out = wst()
        .args(["eval", "--config"])
        .arg(&cfg)
        .args([
            "--set",
            "student.kind=\"openai\"",
            "--set",
            "student.max_retries=0",
        ])
        .args(["--set", "eval.limit=3"])
        .arg("--set")
        .arg(format!("student.base_urls=[\"{student_url}\"]"))
        .arg("--conditions")
        .arg(format!("none,api-teacher:t@{teacher_url}=api"))
        .arg("--out")
        .arg(dir.path().join("eval"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // One failed instruction: a failed sample of the API teacher (not a reply without
    // instruction), and that problem leaves the means of both conditions.
    assert!(stdout.contains("| api | 2 | 2 | 1 |"), "{stdout}");
    assert!(stdout.contains("| student alone | 2 | 3 | 0 |"), "{stdout}");
    assert!(stdout.contains("same 2 problems"), "{stdout}");
    assert!(
        stdout.contains("1 excluded because some condition scored no reply"),
        "{stdout}"
    );
    assert!(stdout.contains("| api - student alone | 2 |"), "{stdout}");
    assert!(
        stderr.contains("first: no instruction: teacher `api`"),
        "{stderr}"
    );
}

#[test]
fn holdout_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "dataset = \"math500\"\npath = \"x\"", None);
    let out = wst()
        .args(["config", "--config"])
        .arg(&cfg)
        .args(["--set", "data.holdout=1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("data.holdout must be in (0, 1)"),
        "{}",
        text(&out).1
    );
    let cfg = config(dir.path(), "dataset = \"arith\"\nholdout = 0.2", None);
    let out = wst()
        .args(["config", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("own held-out split"),
        "{}",
        text(&out).1
    );
}
