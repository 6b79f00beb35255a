//! `wst train` and `wst baseline`: the GRPO run of a config, and the student baselines alone.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use wst_core::Config;
use wst_data::{
    baselines_dir, check_disjoint, eval_queries, load_dataset, prompt_source, ParquetBaselines,
    RolloutStore,
};
use wst_rl::{Parts, RunSummary, Trainer};

use crate::plots;
use crate::wiring;

/// `wst train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The TOML config (with `--resume`, defaults to the run's saved `config.toml`).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Override a key: `--set grpo.lr=1e-5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this folder from its newest checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Check the config, data, models and endpoints, then stop without training.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `wst baseline`.
#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// The TOML config.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Only the first N training queries (default: `data.limit` or all).
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Runs `wst train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let (cfg, run_dir) = match (&args.config, &args.resume) {
        (Some(path), resume) => {
            let cfg = wiring::load_config(path, &args.set)?;
            let dir = resume.clone().unwrap_or_else(|| wiring::run_dir(&cfg));
            (cfg, dir)
        }
        (None, Some(dir)) => {
            let path = dir.join(wst_rl::CONFIG_FILE);
            (wiring::load_config(&path, &args.set)?, dir.clone())
        }
        (None, None) => anyhow::bail!("give --config FILE or --resume RUN_DIR"),
    };
    if args.dry_run {
        return wiring::dry_run(&cfg);
    }
    let summary = train(&cfg, &run_dir, args.resume.is_some(), !args.quiet)?;
    print_summary(&summary, &run_dir);
    Ok(())
}

/// Trains `cfg` in `run_dir` (fresh, or resumed from its newest checkpoint), then draws the
/// reward curve into `run_dir/plots/training.png`.
pub fn train(cfg: &Config, run_dir: &Path, resume: bool, progress: bool) -> Result<RunSummary> {
    // The data first (and its disjointness from [eval]): cheaper to refuse than models.
    let data = load_dataset(&cfg.data, cfg.run.seed).context("[data]")?;
    match eval_queries(&cfg.eval, &cfg.data, cfg.run.seed) {
        Ok(held_out) => check_disjoint(&data.queries, &held_out)
            .context("[eval] must not evaluate on training queries")?,
        Err(e) => eprintln!(
            "note: [eval] not checked against the training queries ({})",
            wst_core::error_chain(&e)
        ),
    }
    let device = wiring::device(cfg)?;
    eprintln!(
        "wst train: run `{}` in {} on {device:?}",
        cfg.run.name,
        run_dir.display()
    );
    let policy = wiring::trainable_teacher(cfg, device)?;
    // A hub teacher is pinned to the commit it was loaded from: the run's config.toml records
    // it, so a resume (or a rerun of that config) loads the same weights after `main` moves.
    let mut cfg = cfg.clone();
    if cfg.teacher.revision.is_none() && !cfg.teacher.model.contains('@') {
        if let Some(commit) = wst_core::hub::cached_commit(&cfg.teacher.model) {
            eprintln!("teacher `{}` at commit {commit}", cfg.teacher.model);
            cfg.teacher.revision = Some(commit);
        }
    }
    let cfg = &cfg;
    let reference = if cfg.grpo.beta > 0.0 {
        Some(wst_rl::LmPolicy::frozen(wiring::teacher_model(
            cfg, device,
        )?))
    } else {
        None
    };
    let student = wiring::student(cfg, device)?;
    let reward = wiring::reward(cfg, device)?;
    let prompts = data.into_source(cfg.data.seed.unwrap_or(cfg.run.seed), cfg.data.shuffle);
    let sink = RolloutStore::open(run_dir)?;
    let baselines = ParquetBaselines::open(baselines_dir(&cfg.run.output_dir))?;
    let parts = Parts {
        policy: Box::new(policy),
        reference: reference.map(|r| Box::new(r) as Box<dyn wst_rl::Policy>),
        student,
        reward,
        prompts: Box::new(prompts),
        sink: Box::new(sink),
        baselines: Box::new(baselines),
    };
    let trainer = if resume {
        Trainer::resume(cfg.clone(), parts, run_dir)
    } else {
        Trainer::new(cfg.clone(), parts, run_dir)
    }
    .with_context(|| format!("run {}", run_dir.display()))?;
    let mut trainer = trainer
        .with_progress(progress && wiring::interactive())
        .with_step_lines(progress && !wiring::interactive());
    eprintln!("training {} steps ...", cfg.run.steps - trainer.step());
    let summary = trainer.run()?;
    drop(trainer);
    draw_training_curve(run_dir)?;
    Ok(summary)
}

/// `run_dir/plots/training.png`: reward and uplift over baseline per step, from the metrics.
pub fn draw_training_curve(run_dir: &Path) -> Result<PathBuf> {
    let metrics = wst_rl::metrics::read(&run_dir.join(wst_rl::METRICS_FILE))?;
    let points: Vec<plots::CurvePoint> = metrics
        .iter()
        .map(|m| plots::CurvePoint {
            step: m.step,
            reward: m.reward,
            uplift: m.uplift,
        })
        .collect();
    let mut buf = plots::new_buffer();
    plots::draw_curve(
        &mut buf,
        "Teacher training: student reward per step",
        &points,
    )?;
    let path = run_dir.join("plots/training.png");
    plots::save_png(&buf, &path)?;
    Ok(path)
}

fn print_summary(summary: &RunSummary, run_dir: &Path) {
    if let (Some(first), Some(last)) = (summary.metrics.first(), summary.metrics.last()) {
        println!(
            "steps {}..={}: reward {:.3} -> {:.3}, uplift over baseline {:+.3} -> {:+.3}",
            first.step, last.step, first.reward, last.reward, first.uplift, last.uplift
        );
    }
    println!("run folder: {}", run_dir.display());
    if let Some(c) = &summary.checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!("per-step table: wst report {}", run_dir.display());
}

/// Runs `wst baseline`.
pub fn run_baseline(args: BaselineArgs) -> Result<()> {
    let cfg = wiring::load_config(&args.config, &args.set)?;
    let device = wiring::device(&cfg)?;
    let mut student = wiring::student(&cfg, device)?;
    let mut reward = wiring::reward(&cfg, device)?;
    let mut prompts = prompt_source(&cfg.data, cfg.run.seed).context("[data]")?;
    let dir = baselines_dir(&cfg.run.output_dir);
    let mut store = ParquetBaselines::open(&dir)?;
    let limit = args.limit.or(cfg.data.limit);
    let report = wst_rl::collect::compute_baselines(
        &cfg,
        student.as_mut(),
        reward.as_mut(),
        &mut prompts,
        &mut store,
        limit,
        cfg.grpo.batch_size.max(1),
    )?;
    let n = report.values.len();
    let mean = report.values.iter().map(|(_, v)| v).sum::<f64>() / n.max(1) as f64;
    println!(
        "{n} queries: {} computed, {} from the store {}; mean baseline {mean:.4} \
         ({} replies each; student {:.1} s, reward {:.1} s)",
        report.computed,
        n - report.computed,
        dir.display(),
        cfg.student.baseline_samples,
        report.t_student,
        report.t_reward
    );
    Ok(())
}
