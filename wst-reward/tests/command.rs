//! `kind = "command"`: a Python reward program scores replies; crashes, garbage and silence stop
//! with the program's stderr and the offending line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wst_core::{Query, Reward, RewardInput};
use wst_reward::CommandReward;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn spawn(path: &Path, outputs: &[&str], timeout: Duration) -> CommandReward {
    let outputs: Vec<String> = outputs.iter().map(|s| s.to_string()).collect();
    CommandReward::spawn(
        "style",
        &["python3".to_string(), path.display().to_string()],
        None,
        &outputs,
        timeout,
    )
    .unwrap()
}

const SCORER: &str = r#"
import json, sys
for line in sys.stdin:
    x = json.loads(line)
    print("scoring", x["query_id"], file=sys.stderr, flush=True)
    s = len(x["reply"]) / 10 + (1 if x["instruction"] else 0) + (0.5 if x["reference"] == x["reply"] else 0)
    print(json.dumps({"score": s}), flush=True)
"#;

#[test]
fn a_python_program_scores_every_reply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = spawn(
        &script(dir.path(), "r.py", SCORER),
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.component_names(), vec!["style"]);
    let q = Query::new("q1", "What is 2 + 4?")
        .with_reference("6")
        .with_meta("level", "1");
    let inputs = [
        RewardInput::new(&q, "6"),
        RewardInput::new(&q, "It is 6").with_instruction(Some("Add.")),
        RewardInput::new(&q, "ünï"),
    ];
    let out = r.score(&inputs).unwrap();
    let got: Vec<f64> = out.iter().map(|c| c.get("style").unwrap()).collect();
    assert_eq!(got, vec![0.1 + 0.5, 0.7 + 1.0, 0.3]);
    // The program stays up between calls.
    let again = r.score(&inputs[..1]).unwrap();
    assert_eq!(again[0].get("style"), Some(0.1 + 0.5));
}

#[test]
fn several_components_come_back_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = script(
        dir.path(),
        "c.py",
        r#"
import json, sys
for line in sys.stdin:
    x = json.loads(line)
    print(json.dumps({"components": {"brevity": 1 / (1 + len(x["reply"])), "polite": int("please" in x["reply"])}}), flush=True)
"#,
    );
    let mut r = spawn(&p, &["brevity", "polite"], Duration::from_secs(30));
    assert_eq!(r.component_names(), vec!["brevity", "polite"]);
    let q = Query::new("q", "?");
    let out = r.score(&[RewardInput::new(&q, "please")]).unwrap();
    assert_eq!(out[0].get("brevity"), Some(1.0 / 7.0));
    assert_eq!(out[0].get("polite"), Some(1.0));
}

fn error_of(body: &str, outputs: &[&str], timeout: Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut r = spawn(&script(dir.path(), "bad.py", body), outputs, timeout);
    let q = Query::new("q7", "What is 1 + 1?");
    let e = r
        .score(&[RewardInput::new(&q, "2"), RewardInput::new(&q, "3")])
        .unwrap_err();
    let msg = wst_core::error_chain(&e);
    // Once broken, it stays broken (never a silent 0).
    let again = wst_core::error_chain(&r.score(&[RewardInput::new(&q, "2")]).unwrap_err());
    assert!(again.contains("failed earlier"), "{again}");
    msg
}

#[test]
fn a_crash_stops_with_the_programs_stderr() {
    let msg = error_of(
        r#"
import json, sys
line = sys.stdin.readline()
print("about to fail on", json.loads(line)["query_id"], file=sys.stderr, flush=True)
raise ValueError("my reward is broken")
"#,
        &[],
        Duration::from_secs(30),
    );
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("ValueError: my reward is broken"), "{msg}");
    assert!(msg.contains("about to fail on q7"), "{msg}");
    assert!(
        msg.contains("\"query_id\":\"q7\""),
        "the input it got: {msg}"
    );
    assert!(msg.contains("reward.components.style"), "{msg}");
}

#[test]
fn garbage_lines_stop_with_the_offending_line() {
    for (body, want) in [
        ("print('hello there', flush=True)", "not JSON"),
        ("print('[1, 2]', flush=True)", "not an object"),
        ("print('{\"scor\": 1}', flush=True)", "without `score`"),
        (
            "print('{\"score\": \"high\"}', flush=True)",
            "not a finite number",
        ),
    ] {
        let program = format!("import sys\nfor line in sys.stdin:\n    {body}\n");
        let msg = error_of(&program, &[], Duration::from_secs(30));
        assert!(msg.contains(want), "{want}: {msg}");
        assert!(msg.contains("offending line: "), "{msg}");
    }
    let msg = error_of(
        "import sys\nfor line in sys.stdin:\n    print('{\"components\": {\"a\": 1, \"zz\": 2}}', flush=True)\n",
        &["a"],
        Duration::from_secs(30),
    );
    assert!(
        msg.contains("`zz`") && msg.contains("{\"components\""),
        "{msg}"
    );
}

#[test]
fn silence_past_the_timeout_stops_the_run() {
    let msg = error_of(
        "import sys, time\nprint('thinking', file=sys.stderr, flush=True)\nfor line in sys.stdin:\n    time.sleep(60)\n",
        &[],
        Duration::from_secs(3),
    );
    assert!(msg.contains("no answer within"), "{msg}");
    assert!(msg.contains("thinking"), "{msg}");
}

#[test]
fn a_missing_program_is_named() {
    let e = CommandReward::spawn(
        "style",
        &["/nonexistent/reward-program".to_string()],
        None,
        &[],
        Duration::from_secs(1),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/reward-program"), "{msg}");
}

#[test]
fn the_readme_example_program_works() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rewards/brevity.py");
    let mut r = spawn(&p, &[], Duration::from_secs(30));
    let q = Query::new("q", "What is 6 * 7?").with_reference("42");
    let long = "word ".repeat(120) + "so 42";
    let out = r
        .score(&[
            RewardInput::new(&q, "6 * 7 = 42"),
            RewardInput::new(&q, "It is forty-two."),
            RewardInput::new(&q, &long),
            RewardInput::new(&q, ""),
        ])
        .unwrap();
    let got: Vec<f64> = out.iter().map(|c| c.get("style").unwrap()).collect();
    assert_eq!(got, vec![1.0, 0.5, 1.0 - (122.0 - 40.0) / 160.0, 0.5]);
}
