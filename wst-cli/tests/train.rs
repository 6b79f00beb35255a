//! `wst train`, `wst baseline`, `wst eval` and `--dry-run` end to end: the paper configs validate,
//! a missing model or endpoint is a clear message, and a tiny run trains, resumes, is reported
//! and evaluated reproducibly.

use std::path::{Path, PathBuf};

use crate::wst;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn shared() -> PathBuf {
    match std::env::var_os("WST_SHARED") {
        Some(d) => PathBuf::from(d),
        None => repo().join("../shared"),
    }
}

pub(crate) fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn every_config_in_configs_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        n += 1;
        let out = wst()
            .args(["config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
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
    let teacher = stdout
        .lines()
        .find(|l| l.contains("teacher `Qwen/Qwen2.5-Math-1.5B-Instruct`"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(teacher.starts_with("FAIL"), "{teacher}");
    assert!(
        teacher.contains("local"),
        "says how to give a local path: {teacher}"
    );
    let student = stdout
        .lines()
        .find(|l| l.contains("student endpoint"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        student.starts_with("FAIL") && student.contains("127.0.0.1:9"),
        "{student}"
    );
    assert!(stderr.contains("dry run:"), "{stderr}");
    // Nothing was trained.
    assert!(!dir.path().join("runs/gsm8k-qwen-math").exists());
}

/// A config training the tiny random Qwen2 of the test vectors against itself on arithmetic.
/// `wst train --quiet --config CFG`, run to its end.
pub(crate) fn train_quiet(cfg: &Path) -> std::process::Output {
    wst()
        .args(["train", "--quiet", "--config"])
        .arg(cfg)
        .output()
        .unwrap()
}

pub(crate) fn tiny_config(dir: &Path) -> PathBuf {
    let model = shared().join("testvectors/tiny-qwen2");
    let text = format!(
        r#"
[run]
name = "tiny"
output_dir = "{out}"
seed = 3
device = "cpu"
steps = 2
save_every = 1
keep_checkpoints = 0

[teacher]
model = "{model}"
[teacher.sampling]
temperature = 1.0
max_new_tokens = 6

[student]
kind = "local"
model = "{model}"
samples = 2
baseline_samples = 2
[student.sampling]
temperature = 1.0
max_new_tokens = 4

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

[eval]
limit = 3
samples = 2
[eval.data]
dataset = "arith"
arith_level = "single-digit"
split = "test"
"#,
        out = dir.join("runs").display(),
        model = model.display()
    );
    let path = dir.join("tiny.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tiny_run_trains_resumes_reports_and_evaluates_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny_config(dir.path());
    let run = dir.path().join("runs/tiny");

    let out = train_quiet(&cfg);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checkpoint:"), "{stdout}");
    for f in ["config.toml", "metrics.jsonl", "plots/training.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert!(run
        .join("checkpoints/step-00000002/model.safetensors")
        .is_file());

    // A fresh `train` into the same run refuses; `--resume` extends it.
    let out = train_quiet(&cfg);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("resume"), "{}", text(&out).1);
    let out = wst()
        .args(["train", "--quiet", "--resume"])
        .arg(&run)
        .args(["--set", "run.steps=3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    let out = wst().arg("report").arg(&run).output().unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let steps = text(&out)
        .0
        .lines()
        .filter(|l| l.starts_with(' ') && l.trim_start().starts_with(char::is_numeric))
        .count();
    assert_eq!(steps, 3, "{}", text(&out).0);

    // An external reader (polars in Python) sees the same step means as `wst report`.
    let ensure = repo().join("scripts/ensure-pyarrow.sh");
    let py = std::process::Command::new("bash")
        .arg(&ensure)
        .args(["pyarrow", "polars"])
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", text(&py).1);
    let python = text(&py).0.trim().to_string();
    let out = std::process::Command::new(&python)
        .arg(repo().join("scripts/check-report.py"))
        .arg(&run)
        .arg(env!("CARGO_BIN_EXE_wst"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", text(&out).0, text(&out).1);
    assert_eq!(text(&out).0.matches("OK").count(), 3, "{}", text(&out).0);

    // Baselines are cached: a second call computes none.
    let out = wst()
        .args(["baseline", "--config"])
        .arg(&cfg)
        .args(["--limit", "4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    let out = wst()
        .args(["baseline", "--config"])
        .arg(&cfg)
        .args(["--limit", "4"])
        .output()
        .unwrap();
    assert!(
        text(&out).0.contains("4 queries: 0 computed"),
        "{}",
        text(&out).0
    );

    let eval = |out_dir: &Path| {
        let out = wst()
            .args(["eval", "--config"])
            .arg(&cfg)
            .arg("--conditions")
            .arg(format!(
                "none,teacher,teacher:{}=trained teacher",
                run.display()
            ))
            .arg("--out")
            .arg(out_dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out).1);
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
    let out = wst()
        .args(["eval", "--config"])
        .arg(&cfg)
        .args(["--conditions", "none,bogus"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("condition `bogus`"),
        "{}",
        text(&out).1
    );
    let out = wst()
        .args(["eval", "--config"])
        .arg(&cfg)
        .args(["--conditions", "none", "--weights", "0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("harmless"), "{}", text(&out).1);
}
