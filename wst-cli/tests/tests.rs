//! End-to-end tests of the `wst` binary.

mod verify;

use std::process::Command;

mod bench;
mod data;
mod eval;
mod export;
mod generate;
mod rewards;
mod score;
mod serve;
mod student_failures;
mod train;

fn wst() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wst"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = wst().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "demo", "train", "baseline", "eval", "config", "info", "verify", "data", "report",
        "generate", "score", "bench", "export", "serve",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

/// A config naming only the teacher and the student, in `dir`.
fn minimal_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        "[teacher]\nmodel = \"t\"\n[student]\nmodel = \"s\"\n",
    )
    .unwrap();
    path
}

#[test]
fn config_reports_every_problem_and_applies_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimal_config(dir.path());

    let out = wst()
        .args(["config", "--config"])
        .arg(&path)
        .args(["--set", "grpo.group_size=1", "--set", "grpo.lr=0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("grpo.group_size") && err.contains("grpo.lr"),
        "{err}"
    );
    assert!(err.contains("c.toml"), "{err}");

    let out = wst()
        .args(["config", "--config"])
        .arg(&path)
        .args(["--set", "grpo.lr=2e-6"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let resolved = wst_core::Config::from_toml_str(&text, "stdout").unwrap();
    assert_eq!(resolved.grpo.lr, 2e-6, "{text}");
    assert_eq!(resolved.teacher.model, "t");
}

#[test]
fn config_accepts_the_six_loss_types_and_names_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimal_config(dir.path());
    for lt in wst_core::LossType::ALL {
        let set = format!("grpo.loss_type={lt}");
        let out = wst()
            .args(["config", "--config"])
            .arg(&path)
            .args(["--set", &set, "--set", "grpo.epsilon_high=5.0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{set}: {err}");
        let text = String::from_utf8(out.stdout).unwrap();
        let resolved = wst_core::Config::from_toml_str(&text, "stdout").unwrap();
        assert_eq!(resolved.grpo.loss_type, lt, "{text}");
    }
    let out = wst()
        .args(["config", "--config"])
        .arg(&path)
        .args(["--set", "grpo.loss_type=ppo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ppo") && err.contains("cispo"), "{err}");
}

#[test]
fn config_builds_the_lora_table_from_set_and_names_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimal_config(dir.path());
    let config = |sets: &[&str]| {
        let mut cmd = wst();
        cmd.args(["config", "--config"]).arg(&path);
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.output().unwrap()
    };
    let out = config(&[
        "teacher.lora.rank=8",
        "teacher.lora.targets=[\"q_proj\", \"v_proj\"]",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lora = wst_core::Config::from_toml_str(&text, "stdout")
        .unwrap()
        .teacher
        .lora
        .expect("[teacher.lora] in the resolved config");
    assert_eq!((lora.rank, lora.alpha, lora.dropout), (8, 32.0, 0.0));
    assert_eq!(lora.targets, ["q_proj", "v_proj"]);
    // Without the table the resolved config has none (full training).
    let out = config(&[]);
    assert!(!String::from_utf8(out.stdout).unwrap().contains("lora"));

    let out = config(&["teacher.lora.rank=0", "teacher.lora.targets=[\"qkv\"]"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("teacher.lora.rank must be >= 1") && err.contains("unknown projection `qkv`"),
        "{err}"
    );
}

#[test]
fn info_reports_libtorch() {
    let out = wst().arg("info").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("cuda devices"));
}

#[test]
fn every_shipped_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = wst()
                .args(["config", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 5, "expected the paper configs in {}", dir.display());
}
