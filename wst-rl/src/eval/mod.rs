//! Evaluation of conditions (the paper's Figure 1): for each held-out query, an instruction
//! writer (none, a local teacher, an API teacher) writes `M` instructions (one by default), the
//! student answers each `K` times, and every reply is scored. [`plan`] expands the conditions and
//! weights a user asks for into runs; [`summary`] gives each condition's mean with a 95% interval
//! over problems (each problem's mean over its `M x K` replies is one observation, so the
//! interval accounts for replies to one problem being correlated) and paired intervals of the
//! differences between conditions, all over the same problems; [`stats`] holds the maths.
//!
//! `M > 1` measures a teacher's expected effect over the instructions it writes rather than the
//! effect of the one instruction it happened to sample: with one instruction per problem, the
//! luck of that draw is most of the spread of a paired difference between two teachers.

pub mod plan;
pub mod stats;
pub mod summary;

use wst_core::{
    Instruction, PromptTemplates, Query, Result, Reward, RewardComponents, RewardInput,
    SamplingParams, Student, StudentReply, StudentRequest, WeightedReward,
};

use crate::collect::derive_seed;
use crate::metrics::contains_answer;
use crate::policy::{Draw, Policy};

pub use summary::{csv_table, markdown_table, summarize, Comparison, ConditionSummary, EvalReport};

/// What an instruction writer produced for one query.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// The student gets no instruction (the student-alone condition).
    Nothing,
    /// The instruction the student gets.
    Instruction(Instruction),
    /// The writer failed on this query (an API teacher's request failed after its retries):
    /// the student is not asked, and the query counts as failed for this condition.
    Failed(String),
}

impl Written {
    /// The instruction, if one was written.
    pub fn instruction(&self) -> Option<&Instruction> {
        match self {
            Written::Instruction(m) => Some(m),
            _ => None,
        }
    }
}

/// The first outcome of each group (a writer's `write` through its `write_n(.., 1)`).
fn first_of_each(groups: Vec<Vec<Written>>) -> Vec<Written> {
    groups
        .into_iter()
        .map(|g| {
            g.into_iter()
                .next()
                .unwrap_or_else(|| Written::Failed("no instruction written".into()))
        })
        .collect()
}

/// `group` cut or filled to `n` outcomes, a missing one a failure saying `why`.
fn padded(mut group: Vec<Written>, n: usize, why: impl Fn() -> String) -> Vec<Written> {
    group.truncate(n);
    while group.len() < n {
        group.push(Written::Failed(why()));
    }
    group
}

/// Writes one instruction per query: the thing an evaluation condition varies.
pub trait InstructionWriter {
    /// Label of the condition in tables and plots (e.g. `trained teacher`).
    fn label(&self) -> String;

    /// One outcome per query, in order.
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>>;

    /// `n` independent outcomes per query, in order. The default asks [`write`](Self::write)
    /// with each query repeated `n` times in a row; writers that can draw several instructions
    /// for one prompt at once (a local teacher's group sampling, an API's `n`) override it.
    fn write_n(&mut self, queries: &[Query], n: usize) -> Result<Vec<Vec<Written>>> {
        let n = n.max(1);
        let repeated: Vec<Query> = queries
            .iter()
            .flat_map(|q| std::iter::repeat_n(q.clone(), n))
            .collect();
        let mut written = self.write(&repeated)?.into_iter();
        let mut out = Vec::with_capacity(queries.len());
        for _ in queries {
            let group: Vec<Written> = written.by_ref().take(n).collect();
            out.push(group);
        }
        Ok(out)
    }
}

impl<T: InstructionWriter + ?Sized> InstructionWriter for &mut T {
    fn label(&self) -> String {
        (**self).label()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
        (**self).write(queries)
    }
    fn write_n(&mut self, queries: &[Query], n: usize) -> Result<Vec<Vec<Written>>> {
        (**self).write_n(queries, n)
    }
}

impl<T: InstructionWriter + ?Sized> InstructionWriter for Box<T> {
    fn label(&self) -> String {
        (**self).label()
    }
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
        (**self).write(queries)
    }
    fn write_n(&mut self, queries: &[Query], n: usize) -> Result<Vec<Vec<Written>>> {
        (**self).write_n(queries, n)
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
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
        Ok(vec![Written::Nothing; queries.len()])
    }
}

/// A teacher that is itself a [`Student`] (e.g. an API model behind an OpenAI-compatible URL
/// whose prompt templates are the teacher's): its one reply to a query, asked with no
/// instruction, is the instruction. A failed reply is [`Written::Failed`]: a failure of this
/// condition, not the student-alone condition in disguise.
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
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
        Ok(first_of_each(self.write_n(queries, 1)?))
    }
    /// One request per query for `n` replies (the API's `n`, so a seeded server draws `n`
    /// different instructions rather than one `n` times).
    fn write_n(&mut self, queries: &[Query], n: usize) -> Result<Vec<Vec<Written>>> {
        let n = n.max(1);
        let requests: Vec<StudentRequest<'_>> = queries
            .iter()
            .map(|query| StudentRequest {
                query,
                instruction: None,
                k: n,
            })
            .collect();
        let replies = self.inner.generate(&requests, &self.sampling)?;
        Ok(replies
            .into_iter()
            .map(|r| {
                let group = r
                    .into_iter()
                    .map(|reply| match reply {
                        StudentReply::Completed(c) => Written::Instruction(Instruction {
                            text: c.text.trim().to_string(),
                            num_tokens: c.num_tokens.unwrap_or(0),
                            truncated: c.finish_reason == wst_core::FinishReason::Length,
                        }),
                        StudentReply::Failed(f) => Written::Failed(format!(
                            "teacher `{}`: {} (after {} attempts)",
                            self.label, f.error, f.attempts
                        )),
                    })
                    .collect();
                padded(group, n, || {
                    format!("teacher `{}` returned no reply", self.label)
                })
            })
            .collect())
    }
}

/// A local teacher (untrained, or trained weights from a checkpoint): instructions per query
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
    fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
        Ok(first_of_each(self.write_n(queries, 1)?))
    }
    /// A group of `n` instructions per query from one sampling call (each prompt prefilled
    /// once, as in training).
    fn write_n(&mut self, queries: &[Query], n: usize) -> Result<Vec<Vec<Written>>> {
        let n = n.max(1);
        let ctx = |e: crate::Error| wst_core::Error::other(format!("teacher {}", self.label), e);
        let mut prompts = Vec::with_capacity(queries.len());
        for q in queries {
            let prompt = self.templates.teacher(q)?;
            prompts.push(self.policy.encode_prompt(&prompt).map_err(ctx)?);
        }
        let seed = derive_seed(self.seed, self.calls, 2);
        self.calls += 1;
        let draw = Draw {
            n,
            params: &self.sampling,
            seed,
        };
        let groups = self.policy.sample(&prompts, draw).map_err(ctx)?;
        Ok(groups
            .into_iter()
            .map(|g| {
                let group = g
                    .into_iter()
                    .map(|s| {
                        Written::Instruction(Instruction {
                            text: s.text,
                            num_tokens: s.tokens.len(),
                            truncated: s.truncated,
                        })
                    })
                    .collect();
                padded(group, n, || {
                    format!("teacher `{}` sampled nothing", self.label)
                })
            })
            .collect())
    }
}

pub use wst_core::EvalSample;

/// A component broke its contract (counts that do not match).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Mismatch(String);

fn mismatch(label: &str, what: String) -> wst_core::Error {
    wst_core::Error::other(format!("condition `{label}`"), Mismatch(what))
}

/// How much each held-out query gets in one condition: `instructions` instructions written for
/// it (`eval.instructions`, M) and `replies` student replies to each (`eval.samples`, K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerQuery {
    /// Instructions written per query (M >= 1; the student-alone condition asks M times too).
    pub instructions: usize,
    /// Student replies per instruction (K >= 1).
    pub replies: usize,
}

impl PerQuery {
    /// One instruction per query and `k` replies to it.
    pub fn replies(k: usize) -> Self {
        PerQuery {
            instructions: 1,
            replies: k,
        }
    }

    /// Samples per query: `M x K`.
    pub fn samples(&self) -> usize {
        self.instructions.max(1) * self.replies.max(1)
    }
}

/// Runs one condition over `queries`: instructions in batches of `batch` queries (`M` per query),
/// `K` replies per instruction, every completed reply scored. Sample `j * K + i` of a query is
/// reply `i` to its instruction `j`. An instruction that could not be written gives `K` failed
/// samples (the student is not asked for it).
pub fn evaluate<W, S, R>(
    writer: &mut W,
    student: &mut S,
    reward: &mut WeightedReward<R>,
    queries: &[Query],
    per: PerQuery,
    sampling: &SamplingParams,
    batch: usize,
) -> Result<Vec<EvalSample>>
where
    W: InstructionWriter + ?Sized,
    S: Student + ?Sized,
    R: Reward,
{
    let label = writer.label();
    let (m, k) = (per.instructions.max(1), per.replies.max(1));
    let mut out = Vec::with_capacity(queries.len() * per.samples());
    for chunk in queries.chunks(batch.max(1)) {
        let groups = writer.write_n(chunk, m)?;
        if groups.len() != chunk.len() || groups.iter().any(|g| g.len() != m) {
            return Err(mismatch(
                &label,
                format!(
                    "wrote {} instruction groups of sizes {:?} for {} queries and M = {m}",
                    groups.len(),
                    groups.iter().map(Vec::len).collect::<Vec<_>>(),
                    chunk.len()
                ),
            ));
        }
        // (query of the chunk, instruction index, what was written), query-major.
        let written: Vec<(&Query, usize, Written)> = chunk
            .iter()
            .zip(groups)
            .flat_map(|(q, g)| g.into_iter().enumerate().map(move |(j, w)| (q, j, w)))
            .collect();
        let asked: Vec<usize> = (0..written.len())
            .filter(|&i| !matches!(written[i].2, Written::Failed(_)))
            .collect();
        let requests: Vec<StudentRequest<'_>> = asked
            .iter()
            .map(|&i| StudentRequest {
                query: written[i].0,
                instruction: written[i].2.instruction().map(|m| m.text.as_str()),
                k,
            })
            .collect();
        let mut answered = if requests.is_empty() {
            Vec::new()
        } else {
            student.generate(&requests, sampling)?
        };
        if answered.len() != requests.len() || answered.iter().any(|r| r.len() != k) {
            return Err(mismatch(
                &label,
                format!(
                    "the student returned {} reply lists for {} requests of k = {k}",
                    answered.len(),
                    requests.len()
                ),
            ));
        }
        // Replies per written instruction, `None` where the student was not asked.
        let mut replies: Vec<Option<Vec<StudentReply>>> = vec![None; written.len()];
        for (&i, r) in asked.iter().zip(answered.drain(..)) {
            replies[i] = Some(r);
        }
        let mut inputs = Vec::new();
        for ((query, _, w), rs) in written.iter().zip(&replies) {
            let m1 = w.instruction();
            for r in rs.iter().flatten() {
                if let Some(reply) = r.as_text() {
                    inputs.push(
                        RewardInput::new(query, reply)
                            .with_instruction(m1.map(|m| m.text.as_str())),
                    );
                }
            }
        }
        let mut scores = reward.score_scalar(&inputs)?.into_iter();
        for ((query, j, w), rs) in written.iter().zip(&replies) {
            let m1 = w.instruction();
            let leaked = m1.is_some_and(|m| {
                query
                    .reference
                    .as_deref()
                    .is_some_and(|r| contains_answer(&m.text, r))
            });
            let sample = |i: usize| EvalSample {
                condition: label.clone(),
                query_id: query.id.clone(),
                sample: (j * k + i) as u32,
                instruction: m1.map(|m| m.text.clone()),
                answer_in_instruction: leaked,
                reply: None,
                components: RewardComponents::default(),
                reward: None,
                weight: None,
                error: None,
            };
            let Some(rs) = rs else {
                let error = match w {
                    Written::Failed(e) => e.clone(),
                    _ => "not asked".into(),
                };
                for i in 0..k {
                    out.push(EvalSample {
                        error: Some(format!("no instruction: {error}")),
                        ..sample(i)
                    });
                }
                continue;
            };
            for (i, r) in rs.iter().enumerate() {
                match r {
                    StudentReply::Completed(c) => {
                        let (components, scalar) = scores.next().ok_or_else(|| {
                            mismatch(&label, "the reward returned too few scores".into())
                        })?;
                        out.push(EvalSample {
                            reply: Some(c.text.clone()),
                            components,
                            reward: Some(scalar),
                            ..sample(i)
                        });
                    }
                    StudentReply::Failed(f) => out.push(EvalSample {
                        error: Some(f.error.clone()),
                        ..sample(i)
                    }),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::testing::{ExactReward, MockStudent};
    use wst_core::RewardWeights;

    /// Answers `a + b` right when the instruction says "carefully", `-1` otherwise; every
    /// third reply to an instruction-free request fails.
    fn mock() -> MockStudent {
        MockStudent::keyed("mock", &["carefully"])
            .wrong_reply("-1")
            .failing_uninstructed_every(3)
    }

    fn exact() -> WeightedReward<ExactReward> {
        WeightedReward::new(ExactReward, RewardWeights::single("correct")).unwrap()
    }

    /// [`evaluate`] with default sampling.
    fn run(
        writer: &mut dyn InstructionWriter,
        student: &mut MockStudent,
        reward: &mut WeightedReward<ExactReward>,
        qs: &[Query],
        k: usize,
        batch: usize,
    ) -> Vec<EvalSample> {
        let s = SamplingParams::default();
        evaluate(writer, student, reward, qs, PerQuery::replies(k), &s, batch).unwrap()
    }

    struct Fixed(&'static str);
    impl InstructionWriter for Fixed {
        fn label(&self) -> String {
            self.0.into()
        }
        fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
            Ok(queries
                .iter()
                .map(|_| Written::Instruction(Instruction::from_text(self.0)))
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
        let (mut student, mut reward) = (mock(), exact());
        let mut all = run(
            &mut NoInstruction::new("alone"),
            &mut student,
            &mut reward,
            &qs,
            3,
            2,
        );
        let mut fixed =
            |text, batch| run(&mut Fixed(text), &mut student, &mut reward, &qs, 3, batch);
        all.extend(fixed("add carefully", 2));
        all.extend(fixed("guess", 4));
        assert_eq!(all.len(), 45);
        let sum = summarize(&all, &[], Some((0.0, 1.0))).conditions;
        assert_eq!(sum.len(), 3);
        assert_eq!(sum[0].condition, "alone");
        assert_eq!(sum[0].failures, 5, "15 calls, every third fails");
        assert_eq!(sum[0].replies, 10);
        assert_eq!(sum[0].mean, 0.0);
        assert_eq!(sum[1].mean, 1.0);
        // Every problem right: not [1, 1] but the Wilson interval of 5 of 5 (scipy
        // binomtest(5, 5).proportion_ci(method="wilson") = [0.5655, 1]).
        assert!(
            (sum[1].ci_lo - 0.5655175352168251).abs() < 1e-9,
            "{:?}",
            sum[1]
        );
        assert_eq!(sum[1].ci_hi, 1.0);
        assert_eq!(sum[2].mean, 0.0);
        assert_eq!(sum[1].components["correct"], 1.0);
        let md = markdown_table(&summarize(&all, &[], Some((0.0, 1.0))));
        assert!(
            md.contains("| add carefully | 5 | 15 | 0 | 1.000 | [0.566, 1.000] | 0% |"),
            "{md}"
        );
        let csv = csv_table(&summarize(&all, &[], Some((0.0, 1.0))));
        assert_eq!(csv.lines().count(), 4);
    }

    /// An API-like teacher whose request for the second query fails.
    struct Flaky;
    impl InstructionWriter for Flaky {
        fn label(&self) -> String {
            "api".into()
        }
        fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
            Ok(queries
                .iter()
                .map(|q| match q.id.as_str() {
                    "q1" => Written::Failed("HTTP 500".into()),
                    _ => Written::Instruction(Instruction::from_text("add carefully")),
                })
                .collect())
        }
    }

    #[test]
    fn a_failed_instruction_is_a_failure_of_its_condition() {
        let qs = queries(3);
        let (mut student, mut reward) = (mock(), exact());
        let mut all = run(&mut Flaky, &mut student, &mut reward, &qs, 2, 8);
        assert_eq!(student.replies, 4, "the student is not asked for q1");
        let failed: Vec<&EvalSample> = all.iter().filter(|x| x.query_id == "q1").collect();
        assert_eq!(failed.len(), 2);
        assert!(failed.iter().all(|x| x.reward.is_none()
            && x.instruction.is_none()
            && x.error.as_deref() == Some("no instruction: HTTP 500")));
        all.extend(run(
            &mut Fixed("guess"),
            &mut student,
            &mut reward,
            &qs,
            2,
            8,
        ));
        let pairs = vec![("api".to_string(), "guess".to_string())];
        let r = summarize(&all, &pairs, Some((0.0, 1.0)));
        let api = r.condition("api").unwrap();
        assert_eq!((api.failures, api.unscored, api.problems), (2, 1, 2));
        assert_eq!(api.mean, 1.0, "not the student alone's score on q1");
        assert_eq!(r.excluded, vec!["q1".to_string()]);
        assert_eq!(r.condition("guess").unwrap().problems, 2);
        let c = r.comparison("api", "guess").unwrap();
        assert_eq!((c.problems, c.mean), (2, 1.0));
    }

    /// Writes "add carefully then it is <answer>" on even draws and "guess" on odd ones, through
    /// the default `write_n` (each query repeated M times).
    struct Alternating(usize);
    impl InstructionWriter for Alternating {
        fn label(&self) -> String {
            "alternating".into()
        }
        fn write(&mut self, queries: &[Query]) -> Result<Vec<Written>> {
            Ok(queries
                .iter()
                .map(|q| {
                    self.0 += 1;
                    let text = if self.0 % 2 == 1 {
                        format!(
                            "add carefully then it is {}",
                            q.reference.as_deref().unwrap()
                        )
                    } else {
                        "guess".into()
                    };
                    Written::Instruction(Instruction::from_text(text))
                })
                .collect())
        }
    }

    #[test]
    fn several_instructions_per_query_are_each_answered_k_times() {
        let qs = queries(3);
        let (mut student, mut reward) = (mock(), exact());
        let per = PerQuery {
            instructions: 2,
            replies: 3,
        };
        assert_eq!(per.samples(), 6);
        let s = SamplingParams::default();
        let out = evaluate(
            &mut Alternating(0),
            &mut student,
            &mut reward,
            &qs,
            per,
            &s,
            2,
        )
        .unwrap();
        assert_eq!(out.len(), 18);
        assert_eq!(student.replies, 18);
        for q in &qs {
            let mut rows: Vec<&EvalSample> = out.iter().filter(|x| x.query_id == q.id).collect();
            rows.sort_by_key(|x| x.sample);
            assert_eq!(
                rows.iter().map(|x| x.sample).collect::<Vec<_>>(),
                (0..6).collect::<Vec<u32>>()
            );
            // Samples 0-2 answer instruction 0 (the careful one), 3-5 instruction 1.
            for x in &rows[..3] {
                assert!(x
                    .instruction
                    .as_deref()
                    .unwrap()
                    .starts_with("add carefully"));
                assert!(x.answer_in_instruction);
                assert_eq!(x.reward, Some(1.0));
            }
            for x in &rows[3..] {
                assert_eq!(x.instruction.as_deref(), Some("guess"));
                assert!(!x.answer_in_instruction);
                assert_eq!(x.reward, Some(0.0));
            }
        }
        let sum = summarize(&out, &[], Some((0.0, 1.0))).conditions;
        assert_eq!(sum[0].replies, 18);
        assert_eq!(sum[0].mean, 0.5);
        assert_eq!(
            sum[0].answer_in_instruction, 0.5,
            "the share of instructions, not of problems with any leak"
        );
    }

    /// A local teacher draws its M instructions for a query as one group: M of them, seeded,
    /// and its one-instruction `write` is the same draw as `write_n(.., 1)`.
    #[test]
    fn a_local_teacher_draws_a_group_of_instructions_per_query() {
        use crate::tiny::{TinyConfig, TinyPolicy};
        use wst_core::TemplatePreset;
        let words = [
            "add",
            "the",
            "numbers",
            "carefully",
            "guess",
            "check",
            "twice",
        ];
        let teacher = || {
            PolicyTeacher::new(
                "tiny",
                TinyPolicy::new(&TinyConfig::new(&words, 3)),
                PromptTemplates::new(TemplatePreset::Arith.texts()).unwrap(),
                SamplingParams {
                    max_new_tokens: 8,
                    ..SamplingParams::default()
                },
                11,
            )
        };
        let qs = queries(2);
        let groups = crate::seeded(0, || teacher().write_n(&qs, 4).unwrap());
        assert_eq!(groups.len(), 2);
        for g in &groups {
            assert_eq!(g.len(), 4);
            let texts: std::collections::BTreeSet<&str> = g
                .iter()
                .map(|w| w.instruction().unwrap().text.as_str())
                .collect();
            assert!(texts.len() > 1, "four draws, one text: {g:?}");
        }
        let again = crate::seeded(0, || teacher().write_n(&qs, 4).unwrap());
        assert_eq!(groups, again, "seeded");
        let one = crate::seeded(0, || teacher().write(&qs).unwrap());
        let one_n = crate::seeded(0, || teacher().write_n(&qs, 1).unwrap());
        assert_eq!(one, one_n.into_iter().flatten().collect::<Vec<_>>());
    }
}
