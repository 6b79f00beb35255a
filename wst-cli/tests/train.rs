//! `wst train`, `wst baseline`, `wst eval` and `--dry-run` end to end: the paper configs validate,
//! a missing model or endpoint is a clear message, and a tiny run trains, resumes, is reported
//! and evaluated reproducibly.

use std::path::{Path, PathBuf};

use crate::{
    failed, line_with, ok, python_with, repo, run_ok, shared, text, tiny_model, with_config,
    write_file, wst,
};

#[test]
fn every_config_in_configs_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        n += 1;
        let out = with_config(&["config"], &path, &[]);
        let (_, err) = text(&out);
        assert!(out.status.success(), "{}: {err}", path.display());
    }
    assert!(n >= 6, "only {n} configs");
}

#[test]
fn gsm8k_paper_config_dry_run_stops_at_the_first_model_and_network_access() {
    let dir = tempfile::tempdir().unwrap();
    let hf = dir.path().join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    let data = shared().join("data/gsm8k/train.jsonl");
    let out = wst()
        .env("HF_HOME", &hf)
        .env("HF_HUB_OFFLINE", "1")
        .env("WST_STUDENT_API_KEY", "test-key")
        .env_remove("HF_HUB_CACHE")
        .args(["train", "--dry-run", "--config"])
        .arg(repo().join("configs/gsm8k-qwen-math.toml"))
        .arg("--set")
        .arg(format!("data.path=\"{}\"", data.display()))
        .arg("--set")
        .arg(format!(
            "run.output_dir=\"{}\"",
            dir.path().join("runs").display()
        ))
        .args(["--set", "student.base_urls=[\"http://127.0.0.1:9/v1\"]"])
        .args([
            "--set",
            "student.max_retries=0",
            "--set",
            "student.timeout_s=2.0",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("ok    config: valid"), "{stdout}");
    assert!(
        stdout.contains("ok    data (gsm8k): 7473 training queries"),
        "{stdout}"
    );
    let teacher = line_with(&stdout, "teacher `Qwen/Qwen2.5-Math-1.5B-Instruct`");
    assert!(teacher.starts_with("FAIL"), "{teacher}");
    assert!(
        teacher.contains("local"),
        "says how to give a local path: {teacher}"
    );
    let student = line_with(&stdout, "student endpoint");
    assert!(
        student.starts_with("FAIL") && student.contains("127.0.0.1:9"),
        "{student}"
    );
    assert!(stderr.contains("dry run:"), "{stderr}");
    // Nothing was trained.
    assert!(!dir.path().join("runs/gsm8k-qwen-math").exists());
}

/// `wst train --quiet --config CFG`, run to its end.
pub(crate) fn train_quiet(cfg: &Path) -> std::process::Output {
    with_config(&["train", "--quiet"], cfg, &[])
}

/// `[student]` of [`tiny_config`]: the tiny model, run locally.
const LOCAL_STUDENT: &str = r#"
[student]
kind = "local"
model = "{model}"
samples = 2
baseline_samples = 2
[student.sampling]
temperature = 1.0
max_new_tokens = 4
"#;

/// `[eval]` of [`tiny_config`]: 3 held-out arithmetic problems.
const TINY_EVAL: &str = r#"
[eval]
limit = 3
samples = 2
[eval.data]
dataset = "arith"
arith_level = "single-digit"
split = "test"
"#;

/// A config training the tiny random Qwen2 of the test vectors against itself on arithmetic.
pub(crate) fn tiny_config(dir: &Path) -> PathBuf {
    tiny_config_with(dir, 1, LOCAL_STUDENT, TINY_EVAL)
}

/// `dir/tiny.toml`: the tiny random Qwen2 of the test vectors as teacher on single-digit
/// arithmetic (B = 2, G = 2), 2 steps into `dir/runs/tiny`, a checkpoint every `save_every`
/// steps; `student` is the `[student]` table (`{model}` in it: the tiny model) and `tail` more
/// tables.
pub(crate) fn tiny_config_with(dir: &Path, save_every: u32, student: &str, tail: &str) -> PathBuf {
    let model = tiny_model().display().to_string();
    let text = format!(
        r#"
[run]
name = "tiny"
output_dir = "{out}"
seed = 3
device = "cpu"
steps = 2
save_every = {save_every}
keep_checkpoints = 0

[teacher]
model = "{model}"
[teacher.sampling]
temperature = 1.0
max_new_tokens = 6
{student}
[data]
dataset = "arith"
arith_level = "single-digit"

[grpo]
batch_size = 2
group_size = 2
lr = 1e-3
micro_batch_size = 4

[templates]
preset = "arith"
{tail}"#,
        out = dir.join("runs").display(),
        student = student.replace("{model}", &model),
    );
    write_file(dir, "tiny.toml", &text)
}

/// A temporary folder with [`tiny_config`] in it: (folder, config, the run's folder).
pub(crate) fn tiny_setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let run = dir.path().join("runs/tiny");
    (dir, cfg, run)
}

/// How many steps `run/metrics.jsonl` records.
fn metric_lines(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn tiny_run_trains_resumes_reports_and_evaluates_reproducibly() {
    let (dir, cfg, run) = tiny_setup();

    let out = ok(train_quiet(&cfg));
    let stdout = text(&out).0;
    assert!(stdout.contains("checkpoint:"), "{stdout}");
    for f in ["config.toml", "metrics.jsonl", "plots/training.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(metric_lines(&run), 2);
    assert!(run
        .join("checkpoints/step-00000002/model.safetensors")
        .is_file());

    // A fresh `train` into the same run refuses; `--resume` extends it.
    let err = failed(&train_quiet(&cfg));
    assert!(err.contains("resume"), "{err}");
    run_ok(
        wst()
            .args(["train", "--quiet", "--resume"])
            .arg(&run)
            .args(["--set", "run.steps=3"]),
    );
    assert_eq!(metric_lines(&run), 3);

    let out = run_ok(wst().arg("report").arg(&run));
    let steps = text(&out)
        .0
        .lines()
        .filter(|l| l.starts_with(' ') && l.trim_start().starts_with(char::is_numeric))
        .count();
    assert_eq!(steps, 3, "{}", text(&out).0);

    // An external reader (polars in Python) sees the same step means as `wst report`.
    let python = python_with(&["pyarrow", "polars"]);
    let out = run_ok(
        std::process::Command::new(&python)
            .arg(repo().join("scripts/check-report.py"))
            .arg(&run)
            .arg(env!("CARGO_BIN_EXE_wst")),
    );
    assert_eq!(text(&out).0.matches("OK").count(), 3, "{}", text(&out).0);

    // Baselines are cached: a second call computes none.
    let baseline = || with_config(&["baseline"], &cfg, &["--limit", "4"]);
    ok(baseline());
    let out = baseline();
    assert!(
        text(&out).0.contains("4 queries: 0 computed"),
        "{}",
        text(&out).0
    );

    let eval = |out_dir: &Path| {
        let conditions = format!("none,teacher,teacher:{}=trained teacher", run.display());
        let out_dir = out_dir.to_str().unwrap();
        let out = ok(with_config(
            &["eval"],
            &cfg,
            &["--conditions", &conditions, "--out", out_dir],
        ));
        text(&out).0
    };
    let a = dir.path().join("eval-a");
    let b = dir.path().join("eval-b");
    let table = eval(&a);
    for label in ["student alone", "untrained teacher", "trained teacher"] {
        assert!(table.contains(&format!("| {label} |")), "{table}");
    }
    for f in ["samples.parquet", "table.md", "table.csv", "eval.png"] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    eval(&b);
    assert_eq!(
        std::fs::read_to_string(a.join("table.md")).unwrap(),
        std::fs::read_to_string(b.join("table.md")).unwrap(),
        "evaluation is not reproducible"
    );
}

#[test]
fn eval_rejects_bad_conditions_and_weights_without_harmless_helpful() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let err = failed(&with_config(
        &["eval"],
        &cfg,
        &["--conditions", "none,bogus"],
    ));
    assert!(err.contains("condition `bogus`"), "{err}");
    let out = with_config(
        &["eval"],
        &cfg,
        &["--conditions", "none", "--weights", "0.5"],
    );
    let err = failed(&out);
    assert!(err.contains("harmless"), "{err}");
}
