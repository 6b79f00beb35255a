//! `wst eval`, `wst train` and `--dry-run` keep evaluation apart from training (overlap refused,
//! a single file split by hash), and an API teacher never receives the student's key.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use wst_core::http_test::read_request;

use crate::{failed, line_with, ok, shared, text, tiny_model, with_config, write_file, wst};

/// A config with the tiny random Qwen2 as teacher and student; `data` and `eval_data` are the
/// bodies of `[data]` and `[eval.data]` (none: no `[eval.data]`).
fn config(dir: &Path, data: &str, eval_data: Option<&str>) -> PathBuf {
    let model = tiny_model();
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
    write_file(dir, "c.toml", &text)
}

#[test]
fn eval_data_equal_to_the_training_data_is_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let gsm = shared().join("data/gsm8k/test.jsonl");
    let data = format!("dataset = \"gsm8k\"\npath = \"{}\"", gsm.display());
    // The same file, read in order: every eval query is a training query.
    let cfg = config(dir.path(), &data, Some(&format!("{data}\nshuffle = false")));

    let out = with_config(&["train", "--dry-run"], &cfg, &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    let line = line_with(&stdout, "eval data");
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
        vec!["train", "--quiet"],
        vec!["eval", "--conditions", "none"],
    ] {
        let out = with_config(&args, &cfg, &[]);
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
    let out = ok(with_config(&["train", "--dry-run"], &cfg, &[]));
    let stdout = text(&out).0;
    let count = |what: &str| -> usize {
        let line = line_with(&stdout, what);
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
                let Some(req) = read_request(&mut sock) else {
                    return;
                };
                let auth = req.header("authorization").map(str::to_string);
                let failing = {
                    let mut log = log.lock().unwrap();
                    log.push(auth);
                    log.len() <= fail_first
                };
                let v: serde_json::Value = serde_json::from_str(&req.body).unwrap();
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

/// A student answering "The answer is 7." and an API teacher answering `instruction` (failing
/// its first `teacher_fails` requests), both mock servers, and an arithmetic config in `dir`
/// whose eval data is the test split with `eval_extra`: (config, student, teacher).
fn api_setup(
    dir: &Path,
    instruction: &'static str,
    teacher_fails: usize,
    eval_extra: &str,
) -> (PathBuf, (String, Seen), (String, Seen)) {
    let student = serve("The answer is 7.", 0);
    let teacher = serve(instruction, teacher_fails);
    let eval_data = format!("dataset = \"arith\"\nsplit = \"test\"{eval_extra}");
    let cfg = config(dir, "dataset = \"arith\"", Some(&eval_data));
    (cfg, student, teacher)
}

/// `wst eval` of `cfg` on 3 problems into `dir/eval`, the student an `openai` one at
/// `student_url` (no retries), the conditions `none,TEACHER`.
fn api_eval(dir: &Path, cfg: &Path, student_url: &str, teacher: &str) -> Command {
    let mut cmd = wst();
    cmd.args(["eval", "--config"])
        .arg(cfg)
        .args([
            "--set",
            "student.kind=\"openai\"",
            "--set",
            "student.max_retries=0",
            "--set",
            "eval.limit=3",
        ])
        .arg("--set")
        .arg(format!("student.base_urls=[\"{student_url}\"]"))
        .arg("--conditions")
        .arg(format!("none,{teacher}"))
        .arg("--out")
        .arg(dir.join("eval"));
    cmd
}

#[test]
fn an_api_teacher_never_gets_the_students_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, (student_url, student_seen), (teacher_url, teacher_seen)) =
        api_setup(dir.path(), "Add the two numbers carefully.", 0, "");
    let teacher = format!("api-teacher:tiny-teacher@{teacher_url}");
    let eval = |extra: &[&str], teacher_key: Option<&str>| {
        let mut cmd = api_eval(dir.path(), &cfg, &student_url, &teacher);
        cmd.args(["--set", "student.api_key_env=\"WST_TEST_STUDENT_KEY\""])
            .args(extra)
            .env("WST_TEST_STUDENT_KEY", "student-secret");
        match teacher_key {
            Some(k) => cmd.env("WST_TEST_TEACHER_KEY", k),
            None => cmd.env_remove("WST_TEST_TEACHER_KEY"),
        };
        text(&ok(cmd.output().unwrap())).0
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
    // The teacher's first request fails (and is not retried): one problem has no instruction.
    let (cfg, (student_url, _), (teacher_url, _)) =
        api_setup(dir.path(), "Add carefully.", 1, "\nshuffle = false");
    let teacher = format!("api-teacher:t@{teacher_url}=api");
    let out = ok(api_eval(dir.path(), &cfg, &student_url, &teacher)
        .output()
        .unwrap());
    let (stdout, stderr) = text(&out);
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

/// `eval.instructions = M`: an API teacher is asked once per problem for `n = M`
/// instructions, each answered K times; the student alone is asked M x K times per problem.
#[test]
fn several_instructions_per_problem_come_from_one_request_each() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, (student_url, _), (teacher_url, teacher_seen)) =
        api_setup(dir.path(), "Add the two numbers carefully.", 0, "");
    let teacher = format!("api-teacher:t@{teacher_url}=api");
    let mut cmd = api_eval(dir.path(), &cfg, &student_url, &teacher);
    cmd.args(["--set", "eval.instructions=3", "--set", "eval.samples=2"]);
    let (stdout, stderr) = text(&ok(cmd.output().unwrap()));
    assert!(
        stderr.contains("M = 3 instructions x K = 2 replies"),
        "{stderr}"
    );
    assert_eq!(
        teacher_seen.lock().unwrap().len(),
        3,
        "one teacher request per problem"
    );
    assert!(stdout.contains("| api | 3 | 18 | 0 |"), "{stdout}");
    assert!(
        stdout.contains("| student alone | 3 | 18 | 0 |"),
        "{stdout}"
    );
    let script = [
        "import sys, pyarrow.parquet as pq",
        "api = [r for r in pq.read_table(sys.argv[1]).to_pylist() if r['condition'] == 'api']",
        "for q in {r['query_id'] for r in api}:",
        "    got = sorted(r['sample'] for r in api if r['query_id'] == q)",
        "    assert got == list(range(6)), (q, got)",
        "print(len(api))",
    ];
    let check = Command::new(crate::python_with(&["pyarrow"]))
        .arg("-c")
        .arg(script.join("\n"))
        .arg(dir.path().join("eval/samples.parquet"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "18");
}

#[test]
fn holdout_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "dataset = \"math500\"\npath = \"x\"", None);
    let err = failed(&with_config(
        &["config"],
        &cfg,
        &["--set", "data.holdout=1.5"],
    ));
    assert!(err.contains("data.holdout must be in (0, 1)"), "{err}");
    let cfg = config(dir.path(), "dataset = \"arith\"\nholdout = 0.2", None);
    let err = failed(&with_config(&["config"], &cfg, &[]));
    assert!(err.contains("own held-out split"), "{err}");
}
