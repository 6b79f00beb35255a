//! Resume after SIGKILL: a child process trains and is killed at random moments; resumed, the run
//! ends with the same teacher weights as an uninterrupted run, bit for bit, and leaves no partial
//! file behind.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tch::Tensor;
use wst_rl::{checkpoint, metrics, Trainer, METRICS_FILE};

use crate::support::*;

const STEPS: u64 = 24;
const CHILD_ENV: &str = "WST_RL_RESUME_CHILD_DIR";

const ASYNC_ENV: &str = "WST_RL_RESUME_CHILD_ASYNC";

fn resume_config(async_rollouts: bool) -> wst_core::Config {
    let mut c = config(STEPS, 3);
    c.grpo.async_rollouts = async_rollouts;
    c.run.save_every = 1;
    c.run.keep_checkpoints = 2;
    c.grpo.num_iterations = 2;
    c.grpo.micro_batch_size = 5;
    c
}

/// Trains in `dir`, resuming from its newest checkpoint when there is one.
fn train(dir: &Path, async_rollouts: bool) {
    let parts = mock_parts(3);
    let cfg = resume_config(async_rollouts);
    let mut t = if checkpoint::latest(dir).unwrap().is_some() {
        Trainer::resume(cfg, parts, dir).unwrap()
    } else {
        Trainer::new(cfg, parts, dir).unwrap()
    }
    .with_progress(false);
    t.run().unwrap();
}

/// The child process's entry point (run only when the parent sets the environment variable).
#[test]
#[ignore = "entry point of the child process of sigkill_resume_is_exact"]
fn resume_child_entry() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        train(Path::new(&dir), std::env::var_os(ASYNC_ENV).is_some());
    }
}

fn spawn(dir: &Path, async_rollouts: bool) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if async_rollouts {
        cmd.env(ASYNC_ENV, "1");
    }
    cmd.args([
        "--exact",
        "resume::resume_child_entry",
        "--ignored",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, dir)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap()
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let (step, ck) = checkpoint::latest(dir).unwrap().unwrap();
    assert_eq!(step, STEPS);
    let mut w = Tensor::read_safetensors(ck.join(checkpoint::MODEL_FILE)).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn partial_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp") {
            out.push(entry.path().display().to_string());
        }
        if entry.path().is_dir() {
            out.extend(partial_files(&entry.path()));
        }
    }
    out
}

#[test]
fn sigkill_resume_is_exact() {
    sigkill_resume(false);
}

/// Asynchronous rollouts: a checkpoint holds the next step's samples, drawn before its last
/// update (`pending.json`), and the resumed run ends bit for bit where an uninterrupted one does.
#[test]
fn sigkill_resume_is_exact_with_asynchronous_rollouts() {
    sigkill_resume(true);
}

fn sigkill_resume(async_rollouts: bool) {
    let reference = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    train(reference.path(), async_rollouts);
    let run_time = t0.elapsed();
    let before_last = checkpoint::step_dir(reference.path(), STEPS - 1);
    assert_eq!(
        before_last.join(checkpoint::PENDING_FILE).is_file(),
        async_rollouts,
        "{}",
        before_last.display()
    );

    let killed = tempfile::tempdir().unwrap();
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut kills = Vec::new();
    let per_step = run_time / STEPS as u32;
    for _ in 0..3 {
        let done = checkpoint::latest(killed.path())
            .unwrap()
            .map_or(0, |c| c.0);
        // Kill at a random moment within a random step of the rest of the run: wait for the
        // checkpoint of the step before it, then up to one step's time more.
        let target = done + 1 + wst_core::splitmix64(&mut seed) % ((STEPS - done) / 2).max(1);
        let extra = per_step.mul_f64((wst_core::splitmix64(&mut seed) % 1000) as f64 / 1000.0);
        let mut child = spawn(killed.path(), async_rollouts);
        let t = Instant::now();
        while checkpoint::latest(killed.path())
            .unwrap()
            .map_or(0, |c| c.0)
            < target
            && child.try_wait().unwrap().is_none()
            && t.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(extra);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let at = checkpoint::latest(killed.path()).unwrap().map(|c| c.0);
        kills.push((target, extra.as_millis(), finished, at));
    }
    eprintln!("kills (after checkpoint, + ms, child had finished, newest checkpoint): {kills:?}");
    let status = spawn(killed.path(), async_rollouts).wait().unwrap();
    assert!(status.success(), "the resumed child failed");

    let a = weights(reference.path());
    let b = weights(killed.path());
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "tensor {na} differs after resume ({kills:?})");
    }
    assert_eq!(partial_files(killed.path()), Vec::<String>::new());
    let steps: Vec<u64> = metrics::read(&killed.path().join(METRICS_FILE))
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, (0..STEPS).collect::<Vec<_>>());
    let text = std::fs::read_to_string(killed.path().join(METRICS_FILE)).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'));

    // A resume with a different optimiser setting is refused.
    let mut cfg = resume_config(async_rollouts);
    cfg.grpo.lr *= 2.0;
    let e = Trainer::resume(cfg, mock_parts(3), killed.path()).unwrap_err();
    assert!(e.to_string().contains("configuration differs"), "{e}");
}
