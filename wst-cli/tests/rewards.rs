//! Reward components through `wst train`: a Python reward program scores every reply of a tiny
//! run and the rollouts hold exactly its scores; a program that crashes or prints garbage stops
//! the run with its error.

use std::path::{Path, PathBuf};

use crate::train::{tiny_config, train_quiet};
use crate::{line_with, ok, text, with_config, write_file};

/// The tiny run's config with `[reward.components]`: math and the program `script`.
fn with_command_reward(dir: &Path, script: &str) -> PathBuf {
    let cfg = tiny_config(dir);
    let prog = write_file(dir, "style.py", script);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        r#"
[reward.weights]
correct = 1.0
style = 0.5

[reward.components.correct]
kind = "math"

[reward.components.style]
kind = "command"
command = ["python3", "{}"]
timeout_s = 60
"#,
        prog.display()
    ));
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// Scores `(len(reply) % 7) / 7`, plus 0.01 with an instruction, and logs what it saw.
const STYLE: &str = r#"
import json, os, sys
log = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "seen.jsonl"), "a")
for line in sys.stdin:
    x = json.loads(line)
    s = (len(x["reply"]) % 7) / 7 + (0.01 if x["instruction"] is not None else 0.0)
    log.write(json.dumps({"reply": x["reply"], "instruction": x["instruction"], "score": s}) + "\n")
    log.flush()
    print(json.dumps({"score": s}), flush=True)
"#;

fn style(reply: &str) -> f64 {
    (reply.chars().count() % 7) as f64 / 7.0 + 0.01
}

#[test]
fn a_python_reward_scores_every_reply_of_a_tiny_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_command_reward(dir.path(), STYLE);
    ok(with_config(&["config"], &cfg, &[]));
    ok(train_quiet(&cfg));

    let records = wst_data::read_rollouts(&dir.path().join("runs/tiny")).unwrap();
    assert_eq!(records.len(), 2 * 2 * 2, "steps x B x G");
    let mut scored = 0;
    for r in &records {
        for ((reply, comps), scalar) in r.replies.iter().zip(&r.reward_components).zip(&r.rewards) {
            let Some(reply) = reply else { continue };
            scored += 1;
            let s = comps.get("style").unwrap();
            assert_eq!(s, style(reply), "reply {reply:?}");
            let c = comps.get("correct").unwrap();
            assert_eq!(scalar.unwrap(), c + 0.5 * s);
        }
    }
    assert_eq!(
        scored,
        2 * 2 * 2 * 2,
        "every reply of K = 2 completed and was scored"
    );

    // The program saw every training reply with its instruction (and the baseline replies
    // without one), and its log agrees with the rollouts.
    let seen: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("seen.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_instruction: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|v| !v["instruction"].is_null())
        .collect();
    assert_eq!(with_instruction.len(), scored);
    for r in &records {
        for reply in r.replies.iter().flatten() {
            assert!(
                with_instruction
                    .iter()
                    .any(|v| v["reply"] == reply.as_str()
                        && v["instruction"] == r.instruction.as_str()),
                "{reply:?} with {:?} was not sent to the program",
                r.instruction
            );
        }
    }
    assert!(
        seen.len() > with_instruction.len(),
        "baseline replies are scored too"
    );
}

#[test]
fn a_reward_program_that_crashes_or_prints_garbage_stops_the_run() {
    for (body, wants) in [
        (
            "    n += 1\n    if n == 3:\n        raise RuntimeError('style model not found')\n    print(json.dumps({'score': 0.5}), flush=True)\n",
            vec!["exited", "RuntimeError: style model not found", "reward.components.style"],
        ),
        (
            "    print('score=0.5', flush=True)\n",
            vec!["not JSON", "offending line: score=0.5", "reward.components.style"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let script = format!("import json, sys\nn = 0\nfor line in sys.stdin:\n{body}");
        let cfg = with_command_reward(dir.path(), &script);
        let out = train_quiet(&cfg);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}\n{stderr}");
        for w in wants {
            assert!(stderr.contains(w), "no {w:?} in:\n{stderr}");
        }
        assert!(
            !dir.path().join("runs/tiny/metrics.jsonl").exists()
                || std::fs::read_to_string(dir.path().join("runs/tiny/metrics.jsonl"))
                    .unwrap()
                    .is_empty(),
            "no step was recorded"
        );
    }
}

#[test]
fn dry_run_checks_the_reward_program() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_command_reward(dir.path(), STYLE);
    let text_of = |set: &[&str]| {
        let out = with_config(&["train", "--dry-run"], &cfg, set);
        (out.status.success(), text(&out).0)
    };
    let (ok, stdout) = text_of(&[]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("ok    reward program style"), "{stdout}");
    let (ok, stdout) = text_of(&[
        "--set",
        "reward.components.style.command=[\"/nonexistent/reward\"]",
    ]);
    assert!(!ok);
    let line = line_with(&stdout, "reward program style");
    assert!(
        line.starts_with("FAIL") && line.contains("/nonexistent/reward"),
        "{line}"
    );
}
