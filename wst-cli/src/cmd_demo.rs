//! `wst demo`: the main job end to end on the embedded default — WST on held-in arithmetic with
//! SmolLM2-135M-Instruct as teacher and local student, then the held-out comparison of the
//! student alone, the untrained teacher and the trained teacher.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use wst_core::Config;
use wst_rl::eval::EvalReport;

use crate::cmd_eval;
use crate::cmd_train;

/// The embedded default config (`configs/demo.toml`).
pub const DEMO_CONFIG: &str = include_str!("../../configs/demo.toml");

/// Overrides of `--quick`: a 1-minute smoke run (fewer steps, problems and instructions).
const QUICK: &[&str] = &[
    "run.steps=3",
    "run.save_every=3",
    "grpo.batch_size=4",
    "eval.limit=12",
    "eval.instructions=2",
    "eval.samples=1",
];

/// `wst demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// A 1-minute smoke run: 3 steps (too few to show the effect), 12 held-out problems, 2
    /// instructions each.
    #[arg(long)]
    pub quick: bool,
    /// Override a key of the embedded config (repeatable), e.g. `--set run.steps=40`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the embedded config and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Seconds per unit of work on 2 CPU cores, measured on the demo (SmolLM2-135M) on 2 AMD Zen 5
/// cores (metrics.jsonl's `t_teacher_gen`, `t_student` and `t_update` over its 12 steps): one
/// teacher-sampled instruction, one student reply, and one teacher sequence through the update,
/// in f32 and in bf16 (dtype `auto` on a CPU with AVX512-BF16). An older CPU is slower: the
/// Zen 4 these were first measured on took 2.5-4x as long.
struct UnitSecs {
    instruction: f64,
    reply: f64,
    update_row: f64,
}

const F32_SECS: UnitSecs = UnitSecs {
    instruction: 0.060,
    reply: 0.12,
    update_row: 0.10,
};

const BF16_SECS: UnitSecs = UnitSecs {
    instruction: 0.037,
    reply: 0.056,
    update_row: 0.068,
};

/// Loading both models, checkpoints and the evaluation's teacher loads.
const FIXED_SECS: f64 = 10.0;

fn unit_secs(dtype: wst_core::DType) -> &'static UnitSecs {
    match wst_models::dtype_kind(dtype, tch::Device::Cpu) {
        tch::Kind::BFloat16 => &BF16_SECS,
        _ => &F32_SECS,
    }
}

/// A rough duration of `cfg` on 2 Zen 5 CPU cores, in seconds.
pub fn estimate_secs(cfg: &Config) -> f64 {
    let (teacher, student) = (unit_secs(cfg.teacher.dtype), unit_secs(cfg.student.dtype));
    let b = cfg.grpo.batch_size as f64;
    let g = cfg.grpo.group_size as f64;
    let k = cfg.student.samples as f64;
    let steps = cfg.run.steps as f64;
    let per_step = b * g * teacher.instruction
        + b * g * k * student.reply
        + b * g * teacher.update_row * cfg.grpo.num_iterations as f64;
    let baselines = (steps * b).min(cfg.data.arith_count.max(1) as f64)
        * cfg.student.baseline_samples as f64
        * student.reply;
    let n_eval = cfg.eval.limit as f64;
    let m_eval = cfg.eval.instructions.max(1) as f64;
    let eval = 3.0 * n_eval * m_eval * cfg.eval.samples as f64 * student.reply
        + 2.0 * n_eval * m_eval * teacher.instruction;
    FIXED_SECS + steps * per_step + baselines + eval
}

/// A run folder that does not exist yet: `runs/demo`, else `runs/demo-2`, ...
fn fresh_run_name(cfg: &Config) -> String {
    let base = cfg.run.name.clone();
    let mut name = base.clone();
    let mut i = 2;
    while cfg.run.output_dir.join(&name).exists() {
        name = format!("{base}-{i}");
        i += 1;
    }
    name
}

/// The demo's config: embedded default, `--quick`, then the user's overrides.
pub fn demo_config(quick: bool, set: &[String]) -> Result<Config> {
    let mut overrides: Vec<String> = Vec::new();
    if quick {
        overrides.extend(QUICK.iter().map(|s| s.to_string()));
        overrides.push("run.name=\"demo-quick\"".into());
    }
    overrides.extend(set.iter().cloned());
    let cfg =
        Config::from_toml_with_overrides(DEMO_CONFIG, "configs/demo.toml (embedded)", &overrides)?;
    cfg.validate().context("demo config")?;
    Ok(cfg)
}

/// Runs `wst demo`.
pub fn run(args: DemoArgs) -> Result<()> {
    if args.print_config {
        print!("{DEMO_CONFIG}");
        return Ok(());
    }
    let mut cfg = demo_config(args.quick, &args.set)?;
    cfg.run.name = fresh_run_name(&cfg);
    let run_dir = crate::wiring::run_dir(&cfg);
    let held_out = wst_data::check_eval_disjoint(&cfg.eval, &cfg.data, cfg.run.seed)
        .context("[eval]")?
        .len();
    cfg.eval.limit = cfg.eval.limit.min(held_out);
    let est = estimate_secs(&cfg);
    println!(
        "wst demo: WST on single-digit arithmetic, SmolLM2-135M-Instruct as teacher and student, \
         on the CPU."
    );
    println!(
        "  {} steps x {} queries x {} instructions x {} replies; eval on {} held-out problems x {} \
         instructions x {} replies x 3 conditions.",
        cfg.run.steps,
        cfg.grpo.batch_size,
        cfg.grpo.group_size,
        cfg.student.samples,
        cfg.eval.limit,
        cfg.eval.instructions,
        cfg.eval.samples
    );
    println!(
        "  estimated time: about {:.0} minutes on 2 Zen 5 cores, longer on older CPUs (run folder {})",
        (est / 60.0).ceil(),
        run_dir.display()
    );
    let t0 = Instant::now();
    let summary = cmd_train::train(&cfg, &run_dir, false, true)?;
    let t_train = t0.elapsed().as_secs_f64();
    if let (Some(a), Some(b)) = (summary.metrics.first(), summary.metrics.last()) {
        println!(
            "training done in {:.1} min: reward {:.3} -> {:.3} (uplift {:+.3} -> {:+.3})",
            t_train / 60.0,
            a.reward,
            b.reward,
            a.uplift,
            b.uplift
        );
    }
    println!("held-out evaluation (problems never seen in training) ...");
    let trained = format!("teacher:{}=trained teacher", run_dir.display());
    let conditions = vec![
        "none".to_string(),
        "teacher=untrained teacher".to_string(),
        trained,
    ];
    let out = run_dir.join("eval");
    let outcome = cmd_eval::evaluate(
        &cfg,
        &conditions,
        &[],
        &out,
        "Held-out arithmetic: accuracy of SmolLM2 (95% CI)",
        &cmd_eval::EvalOptions::default(),
    )?;
    println!();
    print!("{}", wst_rl::eval::markdown_table(&outcome.report));
    println!();
    println!("{}", verdict(&outcome.report));
    println!();
    println!("run folder {}:", run_dir.display());
    println!("  config.toml, metrics.jsonl, rollouts/, checkpoints/, plots/training.png");
    for f in &outcome.files {
        println!("  {}", rel(f, &run_dir).display());
    }
    println!(
        "  per-step table: wst report {}    total time {:.1} min",
        run_dir.display(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

fn rel(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

/// One honest sentence on whether training helped: the paired difference trained - untrained
/// over the problems both scored (the conditions see the same problems, so their difference
/// varies less than either score and comparing two separate intervals would be too strict).
pub fn verdict(report: &EvalReport) -> String {
    let Some(d) = report.comparison("trained teacher", "untrained teacher") else {
        return String::new();
    };
    let ci = format!(
        "{:+.3} [{:+.3}, {:+.3}] over {} problems",
        d.mean, d.ci_lo, d.ci_hi, d.problems
    );
    let alone = report
        .comparison("trained teacher", "student alone")
        .map(|a| {
            format!(
                " Against the student alone: {:+.3} [{:+.3}, {:+.3}].",
                a.mean, a.ci_lo, a.ci_hi
            )
        })
        .unwrap_or_default();
    if d.ci_lo > 0.0 {
        format!(
            "The trained teacher beats the untrained one: paired difference {ci} (95% CI above \
             0).{alone}"
        )
    } else if d.mean > 0.0 {
        format!(
            "The trained teacher scores above the untrained one, {ci}, but the 95% interval \
             includes 0: on this few problems the gain is not significant.{alone}"
        )
    } else {
        format!(
            "The trained teacher does NOT beat the untrained one here ({ci}); try more steps \
             (--set run.steps=...) or see the README on tuning the demo.{alone}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_rl::eval::Comparison;

    fn report(lo: f64, mean: f64, hi: f64) -> EvalReport {
        EvalReport {
            conditions: Vec::new(),
            comparisons: vec![Comparison {
                a: "trained teacher".into(),
                b: "untrained teacher".into(),
                problems: 25,
                mean,
                ci_lo: lo,
                ci_hi: hi,
            }],
            excluded: Vec::new(),
        }
    }

    #[test]
    fn the_verdict_reads_the_paired_interval() {
        assert!(verdict(&report(0.05, 0.2, 0.35)).starts_with("The trained teacher beats"));
        let v = verdict(&report(-0.05, 0.1, 0.25));
        assert!(
            v.contains("includes 0") && v.contains("+0.100 [-0.050, +0.250] over 25"),
            "{v}"
        );
        assert!(verdict(&report(-0.3, -0.1, 0.1)).contains("does NOT"));
        assert_eq!(
            verdict(&EvalReport {
                comparisons: Vec::new(),
                ..report(0.0, 0.0, 0.0)
            }),
            ""
        );
    }
}
