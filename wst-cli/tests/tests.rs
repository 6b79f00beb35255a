//! End-to-end tests of the `wst` binary.

use std::process::Command;

fn wst() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wst"))
}

#[test]
fn help_lists_the_subcommands() {
    let out = wst().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["config", "info"] {
        assert!(text.contains(cmd), "{cmd} missing from:\n{text}");
    }
}

#[test]
fn config_reports_every_problem_and_applies_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[teacher]\nmodel = \"t\"\n[student]\nmodel = \"s\"\n",
    )
    .unwrap();

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
    assert!(text.contains("lr = 2e-6"), "{text}");
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
