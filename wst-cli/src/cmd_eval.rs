//! `wst eval`: the paper's Figure 1 comparison on held-out queries — the student alone, local
//! teachers (untrained or trained) and API teachers — with 95% confidence intervals and paired
//! differences, per-sample Parquet, Markdown/CSV tables and PNG charts; with `--weights`, the
//! harmless/helpful Pareto plot of the HH-RLHF evaluation. The plan (conditions x weights) and
//! the statistics live in [`wst_rl::eval`]; this file builds the writers and draws.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wst_core::{
    Config, PromptTemplates, RewardKind, RewardWeights, SamplingParams, StudentConfig, StudentKind,
    TemplateTexts, WeightedReward,
};
use wst_data::write_eval_samples;
use wst_models::HttpStudent;
use wst_rl::collect::derive_seed;
use wst_rl::eval::plan::{ConditionKind, Plan, WeightAxis};
use wst_rl::eval::{
    self, EvalReport, EvalSample, InstructionWriter, NoInstruction, PolicyTeacher, StudentTeacher,
};

use crate::plots;
use crate::wiring;

/// `wst eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The TOML config (its `[eval]`, `[student]`, `[reward]`, `[teacher]` and `[templates]`).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a key (repeatable), e.g. `--set eval.limit=100`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Comma-separated conditions, each optionally `=LABEL`: `none` (student alone),
    /// `teacher` (the config's untrained teacher), `teacher:PATH` (a run folder, a checkpoint
    /// folder, a model.safetensors of a checkpoint, or another model), `api-teacher:MODEL@URL`
    /// (an OpenAI-compatible endpoint writing the instructions; its key comes from
    /// `--teacher-api-key-env`, never the student's). `{w}` in a condition is replaced by each
    /// `--weights` value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,teacher",
        value_name = "LIST"
    )]
    pub conditions: Vec<String>,
    /// Helpfulness weights w of a harmless/helpful evaluation (reward weights 1 - w and w on
    /// the two components of `eval.weight_axis`, by default harmless and helpful), e.g.
    /// `0.5,0.7,0.9`; draws the Pareto plot.
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// The environment variable holding the API key of `api-teacher:` conditions (none: no key
    /// is sent). The student's key (`student.api_key_env`) only ever goes to the student's URLs.
    #[arg(long, value_name = "VAR")]
    pub teacher_api_key_env: Option<String>,
    /// Output folder (default: `RUN_DIR/eval` of the config's run).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// How `api-teacher:` conditions reach their endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOptions {
    /// The variable holding the API teachers' key; `None` sends no key.
    pub teacher_api_key_env: Option<String>,
}

/// The client config of an API teacher: the student's timeouts and retries, but its own URL,
/// model and key variable (the student's key must not reach another host).
pub fn api_teacher_config(
    cfg: &Config,
    model: &str,
    url: &str,
    key_env: Option<&str>,
) -> StudentConfig {
    StudentConfig {
        kind: StudentKind::Openai,
        model: model.to_string(),
        base_urls: vec![url.to_string()],
        api_key_env: key_env.map(str::to_string),
        ..cfg.student.clone()
    }
}

/// An API teacher: an OpenAI-compatible endpoint prompted with the teacher templates.
fn api_teacher(
    cfg: &Config,
    label: &str,
    model: &str,
    url: &str,
    opts: &EvalOptions,
) -> Result<Box<dyn InstructionWriter>> {
    let texts = cfg.templates.resolve();
    let as_student = TemplateTexts {
        student_system: texts.teacher_system.clone(),
        student_user: texts.teacher_user.clone(),
        ..texts
    };
    let sc = api_teacher_config(cfg, model, url, opts.teacher_api_key_env.as_deref());
    let http = HttpStudent::from_config(&sc, PromptTemplates::new(as_student)?)
        .with_context(|| format!("API teacher {model} at {url}"))?;
    Ok(Box::new(StudentTeacher::new(
        label,
        http,
        cfg.teacher.sampling.clone(),
    )))
}

/// Everything an evaluation produced.
#[derive(Debug)]
pub struct EvalOutcome {
    /// Per-condition summaries (label includes the weight in a weighted evaluation), paired
    /// differences and the problems left out of the means.
    pub report: EvalReport,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// The student's sampling in an evaluation: the config's, with a fixed seed (so every condition
/// sees the same random numbers and a rerun gives the same table).
fn eval_sampling(cfg: &Config) -> SamplingParams {
    let mut s = cfg.student.sampling.clone();
    s.seed = Some(derive_seed(cfg.run.seed, u64::MAX, 3));
    s
}

/// The components the config's reward produces (known before any model is loaded).
fn reward_components(cfg: &Config) -> Vec<String> {
    match cfg.reward.kind {
        RewardKind::Math => vec!["correct".into()],
        RewardKind::RewardModel => cfg.reward.models.keys().cloned().collect(),
    }
}

/// The range of the config's scalar reward, for clipping intervals: accuracy lies in [0, 1];
/// reward-model scores are raw and unbounded.
fn reward_bounds(cfg: &Config) -> eval::stats::Bounds {
    match cfg.reward.kind {
        RewardKind::Math => Some((0.0, 1.0)),
        RewardKind::RewardModel => None,
    }
}

/// Runs `conditions` on the config's held-out queries (per weight when `weights` is not
/// empty) and writes `samples.parquet`, `table.md`, `table.csv`, `comparisons.csv`,
/// `eval.png` (and `pareto.png`) into `out_dir`. Refuses held-out queries that overlap the
/// training queries.
pub fn evaluate(
    cfg: &Config,
    conditions: &[String],
    weights: &[f64],
    out_dir: &Path,
    title: &str,
    opts: &EvalOptions,
) -> Result<EvalOutcome> {
    // Bad conditions or weights fail before any model is loaded.
    let axis = if weights.is_empty() {
        None
    } else {
        Some(WeightAxis::new(
            &cfg.eval.weight_axis,
            &reward_components(cfg),
        )?)
    };
    let plan = Plan::new(conditions, weights, axis)?;
    let device = wiring::device(cfg)?;
    let queries =
        wst_data::check_eval_disjoint(&cfg.eval, &cfg.data, cfg.run.seed).context("[eval]")?;
    if queries.is_empty() {
        bail!("[eval]: no held-out queries");
    }
    let mut student = wiring::student(cfg, device)?;
    // Loaded once (reward models are large); each condition and weight wraps it.
    let mut base_reward = wiring::reward(cfg, device)?;
    let default_weights = RewardWeights(cfg.reward.weights.clone().into_iter().collect());
    let per = eval::PerQuery {
        instructions: cfg.eval.instructions.max(1),
        replies: cfg.eval.samples.max(1),
    };
    let sampling = eval_sampling(cfg);
    let batch = cfg.grpo.batch_size.max(1);
    eprintln!(
        "wst eval: {} held-out queries, M = {} instructions x K = {} replies, conditions {}",
        queries.len(),
        per.instructions,
        per.replies,
        conditions.join(", ")
    );
    let mut samples_all: Vec<EvalSample> = Vec::new();
    for run in &plan.runs {
        let cond = &run.condition;
        let mut writer: Box<dyn InstructionWriter> = match &cond.kind {
            ConditionKind::None => Box::new(NoInstruction::new(cond.label.clone())),
            ConditionKind::Untrained => Box::new(PolicyTeacher::new(
                cond.label.clone(),
                wiring::teacher_from(cfg, None, device)?,
                wiring::templates(cfg)?,
                cfg.teacher.sampling.clone(),
                cfg.run.seed,
            )),
            ConditionKind::Teacher(p) => Box::new(PolicyTeacher::new(
                cond.label.clone(),
                wiring::teacher_from(cfg, Some(p), device)?,
                wiring::templates(cfg)?,
                cfg.teacher.sampling.clone(),
                cfg.run.seed,
            )),
            ConditionKind::Api { model, url } => api_teacher(cfg, &cond.label, model, url, opts)?,
        };
        let mut reward = WeightedReward::new(
            base_reward.as_mut(),
            plan.weights_for(run.weight, &default_weights)?,
        )?;
        let t = std::time::Instant::now();
        let samples = eval::evaluate(
            writer.as_mut(),
            student.as_mut(),
            &mut reward,
            &queries,
            per,
            &sampling,
            batch,
        )
        .with_context(|| format!("condition `{}`", cond.label))?;
        let failed = samples.iter().filter(|s| s.reward.is_none()).count();
        eprintln!(
            "  {}: {} replies in {:.1} s{}",
            cond.label,
            samples.len(),
            t.elapsed().as_secs_f64(),
            match samples.iter().find_map(|s| s.error.as_deref()) {
                Some(e) => format!(" ({failed} failed; first: {e})"),
                None => String::new(),
            }
        );
        samples_all.extend(plan.report_samples(run, &samples)?);
    }
    let report = eval::summarize(&samples_all, &plan.comparisons(), reward_bounds(cfg));
    let files = write_outputs(out_dir, &samples_all, &report, plan.axis.as_ref(), title)?;
    Ok(EvalOutcome { report, files })
}

fn write_outputs(
    out_dir: &Path,
    samples: &[EvalSample],
    report: &EvalReport,
    axis: Option<&WeightAxis>,
    title: &str,
) -> Result<Vec<PathBuf>> {
    let summaries = &report.conditions;
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut files = Vec::new();
    let p = out_dir.join("samples.parquet");
    write_eval_samples(&p, samples)?;
    files.push(p);
    let p = out_dir.join("table.md");
    wst_data::write_file_atomic(&p, eval::markdown_table(report).as_bytes())?;
    files.push(p);
    let p = out_dir.join("table.csv");
    wst_data::write_file_atomic(&p, eval::csv_table(report).as_bytes())?;
    files.push(p);
    let p = out_dir.join("comparisons.csv");
    wst_data::write_file_atomic(&p, eval::summary::comparisons_csv(report).as_bytes())?;
    files.push(p);
    let bars: Vec<plots::Bar> = summaries
        .iter()
        .map(|s| plots::Bar {
            label: s.condition.clone(),
            mean: s.mean,
            lo: s.ci_lo,
            hi: s.ci_hi,
        })
        .collect();
    let mut buf = plots::new_buffer();
    plots::draw_bars(&mut buf, title, "mean reward (95% CI over problems)", &bars)?;
    let p = out_dir.join("eval.png");
    plots::save_png(&buf, &p)?;
    files.push(p);
    if let Some(axis) = axis {
        let mut points = Vec::new();
        for s in summaries {
            let (label, w) = match s.condition.rsplit_once(" (w=") {
                Some((l, w)) => (
                    l.to_string(),
                    w.trim_end_matches(')').parse().unwrap_or(f64::NAN),
                ),
                None => (s.condition.clone(), f64::NAN),
            };
            if let (Some(h), Some(u)) = (
                s.components.get(&axis.first),
                s.components.get(&axis.second),
            ) {
                points.push(plots::ParetoPoint {
                    condition: label,
                    weight: w,
                    harmless: *h,
                    helpful: *u,
                });
            }
        }
        let mut buf = plots::new_buffer();
        plots::draw_pareto(
            &mut buf,
            &format!(
                "{} vs {} per condition and weight w",
                axis.first, axis.second
            ),
            &points,
        )?;
        let p = out_dir.join("pareto.png");
        plots::save_png(&buf, &p)?;
        files.push(p);
    }
    Ok(files)
}

/// Runs `wst eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let cfg = wiring::load_config(&args.config, &args.set)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| wiring::run_dir(&cfg).join("eval"));
    let outcome = evaluate(
        &cfg,
        &args.conditions,
        &args.weights,
        &out,
        &format!("{}: held-out evaluation", cfg.run.name),
        &EvalOptions {
            teacher_api_key_env: args.teacher_api_key_env.clone(),
        },
    )?;
    print!("{}", eval::markdown_table(&outcome.report));
    for f in &outcome.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_teacher_gets_its_own_key_variable_or_none() {
        let mut cfg = Config::default();
        cfg.student.kind = StudentKind::Openai;
        cfg.student.base_urls = vec!["http://student:8000/v1".into()];
        cfg.student.api_key_env = Some("WST_STUDENT_API_KEY".into());
        cfg.student.max_retries = 7;
        let t = api_teacher_config(&cfg, "gpt", "http://teacher:9000/v1", None);
        assert_eq!(t.api_key_env, None);
        assert_eq!(t.base_urls, vec!["http://teacher:9000/v1".to_string()]);
        assert_eq!((t.model.as_str(), t.max_retries), ("gpt", 7));
        let t = api_teacher_config(&cfg, "gpt", "http://teacher:9000/v1", Some("TEACHER_KEY"));
        assert_eq!(t.api_key_env.as_deref(), Some("TEACHER_KEY"));
    }
}
