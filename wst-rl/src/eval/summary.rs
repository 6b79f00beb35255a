//! Summaries of an evaluation: per condition a mean over problems with its 95% interval, and
//! paired intervals of the differences between conditions. Every condition is averaged over
//! the same problems (those every condition scored); the others are reported, not dropped
//! silently.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use wst_core::EvalSample;

use super::stats::{mean_interval, paired_interval, Bounds};

/// Summary of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionSummary {
    /// Condition label.
    pub condition: String,
    /// Problems the mean is over (the same for every condition of a report).
    pub problems: usize,
    /// Problems of this condition with no scored reply (every reply or the instruction failed).
    pub unscored: usize,
    /// Completed (scored) replies, over all problems.
    pub replies: usize,
    /// Failed samples (failed replies, and `K` per instruction that could not be written).
    pub failures: usize,
    /// Mean of the per-problem mean scores.
    pub mean: f64,
    /// Lower end of the 95% interval ([`super::stats::mean_interval`]).
    pub ci_lo: f64,
    /// Upper end of the 95% interval.
    pub ci_hi: f64,
    /// Mean of each reward component over the scored replies of the problems of the mean.
    pub components: BTreeMap<String, f64>,
    /// Share of the instructions that contain the reference answer: each problem's share of its
    /// samples whose instruction held it, averaged over the problems of the mean (with one
    /// instruction per problem, the share of problems).
    pub answer_in_instruction: f64,
}

/// The paired difference `a - b` of two conditions over the problems both scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first condition.
    pub a: String,
    /// The condition subtracted.
    pub b: String,
    /// Problems both scored.
    pub problems: usize,
    /// Mean of the per-problem differences.
    pub mean: f64,
    /// Lower end of the 95% interval ([`super::stats::paired_interval`]).
    pub ci_lo: f64,
    /// Upper end.
    pub ci_hi: f64,
}

/// Everything [`summarize`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Per condition, in the order conditions first appear in the samples.
    pub conditions: Vec<ConditionSummary>,
    /// The requested paired differences (those whose two conditions are present).
    pub comparisons: Vec<Comparison>,
    /// Problems left out of every mean because some condition scored no reply on them.
    pub excluded: Vec<String>,
}

impl EvalReport {
    /// The comparison of `a` with `b`, if it was requested.
    pub fn comparison(&self, a: &str, b: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.a == a && c.b == b)
    }

    /// The summary of one condition.
    pub fn condition(&self, label: &str) -> Option<&ConditionSummary> {
        self.conditions.iter().find(|c| c.condition == label)
    }
}

/// Per problem of one condition: sum and count of scored rewards, and whether its instruction
/// leaked the answer.
#[derive(Default)]
struct Problem {
    sum: f64,
    scored: usize,
    /// Samples, and those whose instruction contained the answer.
    seen: usize,
    leaked: usize,
}

/// Summaries of `samples`, with the paired differences `pairs` (`(a, b)` labels: `a - b`).
/// `bounds` are the range a reward can take (`[0, 1]` for accuracy; `None` for raw
/// reward-model scores): intervals are clipped to it.
pub fn summarize(samples: &[EvalSample], pairs: &[(String, String)], bounds: Bounds) -> EvalReport {
    let mut order: Vec<&str> = Vec::new();
    let mut per: BTreeMap<&str, BTreeMap<&str, Problem>> = BTreeMap::new();
    for s in samples {
        if !per.contains_key(s.condition.as_str()) {
            order.push(&s.condition);
        }
        let p = per
            .entry(&s.condition)
            .or_default()
            .entry(&s.query_id)
            .or_default();
        p.seen += 1;
        p.leaked += usize::from(s.answer_in_instruction);
        if let Some(r) = s.reward {
            p.sum += r;
            p.scored += 1;
        }
    }
    let all: BTreeSet<&str> = samples.iter().map(|s| s.query_id.as_str()).collect();
    let scored_by = |cond: &str, q: &str| per[cond].get(q).is_some_and(|p| p.scored > 0);
    let common: BTreeSet<&str> = all
        .iter()
        .copied()
        .filter(|q| order.iter().all(|c| scored_by(c, q)))
        .collect();
    let excluded: Vec<String> = all.difference(&common).map(|q| q.to_string()).collect();
    let mean_of = |cond: &str, q: &str| {
        let p = &per[cond][q];
        p.sum / p.scored as f64
    };
    let conditions = order
        .iter()
        .map(|&cond| {
            let rows: Vec<&EvalSample> = samples.iter().filter(|s| s.condition == cond).collect();
            let replies = rows.iter().filter(|s| s.reward.is_some()).count();
            let means: Vec<f64> = common.iter().map(|q| mean_of(cond, q)).collect();
            let i = mean_interval(&means, bounds);
            let mut comp_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            for s in rows.iter().filter(|s| common.contains(s.query_id.as_str())) {
                for (k, v) in &s.components.0 {
                    let c = comp_sums.entry(k.clone()).or_insert((0.0, 0));
                    c.0 += v;
                    c.1 += 1;
                }
            }
            // Each problem's share of samples whose instruction held the answer (its share of
            // instructions, as every instruction gets the same number of replies).
            let leaked: f64 = common
                .iter()
                .map(|q| {
                    let p = &per[cond][*q];
                    p.leaked as f64 / p.seen.max(1) as f64
                })
                .sum();
            ConditionSummary {
                condition: cond.to_string(),
                problems: common.len(),
                unscored: per[cond].values().filter(|p| p.scored == 0).count(),
                replies,
                failures: rows.len() - replies,
                mean: i.mean,
                ci_lo: i.lo,
                ci_hi: i.hi,
                components: comp_sums
                    .into_iter()
                    .map(|(k, (s, n))| (k, s / n.max(1) as f64))
                    .collect(),
                answer_in_instruction: leaked / common.len().max(1) as f64,
            }
        })
        .collect();
    let comparisons = pairs
        .iter()
        .filter(|(a, b)| per.contains_key(a.as_str()) && per.contains_key(b.as_str()))
        .map(|(a, b)| {
            let both: Vec<(f64, f64)> = all
                .iter()
                .filter(|q| scored_by(a, q) && scored_by(b, q))
                .map(|q| (mean_of(a, q), mean_of(b, q)))
                .collect();
            let i = paired_interval(&both, bounds);
            Comparison {
                a: a.clone(),
                b: b.clone(),
                problems: i.n,
                mean: i.mean,
                ci_lo: i.lo,
                ci_hi: i.hi,
            }
        })
        .collect();
    EvalReport {
        conditions,
        comparisons,
        excluded,
    }
}

/// How many excluded problem ids the tables name.
const SHOW_EXCLUDED: usize = 5;

/// The columns both condition tables share, in their order: problems, replies, failures, then
/// the mean and its 95% interval with `digits` decimals.
fn columns(c: &ConditionSummary, digits: usize) -> [String; 6] {
    let real = |x: f64| format!("{x:.digits$}");
    [
        c.problems.to_string(),
        c.replies.to_string(),
        c.failures.to_string(),
        real(c.mean),
        real(c.ci_lo),
        real(c.ci_hi),
    ]
}

/// The report as Markdown: the condition table, a line on the problems of the means, and the
/// paired differences.
pub fn markdown_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "| condition | problems | replies | failed | mean | 95% CI | answer in instruction |\n\
         |---|---:|---:|---:|---:|---|---:|\n",
    );
    for c in &report.conditions {
        let [problems, replies, failed, mean, lo, hi] = columns(c, 3);
        s.push_str(&format!(
            "| {} | {problems} | {replies} | {failed} | {mean} | [{lo}, {hi}] | {:.0}% |\n",
            c.condition,
            100.0 * c.answer_in_instruction
        ));
    }
    let n = report.conditions.first().map_or(0, |c| c.problems);
    s.push_str(&format!(
        "\nEvery mean is over the same {n} problems (95% CI: t distribution over problems, \
         clipped to the reward's range)"
    ));
    if report.excluded.is_empty() {
        s.push_str(".\n");
    } else {
        let shown: Vec<&str> = report
            .excluded
            .iter()
            .take(SHOW_EXCLUDED)
            .map(String::as_str)
            .collect();
        s.push_str(&format!(
            "; {} excluded because some condition scored no reply on them: {}{}.\n",
            report.excluded.len(),
            shown.join(", "),
            if report.excluded.len() > SHOW_EXCLUDED {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if !report.comparisons.is_empty() {
        s.push_str("\n| paired difference | problems | mean | 95% CI |\n|---|---:|---:|---|\n");
        for c in &report.comparisons {
            s.push_str(&format!(
                "| {} - {} | {} | {:+.3} | [{:+.3}, {:+.3}] |\n",
                c.a, c.b, c.problems, c.mean, c.ci_lo, c.ci_hi
            ));
        }
    }
    s
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The condition summaries as CSV (one header line).
pub fn csv_table(report: &EvalReport) -> String {
    let mut s = String::from(
        "condition,problems,replies,failures,mean,ci_lo,ci_hi,answer_in_instruction,unscored\n",
    );
    for c in &report.conditions {
        let [problems, replies, failures, mean, lo, hi] = columns(c, 6);
        s.push_str(&format!(
            "{},{problems},{replies},{failures},{mean},{lo},{hi},{:.6},{}\n",
            csv_field(&c.condition),
            c.answer_in_instruction,
            c.unscored
        ));
    }
    s
}

/// The paired differences as CSV (one header line).
pub fn comparisons_csv(report: &EvalReport) -> String {
    let mut s = String::from("a,b,problems,mean,ci_lo,ci_hi\n");
    for c in &report.comparisons {
        s.push_str(&format!(
            "{},{},{},{:.6},{:.6},{:.6}\n",
            csv_field(&c.a),
            csv_field(&c.b),
            c.problems,
            c.mean,
            c.ci_lo,
            c.ci_hi
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::RewardComponents;

    fn row(cond: &str, q: &str, reward: Option<f64>) -> EvalSample {
        EvalSample {
            condition: cond.into(),
            query_id: q.into(),
            sample: 0,
            instruction: None,
            answer_in_instruction: false,
            reply: reward.map(|_| "r".into()),
            components: match reward {
                Some(r) => RewardComponents::from_pairs([("correct", r)]),
                None => RewardComponents::default(),
            },
            reward,
            weight: None,
            error: reward.is_none().then(|| "failed".into()),
        }
    }

    #[test]
    fn conditions_share_problems_and_exclusions_are_reported() {
        // q2's only reply failed for `b`: q2 leaves every mean, not only b's.
        let samples = vec![
            row("a", "q1", Some(1.0)),
            row("a", "q2", Some(1.0)),
            row("a", "q3", Some(0.0)),
            row("b", "q1", Some(0.0)),
            row("b", "q2", None),
            row("b", "q3", Some(0.0)),
        ];
        let pairs = vec![("a".to_string(), "b".to_string())];
        let r = summarize(&samples, &pairs, Some((0.0, 1.0)));
        assert_eq!(r.excluded, vec!["q2".to_string()]);
        let a = r.condition("a").unwrap();
        assert_eq!(
            (a.problems, a.replies, a.failures, a.unscored),
            (2, 3, 0, 0)
        );
        assert_eq!(a.mean, 0.5, "q1 and q3 only");
        let b = r.condition("b").unwrap();
        assert_eq!(
            (b.problems, b.replies, b.failures, b.unscored),
            (2, 2, 1, 1)
        );
        let c = r.comparison("a", "b").unwrap();
        assert_eq!((c.problems, c.mean), (2, 0.5));
        let md = markdown_table(&r);
        assert!(
            md.contains("1 excluded because some condition scored no reply on them: q2."),
            "{md}"
        );
        assert!(md.contains("| a - b | 2 | +0.500 |"), "{md}");
        assert_eq!(csv_table(&r).lines().count(), 3);
        assert_eq!(
            comparisons_csv(&r)
                .lines()
                .nth(1)
                .unwrap()
                .split(',')
                .count(),
            6
        );
    }

    #[test]
    fn missing_conditions_of_a_pair_are_skipped() {
        let samples = vec![row("a", "q1", Some(1.0)), row("a", "q2", Some(0.0))];
        let pairs = vec![("a".to_string(), "zzz".to_string())];
        let r = summarize(&samples, &pairs, Some((0.0, 1.0)));
        assert!(r.comparisons.is_empty());
        assert!(r.excluded.is_empty());
        assert!(markdown_table(&r).contains("over the same 2 problems"));
    }
}
