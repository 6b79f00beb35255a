//! The training loop: collect rollouts, compute advantages, update the teacher with the GRPO loss
//! (micro-batches, gradient accumulation, `num_iterations` passes, global-norm clipping, AdamW on
//! a warmup + cosine/constant schedule), write rollouts and metrics, checkpoint, resume.
//!
//! Run directory:
//!
//! ```text
//! RUN_DIR/config.toml        the resolved configuration
//! RUN_DIR/metrics.jsonl      one StepMetrics per line
//! RUN_DIR/checkpoints/step-NNNNNNNN/{model,optimizer}.safetensors, trainer.json, config.toml
//! ```
//! Rollouts go to the `RolloutSink` of [`Parts`] (the CLI points it into the run directory).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tch::Tensor;
use wst_core::{BaselineStore, Config, PromptSource, Reward, RolloutSink, Student};
use wst_models::WeightStore;

use crate::adamw::{AdamW, AdamWConfig};
use crate::advantage;
use crate::checkpoint::{self, Pending, TrainerState};
use crate::collect::{answer_share, Collected, Collector};
use crate::loss::{LossDenom, LossParams};
use crate::metrics::{self, StepMetrics};
use crate::policy::{Policy, TokenBatch, HEAD_CHUNK};
use crate::schedule::learning_rate;
use crate::update::{self, MicroBatch, MiniBatch, UpdateOptions, UpdateStats};
use crate::{Error, Result};

pub use wst_core::layout::{CONFIG_FILE, METRICS_FILE};

/// The components the trainer is wired with.
pub struct Parts<'a> {
    /// The teacher being trained.
    pub policy: Box<dyn Policy + 'a>,
    /// The frozen reference teacher for the KL term; required when `grpo.beta > 0`, ignored
    /// (and best not loaded) when it is 0.
    pub reference: Option<Box<dyn Policy + 'a>>,
    /// The student (`Send`: under `grpo.async` it answers on a second thread).
    pub student: Box<dyn Student + Send + 'a>,
    /// The reward (its components are weighted by `reward.weights`; scored where the student
    /// answers).
    pub reward: Box<dyn Reward + Send + 'a>,
    /// Training queries.
    pub prompts: Box<dyn PromptSource + 'a>,
    /// Where rollouts go.
    pub sink: Box<dyn RolloutSink + 'a>,
    /// Cached student baselines (used where the student answers).
    pub baselines: Box<dyn BaselineStore + Send + 'a>,
}

/// The teacher's side of [`Parts`]: what the thread that trains uses.
struct TeacherParts<'a> {
    policy: Box<dyn Policy + 'a>,
    reference: Option<Box<dyn Policy + 'a>>,
    prompts: Box<dyn PromptSource + 'a>,
    sink: Box<dyn RolloutSink + 'a>,
}

/// The student's side of [`Parts`]: what answering and scoring use (moved to a second thread
/// for the time of one answer under `grpo.async`).
struct StudentParts<'a> {
    student: Box<dyn Student + Send + 'a>,
    reward: Box<dyn Reward + Send + 'a>,
    baselines: Box<dyn BaselineStore + Send + 'a>,
}

/// What a finished [`Trainer::run`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// Steps completed in total (including those before a resume).
    pub steps: u64,
    /// Metrics of the steps run by this call.
    pub metrics: Vec<StepMetrics>,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
}

/// The GRPO trainer of the teacher.
pub struct Trainer<'a> {
    config: Config,
    parts: TeacherParts<'a>,
    /// `None` only while a second thread answers (asynchronous mode).
    side: Option<StudentParts<'a>>,
    run_dir: PathBuf,
    collector: Arc<Collector>,
    /// The samples of step `step`, once drawn (asynchronous mode, and within a synchronous step).
    oldest: Option<Pending>,
    /// The answers to `oldest` and the seconds the teacher waited for them (asynchronous mode).
    ready: Option<(Collected, f64)>,
    /// The samples of step `step + 1`, once drawn (asynchronous mode).
    next: Option<Pending>,
    optimizer: AdamW,
    loss: LossParams,
    step: u64,
    progress: bool,
    step_lines: bool,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("run_dir", &self.run_dir)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

fn check(config: &Config, parts: &Parts<'_>) -> Result<()> {
    config.validate()?;
    if config.grpo.beta > 0.0 && parts.reference.is_none() {
        return Err(Error::Config(
            "grpo.beta > 0 needs a reference teacher (Parts::reference)".into(),
        ));
    }
    Ok(())
}

impl<'a> Trainer<'a> {
    /// A fresh run in `run_dir` (created; it must not hold checkpoints already). Writes the
    /// resolved configuration and an empty metrics file.
    pub fn new(config: Config, parts: Parts<'a>, run_dir: impl Into<PathBuf>) -> Result<Self> {
        let run_dir = run_dir.into();
        check(&config, &parts)?;
        std::fs::create_dir_all(&run_dir).map_err(|e| Error::io("cannot create", &run_dir, e))?;
        if checkpoint::latest(&run_dir)?.is_some() {
            return Err(Error::Config(format!(
                "{} already holds checkpoints: resume it or choose another run.name",
                run_dir.display()
            )));
        }
        checkpoint::clean_partial(&run_dir)?;
        checkpoint::write_atomic(&run_dir.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        checkpoint::write_atomic(&run_dir.join(METRICS_FILE), b"")?;
        Self::build(config, parts, run_dir)
    }

    /// Continues the run in `run_dir` from its newest checkpoint: weights, optimiser state, step,
    /// data cursor and random streams are restored, leftovers of an interrupted write removed and
    /// metrics of steps after the checkpoint dropped. The configuration must equal the
    /// checkpoint's, except `run.steps` (a run can be extended), `run.output_dir`,
    /// `run.save_every` and `run.keep_checkpoints`.
    pub fn resume(config: Config, parts: Parts<'a>, run_dir: impl Into<PathBuf>) -> Result<Self> {
        let run_dir = run_dir.into();
        check(&config, &parts)?;
        checkpoint::clean_partial(&run_dir)?;
        let (_, dir) = checkpoint::latest(&run_dir)?.ok_or_else(|| Error::Checkpoint {
            path: run_dir.join(checkpoint::CHECKPOINTS),
            reason: "no checkpoint to resume from".into(),
        })?;
        let saved_path = dir.join(checkpoint::CONFIG_FILE);
        let saved_text = std::fs::read_to_string(&saved_path)
            .map_err(|e| Error::io("cannot read", &saved_path, e))?;
        let mut saved = Config::from_toml_str(&saved_text, &saved_path.display().to_string())?;
        // What may change on resume: how long, where, and how often to save.
        saved.run.steps = config.run.steps;
        saved.run.output_dir = config.run.output_dir.clone();
        saved.run.save_every = config.run.save_every;
        saved.run.keep_checkpoints = config.run.keep_checkpoints;
        if saved != config {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                reason: "the configuration differs from the one the checkpoint was trained with \
                         (only run.steps, run.output_dir, run.save_every and \
                         run.keep_checkpoints may change on resume)"
                    .into(),
            });
        }
        let state = checkpoint::read_state(&dir)?;
        let pending = checkpoint::read_pending(&dir)?;
        let mut t = Self::build(config, parts, run_dir)?;
        // The weights file holds the f32 masters: the variables get them cast to their kind, the
        // optimiser keeps them exact. A LoRA checkpoint holds the adapters only.
        if t.config.teacher.lora.is_some() {
            let file = dir.join(checkpoint::ADAPTER_FILE);
            if !file.is_file() {
                return Err(Error::Checkpoint {
                    path: dir.clone(),
                    reason: format!("no {} (a LoRA run's adapters)", checkpoint::ADAPTER_FILE),
                });
            }
            let mut store = wst_models::lora::adapter_store(&file)?;
            store.load_vars(crate::adamw::trainable(t.parts.policy.vars()))?;
            let unused = store.unused();
            if !unused.is_empty() {
                return Err(Error::Checkpoint {
                    path: file,
                    reason: format!("adapters the teacher does not have: {}", unused.join(", ")),
                });
            }
            t.optimizer.load_masters(&mut store)?;
        } else {
            let model_file = dir.join(checkpoint::MODEL_FILE);
            crate::lm::load_weights(t.parts.policy.vars_mut(), &model_file)?;
            t.optimizer
                .load_masters(&mut WeightStore::open_files(&[model_file])?)?;
        }
        t.optimizer.load(&dir.join(checkpoint::OPTIMIZER_FILE))?;
        t.parts.prompts.set_position(state.data_position)?;
        t.step = state.step;
        if let Some(p) = pending {
            // The samples the checkpointed run had drawn for this step: their queries come next
            // in the data.
            let queries = t.parts.prompts.next_batch(t.config.grpo.batch_size)?;
            let ids = |q: &[wst_core::Query]| q.iter().map(|q| q.id.clone()).collect::<Vec<_>>();
            if p.drawn.step != state.step || ids(&queries) != ids(&p.drawn.queries) {
                return Err(Error::Checkpoint {
                    path: dir.join(checkpoint::PENDING_FILE),
                    reason: format!(
                        "its samples of step {} do not follow this checkpoint of step {} and its \
                         data (queries {:?}, the data gives {:?})",
                        p.drawn.step + 1,
                        state.step,
                        ids(&p.drawn.queries),
                        ids(&queries)
                    ),
                });
            }
            t.oldest = Some(p);
        }
        metrics::truncate(&t.run_dir.join(METRICS_FILE), state.step)?;
        tracing::info!(step = state.step, checkpoint = %dir.display(), "resumed");
        Ok(t)
    }

    fn build(config: Config, parts: Parts<'a>, run_dir: PathBuf) -> Result<Self> {
        let g = &config.grpo;
        if config.teacher.lora.is_some() {
            let trainable = crate::adamw::trainable(parts.policy.vars());
            let base: Vec<&str> = trainable
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !wst_models::lora::is_adapter_name(n))
                .collect();
            if trainable.is_empty() || !base.is_empty() {
                return Err(Error::Config(format!(
                    "teacher.lora is set, but the teacher's trainable weights are not its LoRA \
                     adapters (add them with DecoderLm::add_lora); trainable base weights: {}",
                    if base.is_empty() {
                        "none, and no adapters".to_string()
                    } else {
                        base.join(", ")
                    }
                )));
            }
        }
        let optimizer = AdamW::new(
            parts.policy.vars(),
            AdamWConfig {
                betas: g.betas,
                eps: g.adam_eps,
                weight_decay: g.weight_decay,
            },
        );
        if let Some(r) = &parts.reference {
            for (_, mut t) in r.vars().variables() {
                let _ = t.requires_grad_(false);
            }
        }
        let collector = Arc::new(Collector::from_config(&config)?);
        let Parts {
            policy,
            reference,
            student,
            reward,
            prompts,
            sink,
            baselines,
        } = parts;
        Ok(Trainer {
            loss: LossParams::from_config(g),
            config,
            parts: TeacherParts {
                policy,
                reference,
                prompts,
                sink,
            },
            side: Some(StudentParts {
                student,
                reward,
                baselines,
            }),
            run_dir,
            collector,
            oldest: None,
            ready: None,
            next: None,
            optimizer,
            step: 0,
            progress: true,
            step_lines: false,
        })
    }

    /// Prints one line per step to stderr (reward, uplift, time) where no progress bar can be
    /// drawn (logs, CI, pipes).
    pub fn with_step_lines(mut self, on: bool) -> Self {
        self.step_lines = on;
        self
    }

    /// Shows (default) or hides the progress bar (it is hidden anyway when stderr is no terminal).
    pub fn with_progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Steps completed so far.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The teacher being trained.
    pub fn policy(&self) -> &dyn Policy {
        self.parts.policy.as_ref()
    }

    /// Runs the remaining steps up to `run.steps`, checkpointing every `run.save_every` steps and
    /// at the end.
    pub fn run(&mut self) -> Result<RunSummary> {
        let total = self.config.run.steps;
        let bar = if self.progress {
            ProgressBar::new(total)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} step {pos}/{len} [{elapsed_precise} < {eta}] {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_position(self.step);
        let mut out = Vec::new();
        let mut last_ckpt = None;
        while self.step < total {
            let m = match self.train_step() {
                Ok(m) => m,
                Err(Error::Incomplete { step, source }) => {
                    bar.abandon();
                    return Err(self.stopped(step, *source));
                }
                Err(e) => return Err(e),
            };
            bar.set_message(format!(
                "reward {:.3}  uplift {:+.3}  kl {:.4}  tied {}/{}",
                m.reward, m.uplift, m.kl, m.tied_groups, m.groups
            ));
            bar.inc(1);
            if self.step_lines {
                // The time left at the mean step time of this process so far (the first step
                // also computes baselines, so this reads a little high early on).
                let timed = out
                    .iter()
                    .map(|x: &crate::StepMetrics| x.t_step)
                    .sum::<f64>()
                    + m.t_step;
                let left = timed / (out.len() + 1) as f64 * total.saturating_sub(self.step) as f64;
                eprintln!(
                    "step {}/{total}: reward {:.3}  uplift {:+.3}  instruction {:.1} tokens  \
                     tied {}/{}  {:.1} s{}",
                    self.step,
                    m.reward,
                    m.uplift,
                    m.instruction_tokens,
                    m.tied_groups,
                    m.groups,
                    m.t_step,
                    if self.step < total {
                        format!("  (about {:.1} min of training left)", left / 60.0)
                    } else {
                        String::new()
                    }
                );
            }
            out.push(m);
            let every = self.config.run.save_every;
            if (every > 0 && self.step % every == 0) || self.step == total {
                last_ckpt = Some(self.save_checkpoint()?);
            }
        }
        bar.finish();
        Ok(RunSummary {
            steps: self.step,
            metrics: out,
            checkpoint: last_ckpt,
        })
    }

    /// After a step that could not finish: a checkpoint of the finished steps unless the newest
    /// one is of them already, and the error saying what is on disk.
    fn stopped(&mut self, step: u64, source: Error) -> Error {
        let total = self.config.run.steps;
        let dir = self.run_dir.display().to_string();
        let saved = if self.step == 0 {
            "nothing to save: no step had finished".to_string()
        } else {
            tracing::warn!(
                step = step + 1,
                "the step could not finish; saving the {} finished steps",
                self.step
            );
            let checkpoint = match checkpoint::latest(&self.run_dir) {
                Ok(Some((s, path))) if s == self.step => Ok(path),
                _ => self.save_checkpoint(),
            };
            let steps = if self.step == 1 {
                "step 1".to_string()
            } else {
                format!("steps 1-{}", self.step)
            };
            match checkpoint {
                Ok(path) => format!(
                    "saved: metrics and rollouts of {steps} in {dir}, checkpoint {}; continue \
                     with `wst train --resume {dir}` once the student answers",
                    path.display()
                ),
                Err(e) => format!(
                    "saved: metrics and rollouts of {steps} in {dir}; the checkpoint of step {} \
                     could not be written: {}",
                    self.step,
                    wst_core::error_chain(&e)
                ),
            }
        };
        Error::Stopped {
            step: step + 1,
            total,
            saved,
            source: Box::new(source),
        }
    }

    /// Writes a checkpoint of the current state (after `self.step()` steps).
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        // Asynchronous runs: the samples of the next step were drawn before the last update.
        let pending = self.oldest.clone();
        let state = TrainerState {
            step: self.step,
            data_position: pending
                .as_ref()
                .map_or_else(|| self.parts.prompts.position(), |p| p.data_position),
            rng_seed: self.config.run.seed,
            rng_stream: self.step,
            run_id: self.config.run.name.clone(),
        };
        let vs = self.parts.policy.vars();
        let opt = &self.optimizer;
        let cfg = self.config.to_toml();
        let teacher = &self.config.teacher;
        checkpoint::save(
            &self.run_dir,
            self.step,
            self.config.run.keep_checkpoints,
            |dir| {
                match &teacher.lora {
                    Some(lora) => checkpoint::save_adapters(opt, lora, &teacher.model, dir)?,
                    None => opt.save_weights(vs, &dir.join(checkpoint::MODEL_FILE))?,
                }
                opt.save(&dir.join(checkpoint::OPTIMIZER_FILE))?;
                checkpoint::write_state(dir, &state)?;
                if let Some(p) = &pending {
                    checkpoint::write_pending(dir, p)?;
                }
                std::fs::write(dir.join(checkpoint::CONFIG_FILE), &cfg)
                    .map_err(|e| Error::io("cannot write", dir.join(checkpoint::CONFIG_FILE), e))
            },
        )
    }

    /// One step: collect, advantages, `num_iterations` updates, rollouts, metrics. Under
    /// `grpo.async` the student answers the next step meanwhile (see [`Trainer::run`]).
    pub fn train_step(&mut self) -> Result<StepMetrics> {
        if self.config.grpo.async_rollouts {
            return self.async_step();
        }
        let t_step = Instant::now();
        let pending = self.draw(self.step)?;
        let t = Instant::now();
        let col = match self.answer_here(&pending) {
            Ok(c) => c,
            Err(e) => {
                // Collection changes nothing but the data cursor: put it back, and the state is
                // that of the last finished step.
                self.parts.prompts.set_position(pending.data_position)?;
                return Err(e);
            }
        };
        let waited = t.elapsed().as_secs_f64();
        let m = self.finish_step(&pending, col, waited)?;
        self.record(m, t_step)
    }

    /// Draws the queries and teacher samples of step `step` with the current weights.
    fn draw(&mut self, step: u64) -> Result<Pending> {
        let position = self.parts.prompts.position();
        let queries = self.parts.prompts.next_batch(self.config.grpo.batch_size)?;
        match self
            .collector
            .draw(step, self.parts.policy.as_mut(), queries)
        {
            Ok(drawn) => Ok(Pending {
                version: self.step,
                data_position: position,
                drawn,
            }),
            Err(e) => {
                self.parts.prompts.set_position(position)?;
                Err(Error::Incomplete {
                    step,
                    source: Box::new(e),
                })
            }
        }
    }

    /// Answers and scores `p` on this thread.
    fn answer_here(&mut self, p: &Pending) -> Result<Collected> {
        let dataset = self.parts.prompts.dataset_id();
        let side = self.side.as_mut().ok_or_else(lent)?;
        self.collector
            .answer(
                &p.drawn,
                side.student.as_mut(),
                side.reward.as_mut(),
                side.baselines.as_mut(),
                &dataset,
            )
            .map_err(|e| Error::Incomplete {
                step: p.drawn.step,
                source: Box::new(e),
            })
    }

    /// Answers and scores `p` on a second thread while `teacher` runs on this one. Returns `p`,
    /// the answers, the seconds the teacher waited for them after `teacher` returned, and what
    /// `teacher` returned.
    fn overlap<T>(
        &mut self,
        p: Pending,
        teacher: impl FnOnce(&mut Self) -> Result<T>,
    ) -> (Pending, Result<Collected>, f64, Result<T>) {
        let Some(mut side) = self.side.take() else {
            return (p, Err(lent()), 0.0, Err(lent()));
        };
        let collector = Arc::clone(&self.collector);
        let dataset = self.parts.prompts.dataset_id();
        let (joined, waited, taught) = std::thread::scope(|scope| {
            let answering = scope.spawn(move || {
                let res = collector.answer(
                    &p.drawn,
                    side.student.as_mut(),
                    side.reward.as_mut(),
                    side.baselines.as_mut(),
                    &dataset,
                );
                (p, side, res)
            });
            let taught = teacher(self);
            let t = Instant::now();
            let joined = answering.join();
            (joined, t.elapsed().as_secs_f64(), taught)
        });
        let (p, side, res) = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        self.side = Some(side);
        let res = res.map_err(|e| Error::Incomplete {
            step: p.drawn.step,
            source: Box::new(e),
        });
        (p, res, waited, taught)
    }

    /// One step of an asynchronous run: the update on step `step`, while the student answers
    /// step `step + 1`; then step `step + 2` is drawn, still while it answers. So every update
    /// trains on samples drawn one update earlier (the first on fresh ones).
    fn async_step(&mut self) -> Result<StepMetrics> {
        let t_step = Instant::now();
        let total = self.config.run.steps;
        let j = self.step;
        if self.oldest.is_none() {
            self.oldest = Some(self.draw(j)?);
        }
        if self.ready.is_none() {
            // Step j is drawn but not answered (a start or a resume): answer it while step j + 1
            // is drawn with the same weights.
            let oldest = self.oldest.take().ok_or_else(lent)?;
            let draw_next = self.next.is_none() && j + 1 < total;
            let (oldest, answered, waited, next) = self.overlap(oldest, |t| {
                if draw_next {
                    t.draw(j + 1).map(Some)
                } else {
                    Ok(None)
                }
            });
            self.oldest = Some(oldest);
            if let Some(n) = next.map_err(|e| unfinished(e, j))? {
                self.next = Some(n);
            }
            self.ready = Some((answered?, waited));
        }
        let (col, waited) = self.ready.take().ok_or_else(lent)?;
        let oldest = self.oldest.take().ok_or_else(lent)?;
        let Some(next) = self.next.take() else {
            // The last step: nothing is left to answer meanwhile.
            let m = self.finish_step(&oldest, col, waited)?;
            return self.record(m, t_step);
        };
        let draw_after = j + 2 < total;
        let mut trained = None;
        let (next, answered, waited_next, drawn) = self.overlap(next, |t| {
            trained = Some(t.finish_step(&oldest, col, waited)?);
            if draw_after {
                t.draw(j + 2).map(Some)
            } else {
                Ok(None)
            }
        });
        self.oldest = Some(next);
        // The step is trained once its update is done, whatever happened after it.
        let recorded = trained.map(|m| self.record(m, t_step));
        self.next = drawn.map_err(|e| unfinished(e, j + 1))?;
        let m = recorded.ok_or_else(lent)??;
        self.ready = Some((answered?, waited_next));
        Ok(m)
    }

    /// Advantages, the update and rollouts of the step whose samples are `pending` and answers
    /// `col` (`waited`: seconds the teacher waited for those answers); its metrics, still to be
    /// [`Trainer::record`]ed.
    fn finish_step(
        &mut self,
        pending: &Pending,
        mut col: Collected,
        waited: f64,
    ) -> Result<StepMetrics> {
        let step = self.step;
        let queries = &pending.drawn.queries;
        let adv = advantage::compute(&col.rewards, self.config.grpo.advantage_scale());
        for (rec, a) in col.records.iter_mut().zip(adv.values.iter().flatten()) {
            rec.advantage = *a;
        }
        let lr = learning_rate(&self.config.grpo, step, self.config.run.steps);
        let t_update = Instant::now();
        let upd = self.update(&col, &adv.values, lr)?;
        let staleness = step.saturating_sub(pending.version);
        let t_update = t_update.elapsed().as_secs_f64();
        self.parts.sink.write_step(step, &col.records)?;

        let (adv_mean, adv_std, adv_min, adv_max) = adv.stats();
        let reward_means: Vec<f64> = col.records.iter().filter_map(|r| r.reward_mean).collect();
        let (reward, reward_std, _, _) = advantage::moments(&reward_means);
        let uplifts: Vec<f64> = col.records.iter().filter_map(|r| r.reward).collect();
        let baselines: Vec<f64> = col
            .records
            .iter()
            .step_by(self.config.grpo.group_size)
            .map(|r| r.baseline)
            .collect();
        let n = col.records.len().max(1) as f64;
        let s = &col.stats;
        let m = StepMetrics {
            step,
            lr,
            reward,
            reward_std,
            baseline: advantage::moments(&baselines).0,
            uplift: advantage::moments(&uplifts).0,
            adv_mean,
            adv_std,
            adv_min,
            adv_max,
            kl: upd.kl,
            clip_frac: upd.clip_frac,
            ratio_mean: upd.ratio_mean,
            loss: upd.loss,
            grad_norm: upd.grad_norm,
            entropy: upd.entropy,
            optimizer_steps: upd.steps,
            update_tokens: upd.tokens,
            instruction_tokens: col
                .records
                .iter()
                .map(|r| r.instruction_tokens as f64)
                .sum::<f64>()
                / n,
            truncated_frac: col.records.iter().filter(|r| r.truncated).count() as f64 / n,
            answer_in_instruction: answer_share(&col.records, queries, self.config.grpo.group_size),
            tied_groups: adv.tied_groups,
            groups: col.rewards.len(),
            failed_replies: s.failed_replies,
            replies: s.replies,
            failed_samples: s.failed_samples,
            baselines_computed: s.baselines_computed,
            t_teacher_gen: s.t_teacher_gen,
            t_student: s.t_student,
            t_reward: s.t_reward,
            t_update,
            teacher_tokens_per_s: s.teacher_tokens as f64 / s.t_teacher_gen.max(1e-9),
            staleness,
            t_teacher_wait: waited,
            ..StepMetrics::default()
        };
        self.step += 1;
        Ok(m)
    }

    /// Completes the metrics of a finished step with the time since `t_step` and appends them.
    fn record(&self, mut m: StepMetrics, t_step: Instant) -> Result<StepMetrics> {
        m.t_step = t_step.elapsed().as_secs_f64();
        // What the teacher's thread did besides sampling, training and waiting for the student.
        m.t_other = (m.t_step - m.t_teacher_gen - m.t_update - m.t_teacher_wait).max(0.0);
        metrics::append(&self.run_dir.join(METRICS_FILE), &m)?;
        Ok(m)
    }

    fn update(&mut self, col: &Collected, adv: &[Vec<f64>], lr: f64) -> Result<UpdateStats> {
        let g = &self.config.grpo;
        let policy = self.parts.policy.as_ref();
        let device = policy.device();
        let pad = policy.pad_id();
        let temperature = self.temperature();
        let mut samples: Vec<(usize, usize)> = col
            .samples
            .iter()
            .enumerate()
            .flat_map(|(q, group)| (0..group.len()).map(move |i| (q, i)))
            .collect();
        let steps = g.steps_per_generation.max(1);
        if steps > 1 {
            // Mini-batches of mixed queries (as TRL shuffles a generation batch), the same on
            // every run and resume of this step.
            let mut state = self.config.run.seed ^ self.step.wrapping_mul(0xA24B_AED4_963E_E407);
            for i in (1..samples.len()).rev() {
                let j = (wst_core::splitmix64(&mut state) % (i as u64 + 1)) as usize;
                samples.swap(i, j);
            }
        }
        // Torch's generator draws the update's dropout masks (LoRA dropout): seeded per step, so
        // a resumed run draws the same ones.
        let mut torch_seed = self.config.run.seed ^ self.step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        tch::manual_seed(wst_core::splitmix64(&mut torch_seed) as i64);
        let reference = match (&self.parts.reference, self.loss.beta > 0.0) {
            (Some(r), true) => Some(r.as_ref()),
            _ => None,
        };
        let per_mini = samples.len().div_ceil(steps).max(1);
        let mut minis = Vec::with_capacity(steps);
        for part in samples.chunks(per_mini) {
            // Every sample counts in the denominators (a masked truncated one with no tokens);
            // samples that cannot move the loss (zero advantage, no KL term) are skipped in the
            // forward passes.
            let mut rows: Vec<(usize, usize)> = Vec::new();
            let mut tokens = 0usize;
            for &(q, i) in part {
                let s = &col.samples[q][i];
                if g.mask_truncated_completions && s.truncated {
                    continue;
                }
                tokens += s.tokens.len();
                if !s.tokens.is_empty() && (adv[q][i] != 0.0 || self.loss.beta > 0.0) {
                    rows.push((q, i));
                }
            }
            let micro: Vec<MicroBatch> = rows
                .chunks(g.micro_batch_size)
                .map(|chunk| {
                    let pairs: Vec<(&[i64], &[i64])> = chunk
                        .iter()
                        .map(|&(q, i)| {
                            (
                                col.prompts[q].as_slice(),
                                col.samples[q][i].tokens.as_slice(),
                            )
                        })
                        .collect();
                    let a: Vec<f32> = chunk.iter().map(|&(q, i)| adv[q][i] as f32).collect();
                    let batch = TokenBatch::new(&pairs, pad, device)?;
                    let ref_logprobs = reference
                        .map(|r| tch::no_grad(|| r.token_logprobs_at(&batch, temperature)))
                        .transpose()?;
                    let old_logprobs = if g.async_rollouts {
                        // Drawn one update ago: the log-probabilities recorded at sampling.
                        Some(sampled_logprobs(
                            chunk.iter().map(|&(q, i)| &col.samples[q][i]),
                            batch.completion_len,
                            device,
                        ))
                    } else {
                        // Scored before any step of this update: the policy that sampled.
                        g.off_policy()
                            .then(|| tch::no_grad(|| policy.token_logprobs_at(&batch, temperature)))
                            .transpose()?
                    };
                    Ok(MicroBatch {
                        batch,
                        advantages: Tensor::from_slice(&a).to_device(device),
                        old_logprobs,
                        ref_logprobs,
                    })
                })
                .collect::<Result<_>>()?;
            minis.push(MiniBatch {
                denom: LossDenom {
                    sequences: part.len() as f64,
                    tokens: tokens as f64,
                    max_len: self.config.teacher.sampling.max_new_tokens as f64,
                    micro_batches: micro.len() as f64,
                },
                micro,
            });
        }
        let opts = UpdateOptions {
            loss: self.loss,
            temperature,
            head_chunk: HEAD_CHUNK,
            one_pass_head: false,
            max_grad_norm: g.max_grad_norm,
            top_entropy_quantile: g.top_entropy_quantile,
        };
        update::update(
            policy,
            &mut self.optimizer,
            &minis,
            &opts,
            lr,
            g.num_iterations,
        )
    }

    /// The temperature of the teacher's sampling distribution, which the loss scores under
    /// (greedy sampling: 1).
    fn temperature(&self) -> f64 {
        let t = f64::from(self.config.teacher.sampling.temperature);
        if t > 0.0 {
            t
        } else {
            1.0
        }
    }
}

/// `e`, an [`Error::Incomplete`] of a later step drawn ahead, as one of `step`: the first step
/// that has not finished, which is what a stop reports and a resume runs again.
fn unfinished(e: Error, step: u64) -> Error {
    match e {
        Error::Incomplete { source, .. } => Error::Incomplete { step, source },
        e => e,
    }
}

fn lent() -> Error {
    Error::Contract("the student is answering on another thread".into())
}

/// `[N, completion_len]` f32: each sample's recorded log-probabilities, right-padded with 0.
fn sampled_logprobs<'s>(
    samples: impl Iterator<Item = &'s crate::policy::PolicySample>,
    completion_len: usize,
    device: tch::Device,
) -> Tensor {
    let mut flat = Vec::new();
    let mut rows = 0i64;
    for s in samples {
        let n = s.logprobs.len().min(completion_len);
        flat.extend_from_slice(&s.logprobs[..n]);
        flat.resize(flat.len() + completion_len - n, 0.0);
        rows += 1;
    }
    Tensor::from_slice(&flat)
        .view([rows, completion_len as i64])
        .to_device(device)
}
