//! End-to-end tests of the `wst` binary.

mod verify;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// The workspace root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `shared/` folder of test assets beside the workspace (`$WST_SHARED` when set).
fn shared() -> PathBuf {
    wst_core::testing::shared_dir()
}

/// The tiny random Qwen2 of the test vectors (a model folder with `reference.json`).
fn tiny_model() -> PathBuf {
    shared().join("testvectors/tiny-qwen2")
}

/// (stdout, stderr) of `out`, read lossily.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Asserts that `out` is of a command that succeeded (with its output otherwise); `out`.
fn ok(out: Output) -> Output {
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "failed:\n{stdout}\n{stderr}");
    out
}

/// Asserts that `out` is of a command that failed (with its stdout otherwise); its stderr.
fn failed(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(!out.status.success(), "succeeded:\n{stdout}");
    stderr
}

/// Runs `cmd` to its end, which must succeed; its output.
fn run_ok(cmd: &mut Command) -> Output {
    ok(cmd.output().unwrap())
}

/// `wst SUBCOMMAND... --config CFG ARGS...`, run to its end.
fn with_config(subcommand: &[&str], cfg: &Path, args: &[&str]) -> Output {
    wst()
        .args(subcommand)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

/// The first line of `text` that contains `needle` (a panic showing `text` when none does).
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// The JSON file at `path`, parsed.
fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("test asset {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `contents` to `dir/name`; its path.
fn write_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The project venv's Python with `packages` installed (`scripts/ensure-pyarrow.sh`).
fn python_with(packages: &[&str]) -> PathBuf {
    let out = run_ok(
        Command::new("bash")
            .arg(repo().join("scripts/ensure-pyarrow.sh"))
            .args(packages),
    );
    PathBuf::from(text(&out).0.trim())
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
fn minimal_config(dir: &Path) -> PathBuf {
    write_file(
        dir,
        "c.toml",
        "[teacher]\nmodel = \"t\"\n[student]\nmodel = \"s\"\n",
    )
}

/// `wst config --config CFG --set S...`, run to its end.
fn config_with(cfg: &Path, sets: &[&str]) -> Output {
    let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
    with_config(&["config"], cfg, &args)
}

#[test]
fn config_reports_every_problem_and_applies_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimal_config(dir.path());

    let out = config_with(&path, &["grpo.group_size=1", "grpo.lr=0"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("grpo.group_size") && err.contains("grpo.lr"),
        "{err}"
    );
    assert!(err.contains("c.toml"), "{err}");

    let out = ok(config_with(&path, &["grpo.lr=2e-6"]));
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
        let out = config_with(&path, &[&set, "grpo.epsilon_high=5.0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{set}: {err}");
        let text = String::from_utf8(out.stdout).unwrap();
        let resolved = wst_core::Config::from_toml_str(&text, "stdout").unwrap();
        assert_eq!(resolved.grpo.loss_type, lt, "{text}");
    }
    let out = config_with(&path, &["grpo.loss_type=ppo"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("ppo") && err.contains("cispo"), "{err}");
}

#[test]
fn config_builds_the_lora_table_from_set_and_names_its_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = minimal_config(dir.path());
    let out = ok(config_with(
        &path,
        &[
            "teacher.lora.rank=8",
            "teacher.lora.targets=[\"q_proj\", \"v_proj\"]",
        ],
    ));
    let text = String::from_utf8(out.stdout).unwrap();
    let lora = wst_core::Config::from_toml_str(&text, "stdout")
        .unwrap()
        .teacher
        .lora
        .expect("[teacher.lora] in the resolved config");
    assert_eq!((lora.rank, lora.alpha, lora.dropout), (8, 32.0, 0.0));
    assert_eq!(lora.targets, ["q_proj", "v_proj"]);
    // Without the table the resolved config has none (full training).
    let out = config_with(&path, &[]);
    assert!(!String::from_utf8(out.stdout).unwrap().contains("lora"));

    let out = config_with(
        &path,
        &["teacher.lora.rank=0", "teacher.lora.targets=[\"qkv\"]"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("teacher.lora.rank must be >= 1") && err.contains("unknown projection `qkv`"),
        "{err}"
    );
}

#[test]
fn info_reports_libtorch() {
    let out = run_ok(wst().arg("info"));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("cuda devices"));
}

#[test]
fn every_shipped_config_validates() {
    let dir = repo().join("configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = with_config(&["config"], &path, &[]);
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
