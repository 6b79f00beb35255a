//! `wst eval`: the paper's Figure 1 comparison on held-out queries — the student alone, local
//! teachers (untrained or trained) and API teachers — with 95% confidence intervals, per-sample
//! Parquet, Markdown/CSV tables and PNG charts; with `--weights`, the harmless/helpful Pareto
//! plot of the HH-RLHF evaluation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wst_core::{
    Config, PromptTemplates, RewardWeights, SamplingParams, StudentKind, TemplateTexts,
    WeightedReward,
};
use wst_data::write_eval_samples;
use wst_models::HttpStudent;
use wst_rl::collect::derive_seed;
use wst_rl::eval::{
    self, ConditionSummary, EvalSample, InstructionWriter, NoInstruction, PolicyTeacher,
    StudentTeacher,
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
    /// (an OpenAI-compatible endpoint writing the instructions). `{w}` in a condition is
    /// replaced by each `--weights` value.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,teacher",
        value_name = "LIST"
    )]
    pub conditions: Vec<String>,
    /// Helpfulness weights w of a harmless/helpful evaluation (reward weights
    /// harmless = 1 - w, helpful = w), e.g. `0.5,0.7,0.9`; draws the Pareto plot.
    #[arg(long, value_delimiter = ',')]
    pub weights: Vec<f64>,
    /// Output folder (default: `RUN_DIR/eval` of the config's run).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionKind {
    /// The student alone.
    None,
    /// The config's teacher model, untrained.
    Untrained,
    /// A teacher from a path (checkpoint or model).
    Teacher(String),
    /// An API teacher: model name at a base URL.
    Api {
        /// Model name the server expects.
        model: String,
        /// Base URL (`http://host:port/v1`).
        url: String,
    },
}

/// A condition and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// What writes the instructions.
    pub kind: ConditionKind,
    /// Label in tables and plots.
    pub label: String,
}

/// Parses `KIND[:ARG][=LABEL]`.
pub fn parse_condition(text: &str) -> Result<Condition> {
    let text = text.trim();
    let (body, label) = match text.rsplit_once('=') {
        Some((b, l)) if !l.contains('/') && !l.is_empty() => (b, Some(l.to_string())),
        _ => (text, None),
    };
    let (kind, arg) = match body.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (body, None),
    };
    let kind = match (kind, arg) {
        ("none", None) => ConditionKind::None,
        ("teacher", None) => ConditionKind::Untrained,
        ("teacher", Some(p)) if !p.is_empty() => ConditionKind::Teacher(p.to_string()),
        ("api-teacher", Some(a)) => match a.split_once('@') {
            Some((m, u)) if !m.is_empty() && !u.is_empty() => ConditionKind::Api {
                model: m.to_string(),
                url: u.to_string(),
            },
            _ => bail!("condition `{text}`: write api-teacher:MODEL@URL"),
        },
        _ => bail!(
            "condition `{text}`: expected none, teacher, teacher:PATH or api-teacher:MODEL@URL"
        ),
    };
    let label = label.unwrap_or_else(|| match &kind {
        ConditionKind::None => "student alone".into(),
        ConditionKind::Untrained => "untrained teacher".into(),
        ConditionKind::Teacher(p) => format!("teacher {p}"),
        ConditionKind::Api { model, .. } => format!("API teacher {model}"),
    });
    Ok(Condition { kind, label })
}

/// An API teacher: an OpenAI-compatible endpoint prompted with the teacher templates.
fn api_teacher(cfg: &Config, model: &str, url: &str) -> Result<Box<dyn InstructionWriter>> {
    let texts = cfg.templates.resolve();
    let as_student = TemplateTexts {
        student_system: texts.teacher_system.clone(),
        student_user: texts.teacher_user.clone(),
        ..texts
    };
    let mut sc = cfg.student.clone();
    sc.kind = StudentKind::Openai;
    sc.model = model.to_string();
    sc.base_urls = vec![url.to_string()];
    if let Ok(var) = std::env::var("WST_TEACHER_API_KEY_ENV") {
        sc.api_key_env = Some(var);
    }
    let http = HttpStudent::from_config(&sc, PromptTemplates::new(as_student)?)
        .with_context(|| format!("API teacher {model} at {url}"))?;
    Ok(Box::new(StudentTeacher::new(
        format!("API teacher {model}"),
        http,
        cfg.teacher.sampling.clone(),
    )))
}

/// Everything an evaluation produced.
#[derive(Debug)]
pub struct EvalOutcome {
    /// Per-condition summaries (label includes the weight in a weighted evaluation).
    pub summaries: Vec<ConditionSummary>,
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

fn weights_for(cfg: &Config, w: Option<f64>) -> Result<RewardWeights> {
    match w {
        None => Ok(RewardWeights(
            cfg.reward.weights.clone().into_iter().collect(),
        )),
        Some(w) => {
            if !(0.0..=1.0).contains(&w) {
                bail!("--weights: {w} is outside [0, 1]");
            }
            for name in ["harmless", "helpful"] {
                if !cfg.reward.models.contains_key(name) {
                    bail!(
                        "--weights needs reward components `harmless` and `helpful` \
                         ([reward.models] has {:?})",
                        cfg.reward.models.keys().collect::<Vec<_>>()
                    );
                }
            }
            Ok(RewardWeights::new([("harmless", 1.0 - w), ("helpful", w)])?)
        }
    }
}

/// Runs `conditions` on the config's held-out queries (per weight when `weights` is not
/// empty) and writes `samples.parquet`, `table.md`, `table.csv`, `eval.png` (and
/// `pareto.png`) into `out_dir`.
pub fn evaluate(
    cfg: &Config,
    conditions: &[String],
    weights: &[f64],
    out_dir: &Path,
    title: &str,
) -> Result<EvalOutcome> {
    // Bad conditions or weights fail before any model is loaded.
    for c in conditions {
        parse_condition(&c.replace("{w}", "0.5"))?;
    }
    for w in weights {
        weights_for(cfg, Some(*w))?;
    }
    let device = wiring::device(cfg)?;
    let queries = wst_data::eval_queries(&cfg.eval, &cfg.data, cfg.run.seed).context("[eval]")?;
    if queries.is_empty() {
        bail!("[eval]: no held-out queries");
    }
    let mut student = wiring::student(cfg, device)?;
    // Loaded once (reward models are large); each condition and weight wraps it.
    let mut base_reward = wiring::reward(cfg, device)?;
    let k = cfg.eval.samples.max(1);
    let sampling = eval_sampling(cfg);
    let batch = cfg.grpo.batch_size.max(1);
    let ws: Vec<Option<f64>> = if weights.is_empty() {
        vec![None]
    } else {
        weights.iter().map(|w| Some(*w)).collect()
    };
    eprintln!(
        "wst eval: {} held-out queries, K = {k}, conditions {}",
        queries.len(),
        conditions.join(", ")
    );
    let mut samples_all: Vec<EvalSample> = Vec::new();
    for cond_text in conditions {
        let per_weight = cond_text.contains("{w}");
        // Conditions that do not depend on w are run once and re-weighted.
        let runs: Vec<Option<f64>> = if per_weight { ws.clone() } else { vec![ws[0]] };
        for w in runs {
            let text = match w {
                Some(w) => cond_text.replace("{w}", &format!("{w}")),
                None => cond_text.clone(),
            };
            let cond = parse_condition(&text)?;
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
                ConditionKind::Api { model, url } => api_teacher(cfg, model, url)?,
            };
            let mut reward = WeightedReward::new(base_reward.as_mut(), weights_for(cfg, w)?)?;
            let t = std::time::Instant::now();
            let samples = eval::evaluate(
                writer.as_mut(),
                student.as_mut(),
                &mut reward,
                &queries,
                k,
                &sampling,
                batch,
            )
            .with_context(|| format!("condition `{}`", cond.label))?;
            eprintln!(
                "  {}: {} replies in {:.1} s",
                cond.label,
                samples.len(),
                t.elapsed().as_secs_f64()
            );
            let targets: Vec<Option<f64>> = if per_weight { vec![w] } else { ws.clone() };
            for tw in targets {
                let wts = weights_for(cfg, tw)?;
                for s in &samples {
                    let mut s = s.clone();
                    s.weight = tw;
                    if let Some(x) = tw {
                        s.condition = format!("{} (w={x})", cond.label);
                        s.reward = match s.reward {
                            Some(_) => Some(wts.combine(&s.components)?),
                            None => None,
                        };
                    }
                    samples_all.push(s);
                }
            }
        }
    }
    let summaries = eval::summarize(&samples_all);
    let files = write_outputs(out_dir, &samples_all, &summaries, weights, title)?;
    Ok(EvalOutcome { summaries, files })
}

fn write_outputs(
    out_dir: &Path,
    samples: &[EvalSample],
    summaries: &[ConditionSummary],
    weights: &[f64],
    title: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut files = Vec::new();
    let p = out_dir.join("samples.parquet");
    write_eval_samples(&p, samples)?;
    files.push(p);
    let p = out_dir.join("table.md");
    wst_data::write_file_atomic(&p, eval::markdown_table(summaries).as_bytes())?;
    files.push(p);
    let p = out_dir.join("table.csv");
    wst_data::write_file_atomic(&p, eval::csv_table(summaries).as_bytes())?;
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
    if !weights.is_empty() {
        let mut points = Vec::new();
        for s in summaries {
            let (label, w) = match s.condition.rsplit_once(" (w=") {
                Some((l, w)) => (
                    l.to_string(),
                    w.trim_end_matches(')').parse().unwrap_or(f64::NAN),
                ),
                None => (s.condition.clone(), f64::NAN),
            };
            if let (Some(h), Some(u)) = (s.components.get("harmless"), s.components.get("helpful"))
            {
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
            "Harmless vs helpful per condition and weight w",
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
    )?;
    print!("{}", eval::markdown_table(&outcome.summaries));
    for f in &outcome.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_with_labels() {
        assert_eq!(parse_condition("none").unwrap().label, "student alone");
        assert_eq!(
            parse_condition("teacher").unwrap().kind,
            ConditionKind::Untrained
        );
        let c = parse_condition("teacher:runs/demo=trained teacher").unwrap();
        assert_eq!(c.kind, ConditionKind::Teacher("runs/demo".into()));
        assert_eq!(c.label, "trained teacher");
        let c = parse_condition("api-teacher:gpt-4o-mini@https://api.example.com/v1").unwrap();
        assert_eq!(
            c.kind,
            ConditionKind::Api {
                model: "gpt-4o-mini".into(),
                url: "https://api.example.com/v1".into()
            }
        );
        assert_eq!(c.label, "API teacher gpt-4o-mini");
        for bad in [
            "",
            "teacher:",
            "api-teacher:model",
            "api-teacher:@x",
            "student",
        ] {
            let e = parse_condition(bad).unwrap_err().to_string();
            assert!(e.contains("condition"), "{bad}: {e}");
        }
    }
}
