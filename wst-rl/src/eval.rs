//! Evaluation of conditions (the paper's Figure 1): for each held-out query, an instruction
//! writer (none, a local teacher, an API teacher) writes one instruction, the student answers it
//! `K` times, and every reply is scored. Summaries give the mean score with a 95% confidence
//! interval over problems (each problem's mean over its `K` replies is one observation, so the
//! interval accounts for replies to one problem being correlated).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wst_core::{
    Instruction, PromptTemplates, Query, Result, Reward, RewardComponents, RewardInput,
    SamplingParams, Student, StudentRequest, WeightedReward,
};

use crate::collect::derive_seed;
use crate::metrics::contains_answer;
use crate::policy::Policy;

/// Writes one instruction per query: the thing an evaluation condition varies.
pub trait InstructionWriter {
    /// Label of the condition in tables and plots (e.g. `trained teacher`).
    fn label(&self) -> String;

    /// One instruction per query, in order; `None` means the student gets no instruction.
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>>;
}

impl<T: InstructionWriter + ?Sized> InstructionWriter for &mut T {
    fn label(&self) -> String {
        (**self).label()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
        (**self).write(queries)
    }
}

impl<T: InstructionWriter + ?Sized> InstructionWriter for Box<T> {
    fn label(&self) -> String {
        (**self).label()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
        (**self).write(queries)
    }
}

/// The student-alone condition: no instruction.
#[derive(Debug, Clone)]
pub struct NoInstruction {
    label: String,
}

impl NoInstruction {
    /// The condition, labelled `label`.
    pub fn new(label: impl Into<String>) -> Self {
        NoInstruction {
            label: label.into(),
        }
    }
}

impl InstructionWriter for NoInstruction {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
        Ok(vec![None; queries.len()])
    }
}

/// A teacher that is itself a [`Student`] (e.g. an API model behind an OpenAI-compatible URL
/// whose prompt templates are the teacher's): its one reply to a query, asked with no
/// instruction, is the instruction. A failed reply means no instruction for that query.
pub struct StudentTeacher<S> {
    label: String,
    inner: S,
    sampling: SamplingParams,
}

impl<S: Student> StudentTeacher<S> {
    /// Wraps `inner`, sampling with `sampling`.
    pub fn new(label: impl Into<String>, inner: S, sampling: SamplingParams) -> Self {
        StudentTeacher {
            label: label.into(),
            inner,
            sampling,
        }
    }
}

impl<S: Student> InstructionWriter for StudentTeacher<S> {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
        let requests: Vec<StudentRequest<'_>> = queries
            .iter()
            .map(|query| StudentRequest {
                query,
                instruction: None,
                k: 1,
            })
            .collect();
        let replies = self.inner.generate(&requests, &self.sampling)?;
        Ok(replies
            .into_iter()
            .map(|r| {
                r.into_iter().next().and_then(|r| match r {
                    wst_core::StudentReply::Completed(c) => Some(Instruction {
                        text: c.text.trim().to_string(),
                        num_tokens: c.num_tokens.unwrap_or(0),
                        truncated: c.finish_reason == wst_core::FinishReason::Length,
                    }),
                    wst_core::StudentReply::Failed(_) => None,
                })
            })
            .collect())
    }
}

/// A local teacher (untrained, or trained weights from a checkpoint): one instruction per query,
/// sampled from its [`Policy`] with the teacher's prompt templates and sampling parameters.
/// Seeded: the `n`-th call draws from `derive_seed(seed, n, 2)`, so an evaluation is repeatable.
pub struct PolicyTeacher<P> {
    label: String,
    policy: P,
    templates: PromptTemplates,
    sampling: SamplingParams,
    seed: u64,
    calls: u64,
}

impl<P: Policy> PolicyTeacher<P> {
    /// Wraps `policy`.
    pub fn new(
        label: impl Into<String>,
        policy: P,
        templates: PromptTemplates,
        sampling: SamplingParams,
        seed: u64,
    ) -> Self {
        PolicyTeacher {
            label: label.into(),
            policy,
            templates,
            sampling,
            seed,
            calls: 0,
        }
    }
}

impl<P: Policy> InstructionWriter for PolicyTeacher<P> {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
        let ctx = |e: crate::Error| wst_core::Error::other(format!("teacher {}", self.label), e);
        let mut prompts = Vec::with_capacity(queries.len());
        for q in queries {
            let prompt = self.templates.teacher(q)?;
            prompts.push(self.policy.encode_prompt(&prompt).map_err(ctx)?);
        }
        let seed = derive_seed(self.seed, self.calls, 2);
        self.calls += 1;
        let groups = self
            .policy
            .sample(&prompts, 1, &self.sampling, seed)
            .map_err(ctx)?;
        Ok(groups
            .into_iter()
            .map(|g| {
                g.into_iter().next().map(|s| Instruction {
                    text: s.text,
                    num_tokens: s.tokens.len(),
                    truncated: s.truncated,
                })
            })
            .collect())
    }
}

pub use wst_core::EvalSample;

/// Runs one condition over `queries`: instructions in batches of `batch` queries, `k` replies
/// per query, every completed reply scored.
pub fn evaluate<W, S, R>(
    writer: &mut W,
    student: &mut S,
    reward: &mut WeightedReward<R>,
    queries: &[Query],
    k: usize,
    sampling: &SamplingParams,
    batch: usize,
) -> Result<Vec<EvalSample>>
where
    W: InstructionWriter + ?Sized,
    S: Student + ?Sized,
    R: Reward,
{
    let label = writer.label();
    let mut out = Vec::with_capacity(queries.len() * k);
    for chunk in queries.chunks(batch.max(1)) {
        let instructions = writer.write(chunk)?;
        let requests: Vec<StudentRequest<'_>> = chunk
            .iter()
            .zip(&instructions)
            .map(|(query, m1)| StudentRequest {
                query,
                instruction: m1.as_ref().map(|m| m.text.as_str()),
                k,
            })
            .collect();
        let replies = student.generate(&requests, sampling)?;
        let mut inputs = Vec::new();
        for ((query, m1), rs) in chunk.iter().zip(&instructions).zip(&replies) {
            for r in rs {
                if let Some(reply) = r.as_text() {
                    inputs.push(
                        RewardInput::new(query, reply)
                            .with_instruction(m1.as_ref().map(|m| m.text.as_str())),
                    );
                }
            }
        }
        let mut scores = reward.score_scalar(&inputs)?.into_iter();
        for ((query, m1), rs) in chunk.iter().zip(&instructions).zip(&replies) {
            let leaked = m1.as_ref().is_some_and(|m| {
                query
                    .reference
                    .as_deref()
                    .is_some_and(|r| contains_answer(&m.text, r))
            });
            for (i, r) in rs.iter().enumerate() {
                let (components, scalar) = match r.as_text() {
                    Some(_) => {
                        let (c, s) = scores.next().ok_or_else(|| {
                            wst_core::Error::Weights("reward returned too few scores".into())
                        })?;
                        (c, Some(s))
                    }
                    None => (RewardComponents::default(), None),
                };
                out.push(EvalSample {
                    condition: label.clone(),
                    query_id: query.id.clone(),
                    sample: i as u32,
                    instruction: m1.as_ref().map(|m| m.text.clone()),
                    answer_in_instruction: leaked,
                    reply: r.as_text().map(str::to_string),
                    components,
                    reward: scalar,
                    weight: None,
                });
            }
        }
    }
    Ok(out)
}

/// Summary of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionSummary {
    /// Condition label.
    pub condition: String,
    /// Problems evaluated.
    pub problems: usize,
    /// Completed (scored) replies.
    pub replies: usize,
    /// Failed replies (excluded from the means).
    pub failures: usize,
    /// Mean of the per-problem mean scores.
    pub mean: f64,
    /// Lower end of the 95% interval (normal approximation over problems).
    pub ci_lo: f64,
    /// Upper end of the 95% interval.
    pub ci_hi: f64,
    /// Mean of each reward component over completed replies.
    pub components: BTreeMap<String, f64>,
    /// Share of problems whose instruction contains the reference answer.
    pub answer_in_instruction: f64,
}

/// Per-condition summaries, in the order conditions first appear in `samples`.
pub fn summarize(samples: &[EvalSample]) -> Vec<ConditionSummary> {
    let mut order: Vec<&str> = Vec::new();
    for s in samples {
        if !order.contains(&s.condition.as_str()) {
            order.push(&s.condition);
        }
    }
    order
        .into_iter()
        .map(|cond| {
            let rows: Vec<&EvalSample> = samples.iter().filter(|s| s.condition == cond).collect();
            // Per problem: mean over completed replies, and whether the instruction leaked.
            let mut per_problem: BTreeMap<&str, (f64, usize, bool)> = BTreeMap::new();
            let mut comp_sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            let mut failures = 0;
            for s in &rows {
                let e = per_problem
                    .entry(&s.query_id)
                    .or_insert((0.0, 0, s.answer_in_instruction));
                match s.reward {
                    Some(r) => {
                        e.0 += r;
                        e.1 += 1;
                    }
                    None => failures += 1,
                }
                for (k, v) in &s.components.0 {
                    let c = comp_sums.entry(k.clone()).or_insert((0.0, 0));
                    c.0 += v;
                    c.1 += 1;
                }
            }
            let means: Vec<f64> = per_problem
                .values()
                .filter(|(_, n, _)| *n > 0)
                .map(|(s, n, _)| s / *n as f64)
                .collect();
            let (mean, half) = mean_ci95(&means);
            let leaked = per_problem.values().filter(|(_, _, l)| *l).count();
            ConditionSummary {
                condition: cond.to_string(),
                problems: per_problem.len(),
                replies: rows.len() - failures,
                failures,
                mean,
                ci_lo: mean - half,
                ci_hi: mean + half,
                components: comp_sums
                    .into_iter()
                    .map(|(k, (s, n))| (k, s / n.max(1) as f64))
                    .collect(),
                answer_in_instruction: leaked as f64 / per_problem.len().max(1) as f64,
            }
        })
        .collect()
}

/// Mean and half-width of the normal-approximation 95% interval of `xs` (0 width for n < 2).
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

/// The summaries as a Markdown table.
pub fn markdown_table(summaries: &[ConditionSummary]) -> String {
    let mut s = String::from(
        "| condition | problems | replies | failed | mean | 95% CI | answer in instruction |\n\
         |---|---:|---:|---:|---:|---|---:|\n",
    );
    for c in summaries {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | [{:.3}, {:.3}] | {:.0}% |\n",
            c.condition,
            c.problems,
            c.replies,
            c.failures,
            c.mean,
            c.ci_lo,
            c.ci_hi,
            100.0 * c.answer_in_instruction
        ));
    }
    s
}

/// The summaries as CSV (one header line).
pub fn csv_table(summaries: &[ConditionSummary]) -> String {
    let mut s = String::from(
        "condition,problems,replies,failures,mean,ci_lo,ci_hi,answer_in_instruction\n",
    );
    for c in summaries {
        let name = if c.condition.contains([',', '"']) {
            format!("\"{}\"", c.condition.replace('"', "\"\""))
        } else {
            c.condition.clone()
        };
        s.push_str(&format!(
            "{name},{},{},{},{:.6},{:.6},{:.6},{:.6}\n",
            c.problems, c.replies, c.failures, c.mean, c.ci_lo, c.ci_hi, c.answer_in_instruction
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::{RewardWeights, StudentReply};

    /// Answers `a + b` right when the instruction says "carefully", wrong otherwise; every
    /// third reply to an instruction-free request fails.
    struct Mock {
        calls: usize,
    }
    impl Student for Mock {
        fn id(&self) -> String {
            "mock".into()
        }
        fn generate(
            &mut self,
            requests: &[StudentRequest<'_>],
            _: &SamplingParams,
        ) -> Result<Vec<Vec<StudentReply>>> {
            Ok(requests
                .iter()
                .map(|r| {
                    (0..r.k)
                        .map(|_| {
                            self.calls += 1;
                            let good = r.instruction.is_some_and(|m| m.contains("carefully"));
                            if r.instruction.is_none() && self.calls % 3 == 0 {
                                StudentReply::failed("boom", 3)
                            } else if good {
                                StudentReply::text(r.query.reference.clone().unwrap())
                            } else {
                                StudentReply::text("-1")
                            }
                        })
                        .collect()
                })
                .collect())
        }
    }
    struct Exact;
    impl Reward for Exact {
        fn component_names(&self) -> Vec<String> {
            vec!["correct".into()]
        }
        fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
            Ok(inputs
                .iter()
                .map(|i| {
                    let ok = Some(i.reply) == i.query.reference.as_deref();
                    RewardComponents::from_pairs([("correct", ok as u8 as f64)])
                })
                .collect())
        }
    }
    struct Fixed(&'static str);
    impl InstructionWriter for Fixed {
        fn label(&self) -> String {
            self.0.into()
        }
        fn write(&mut self, queries: &[Query]) -> Result<Vec<Option<Instruction>>> {
            Ok(queries
                .iter()
                .map(|_| Some(Instruction::from_text(self.0)))
                .collect())
        }
    }

    fn queries(n: usize) -> Vec<Query> {
        (0..n)
            .map(|i| {
                Query::new(format!("q{i}"), format!("{i} + 1")).with_reference((i + 1).to_string())
            })
            .collect()
    }

    #[test]
    fn conditions_are_scored_and_failures_excluded() {
        let qs = queries(5);
        let mut reward = WeightedReward::new(Exact, RewardWeights::single("correct")).unwrap();
        let mut student = Mock { calls: 0 };
        let s = SamplingParams::default();
        let mut all = evaluate(
            &mut NoInstruction::new("alone"),
            &mut student,
            &mut reward,
            &qs,
            3,
            &s,
            2,
        )
        .unwrap();
        all.extend(
            evaluate(
                &mut Fixed("add carefully"),
                &mut student,
                &mut reward,
                &qs,
                3,
                &s,
                2,
            )
            .unwrap(),
        );
        all.extend(
            evaluate(
                &mut Fixed("guess"),
                &mut student,
                &mut reward,
                &qs,
                3,
                &s,
                4,
            )
            .unwrap(),
        );
        assert_eq!(all.len(), 45);
        let sum = summarize(&all);
        assert_eq!(sum.len(), 3);
        assert_eq!(sum[0].condition, "alone");
        assert_eq!(sum[0].failures, 5, "15 calls, every third fails");
        assert_eq!(sum[0].replies, 10);
        assert_eq!(sum[0].mean, 0.0);
        assert_eq!(sum[1].mean, 1.0);
        assert_eq!((sum[1].ci_lo, sum[1].ci_hi), (1.0, 1.0));
        assert_eq!(sum[2].mean, 0.0);
        assert_eq!(sum[1].components["correct"], 1.0);
        let md = markdown_table(&sum);
        assert!(
            md.contains("| add carefully | 5 | 15 | 0 | 1.000 | [1.000, 1.000] | 0% |"),
            "{md}"
        );
        let csv = csv_table(&sum);
        assert_eq!(csv.lines().count(), 4);
    }

    #[test]
    fn interval_matches_hand_computation() {
        // mean 0.5, sample sd = sqrt(1/3), se = sqrt(1/3)/2, half = 1.96 * se.
        let (m, h) = mean_ci95(&[0.0, 1.0, 0.0, 1.0]);
        assert_eq!(m, 0.5);
        assert!((h - 1.96 * (1.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-12);
        assert_eq!(mean_ci95(&[0.3]), (0.3, 0.0));
    }
}
