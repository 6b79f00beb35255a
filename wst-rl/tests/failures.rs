//! A student that fails stops the run: a step with too many failed replies, or a baseline with
//! no usable reply, ends `Trainer::run` with an error that names the most common failure, after
//! a checkpoint of the finished steps; resumed once the student answers, the run ends exactly
//! where an uninterrupted one does.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tch::Tensor;
use wst_core::{Result, SamplingParams, Student, StudentReply, StudentRequest};
use wst_rl::{checkpoint, metrics, Error, Trainer, METRICS_FILE};

use crate::support::*;

/// [`mock_student`], except that while `broken` every reply to requests with an instruction (or,
/// with `with_instruction = false`, without one) comes back failed: a quarter of the requests
/// time out, the rest answer `content: null`.
struct Flaky {
    inner: MockStudent,
    broken: Arc<AtomicBool>,
    with_instruction: bool,
}

impl Student for Flaky {
    fn id(&self) -> String {
        self.inner.id()
    }
    fn generate(
        &mut self,
        requests: &[StudentRequest<'_>],
        sampling: &SamplingParams,
    ) -> Result<Vec<Vec<StudentReply>>> {
        let mut out = self.inner.generate(requests, sampling)?;
        if self.broken.load(Ordering::SeqCst) {
            for (i, (r, replies)) in requests.iter().zip(&mut out).enumerate() {
                if r.instruction.is_some() == self.with_instruction {
                    let why = if i % 4 == 0 {
                        "timed out"
                    } else {
                        "no content (null)"
                    };
                    for reply in replies.iter_mut() {
                        *reply = StudentReply::failed(why, 1);
                    }
                }
            }
        }
        Ok(out)
    }
}

const STEPS: u64 = 6;

/// Trains in `dir` (resuming from its newest checkpoint when there is one). With `break_after`,
/// the student breaks after 3 steps (replies to instructions when `true`, baselines when
/// `false`).
fn run(dir: &Path, break_after: Option<bool>, async_rollouts: bool) -> wst_rl::Result<u64> {
    let mut cfg = config(STEPS, 7);
    cfg.grpo.async_rollouts = async_rollouts;
    cfg.run.keep_checkpoints = 0;
    let broken = Arc::new(AtomicBool::new(false));
    let student = Flaky {
        inner: mock_student(),
        broken: broken.clone(),
        with_instruction: break_after.unwrap_or(true),
    };
    let parts = parts_with(policy(7), student, 7);
    let mut t = if checkpoint::latest(dir)?.is_some() {
        Trainer::resume(cfg, parts, dir)?
    } else {
        Trainer::new(cfg, parts, dir)?
    }
    .with_progress(false);
    if break_after.is_some() {
        for _ in 0..3 {
            t.train_step()?;
        }
        broken.store(true, Ordering::SeqCst);
    }
    Ok(t.run()?.steps)
}

fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let (step, ck) = checkpoint::latest(dir).unwrap().unwrap();
    assert_eq!(step, STEPS);
    let mut w = Tensor::read_safetensors(ck.join(checkpoint::MODEL_FILE)).unwrap();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

#[test]
fn too_many_failed_replies_stop_the_run_after_a_checkpoint_and_resume_is_exact() {
    stop_and_resume(false);
}

/// Under `grpo.async` the student answers step 4 while step 3 trains, before it breaks: the
/// run stops in step 5, and its checkpoint of step 4 holds step 5's samples.
#[test]
fn asynchronous_run_stops_after_a_checkpoint_with_its_pending_samples_and_resumes_exactly() {
    stop_and_resume(true);
}

fn stop_and_resume(async_rollouts: bool) {
    let done = 3 + u64::from(async_rollouts);
    let reference = tempfile::tempdir().unwrap();
    assert_eq!(run(reference.path(), None, async_rollouts).unwrap(), STEPS);

    let stopped = tempfile::tempdir().unwrap();
    let e = run(stopped.path(), Some(true), async_rollouts).unwrap_err();
    let Error::Stopped { step, total, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*step, *total), (done + 1, STEPS));
    let msg = wst_core::error_chain(&e);
    for needle in [
        format!("the run stopped in step {} of 6", done + 1),
        format!("saved: metrics and rollouts of steps 1-{done}"),
        format!("step-0000000{done}"),
        format!(
            "64 of 64 student replies of step {} failed (100% > student.max_failure_rate = 0.5)",
            done + 1
        ),
        "most common error (48 of 64): no content (null)".to_string(),
    ] {
        assert!(msg.contains(&needle), "no {needle:?} in {msg}");
    }
    let (at, ck) = checkpoint::latest(stopped.path()).unwrap().unwrap();
    assert_eq!(at, done);
    assert_eq!(ck.join(checkpoint::PENDING_FILE).is_file(), async_rollouts);
    let m = metrics::read(&stopped.path().join(METRICS_FILE)).unwrap();
    assert_eq!(m.len() as u64, done);

    // Healed and resumed: the same teacher as the uninterrupted run, bit for bit.
    assert_eq!(run(stopped.path(), None, async_rollouts).unwrap(), STEPS);
    for ((na, ta), (nb, tb)) in weights(reference.path())
        .iter()
        .zip(&weights(stopped.path()))
    {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after the stop and resume");
    }
}

#[test]
fn a_baseline_without_a_usable_reply_is_an_error_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let e = run(dir.path(), Some(false), false).unwrap_err();
    let msg = wst_core::error_chain(&e);
    assert!(
        msg.contains("no baseline s_i for query") && msg.contains("none of its 2 replies"),
        "{msg}"
    );
    assert!(msg.contains("the run stopped in step 4 of 6"), "{msg}");
}
