//! `wst verify`: check one answer, or a JSON-lines file of (gold, pred) pairs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use wst_reward::{verify_answer, verify_reply, ExtractOptions, Verdict};

/// Arguments of `wst verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The gold answer (with `--pred`).
    #[arg(
        long,
        requires = "pred",
        conflicts_with = "jsonl",
        allow_hyphen_values = true
    )]
    gold: Option<String>,
    /// The predicted answer, or a full reply with `--extract` (with `--gold`).
    #[arg(long, requires = "gold", allow_hyphen_values = true)]
    pred: Option<String>,
    /// Treat `--pred` as a full reply and extract its final answer first.
    #[arg(long)]
    extract: bool,
    /// JSON lines with `gold`, `pred`, `kind` (`extract` or `compare`) and optionally `id` and
    /// `equivalent` (a label to measure accuracy against).
    #[arg(long, value_name = "FILE", required_unless_present = "gold")]
    jsonl: Option<PathBuf>,
    /// Where to write one `{"id", "verdict", "extracted"}` per line (default: stdout).
    #[arg(long, value_name = "OUT", requires = "jsonl")]
    output: Option<PathBuf>,
    /// Do not fall back to the last number of a reply when nothing marks the answer.
    #[arg(long)]
    no_last_number: bool,
}

/// Runs `wst verify`.
pub fn run(args: VerifyArgs) -> Result<()> {
    let opts = ExtractOptions {
        last_number_fallback: !args.no_last_number,
    };
    match (&args.gold, &args.pred, &args.jsonl) {
        (Some(gold), Some(pred), None) => {
            let v = if args.extract {
                verify_reply(gold, pred, &opts)
            } else {
                verify_answer(gold, pred)
            };
            println!("{}", v.verdict);
            Ok(())
        }
        (None, None, Some(path)) => run_jsonl(path, args.output.as_deref(), &opts),
        _ => bail!("give either --gold and --pred, or --jsonl"),
    }
}

/// Counts for the summary line.
#[derive(Default)]
struct Summary {
    rows: usize,
    equivalent: usize,
    labelled: usize,
    agree: usize,
}

fn run_jsonl(path: &Path, output: Option<&Path>, opts: &ExtractOptions) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = String::new();
    let mut sum = Summary::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let field = |name: &str| -> Result<&str> {
            row.get(name).and_then(|v| v.as_str()).with_context(|| {
                format!(
                    "{} line {}: missing string field `{name}`",
                    path.display(),
                    i + 1
                )
            })
        };
        let gold = field("gold")?;
        let pred = field("pred")?;
        let v: Verdict = match row
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("compare")
        {
            "extract" => verify_reply(gold, pred, opts),
            "compare" => verify_answer(gold, pred),
            other => bail!(
                "{} line {}: field `kind` must be `extract` or `compare`, got `{other}`",
                path.display(),
                i + 1
            ),
        };
        let id = row
            .get("id")
            .cloned()
            .unwrap_or_else(|| serde_json::Value::from(i + 1));
        sum.rows += 1;
        sum.equivalent += usize::from(v.verdict);
        if let Some(label) = row.get("equivalent").and_then(|e| e.as_bool()) {
            sum.labelled += 1;
            sum.agree += usize::from(label == v.verdict);
        }
        let out = serde_json::json!({"id": id, "verdict": v.verdict, "extracted": v.extracted});
        lines.push_str(&out.to_string());
        lines.push('\n');
    }
    let mut summary = format!("{} rows, {} equivalent", sum.rows, sum.equivalent);
    if sum.labelled > 0 {
        summary.push_str(&format!(
            "; accuracy against `equivalent`: {}/{} = {:.1}%",
            sum.agree,
            sum.labelled,
            100.0 * sum.agree as f64 / sum.labelled as f64
        ));
    }
    match output {
        Some(out) => {
            wst_core::atomic::write_file(out, lines.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("{summary}");
        }
        None => {
            std::io::stdout()
                .write_all(lines.as_bytes())
                .context("writing to stdout")?;
            eprintln!("{summary}");
        }
    }
    Ok(())
}
