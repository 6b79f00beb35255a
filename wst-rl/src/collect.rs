//! Rollout collection: teacher -> student -> reward. For each query the teacher samples `G`
//! instructions; the student answers each `(query, instruction)` `K` times; each completed reply
//! is scored and weighted into a scalar; `r_i = mean_k g - s_i`, with the student's baseline `s_i`
//! taken from the [`BaselineStore`] or computed from `baseline_samples` replies without
//! instruction. Failed replies are left out of every mean and counted.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use wst_core::{
    splitmix64, stable_hash, BaselineKey, BaselineStore, BaselineValue, Config, PromptSource,
    PromptTemplates, Query, Reward, RewardComponents, RewardInput, RewardMix, RewardWeights,
    RolloutRecord, SamplingParams, Student, StudentReply, StudentRequest,
};

use crate::metrics::contains_answer;
use crate::policy::{Draw, Policy, PolicySample};
use crate::{Error, Result};

/// The seed of random stream `stream` at step `step` of a run seeded with `seed`. Every random
/// draw of the trainer comes from such a seed, so the trainer's RNG state is just `(seed, step)`.
pub fn derive_seed(seed: u64, step: u64, stream: u64) -> u64 {
    let mut s = seed ^ 0x5EED_0000_0000_0000;
    let a = splitmix64(&mut s);
    let mut s = a ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let b = splitmix64(&mut s);
    let mut s = b ^ stream.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    splitmix64(&mut s)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What collection needs from the configuration.
#[derive(Debug)]
pub struct Collector {
    /// Prompt templates (teacher prompt, student prompt).
    pub templates: PromptTemplates,
    /// Reward weights over components.
    pub weights: RewardWeights,
    /// Weights with per-component normalisation and aggregation (running statistics inside).
    pub mix: std::sync::Mutex<RewardMix>,
    /// [`wst_core::reward_hash`] of the whole `[reward]` table (part of the baseline key).
    pub reward_hash: String,
    /// Teacher sampling; `max_new_tokens` is the instruction cap.
    pub teacher_sampling: SamplingParams,
    /// Student sampling.
    pub student_sampling: SamplingParams,
    /// G.
    pub group_size: usize,
    /// K.
    pub samples: usize,
    /// Replies per baseline.
    pub baseline_samples: usize,
    /// Share of failed replies in a step above which collection fails
    /// (`student.max_failure_rate`).
    pub max_failure_rate: f64,
    /// Run identifier for rollout records.
    pub run_id: String,
    /// Run seed.
    pub seed: u64,
}

/// Timings and counters of one collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectStats {
    /// Seconds of teacher sampling (and prompt encoding).
    pub t_teacher_gen: f64,
    /// Seconds in the student.
    pub t_student: f64,
    /// Seconds in the reward.
    pub t_reward: f64,
    /// Teacher tokens generated.
    pub teacher_tokens: usize,
    /// Replies requested with instructions.
    pub replies: usize,
    /// Replies that failed.
    pub failed_replies: usize,
    /// Teacher samples with no completed reply.
    pub failed_samples: usize,
    /// Baselines computed (cache misses).
    pub baselines_computed: usize,
    /// Completed replies without a scalar reward: a weighted component had no score for them
    /// (e.g. the judge's answer held none). Left out of every mean, like failed replies.
    pub unscored_replies: usize,
}

/// Replies scored per reward call while a step's replies arrive.
const SCORE_CHUNK: usize = 32;

/// A step's teacher samples, drawn and not yet answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Drawn {
    /// The step they were drawn for (it seeds them and the student's replies).
    pub step: u64,
    /// The step's queries.
    pub queries: Vec<Query>,
    /// Teacher prompt token ids, one per query.
    pub prompts: Vec<Vec<i64>>,
    /// Teacher samples, `G` per query.
    pub samples: Vec<Vec<PolicySample>>,
    /// When sampling began (ms since the epoch).
    pub created_ms: i64,
    /// Seconds of teacher sampling (and prompt encoding).
    pub t_teacher_gen: f64,
    /// Teacher tokens generated.
    pub teacher_tokens: usize,
}

/// One step's rollouts.
#[derive(Debug)]
pub struct Collected {
    /// Teacher prompt token ids, one per query.
    pub prompts: Vec<Vec<i64>>,
    /// Teacher samples, `G` per query.
    pub samples: Vec<Vec<PolicySample>>,
    /// What each sample is trained on (`None`: no scored reply): `r_i`, or the value of the
    /// reward mix when components are normalised or `normalize_then_sum` is chosen.
    pub rewards: Vec<Vec<Option<f64>>>,
    /// Rollout records in sample order (advantages still 0).
    pub records: Vec<RolloutRecord>,
    /// Timings and counters.
    pub stats: CollectStats,
}

/// A scored reply: its components and their raw weighted sum (`None`: a weighted component is
/// missing); `None` for a failed reply.
type Scored = Option<(RewardComponents, Option<f64>)>;

/// Scores completed replies of `(query, instruction, reply)` items.
fn score(
    reward: &mut dyn Reward,
    mix: &RewardMix,
    items: &[(&Query, Option<&str>, &StudentReply)],
    stats: &mut CollectStats,
) -> Result<Vec<Scored>> {
    let inputs: Vec<RewardInput<'_>> = items
        .iter()
        .filter_map(|(q, m1, r)| {
            r.as_text()
                .map(|t| RewardInput::new(q, t).with_instruction(*m1))
        })
        .collect();
    let comps = reward.score(&inputs)?;
    if comps.len() != inputs.len() {
        return Err(Error::Contract(format!(
            "the reward returned {} scores for {} replies",
            comps.len(),
            inputs.len()
        )));
    }
    let mut it = comps.into_iter();
    let mut unscored = 0;
    let out = items
        .iter()
        .map(|(_, _, r)| match r {
            StudentReply::Failed(_) => Ok(None),
            StudentReply::Completed(_) => {
                let c = it
                    .next()
                    .ok_or_else(|| Error::Contract("reward count".into()))?;
                let s = mix.raw(&c);
                unscored += usize::from(s.is_none());
                Ok(Some((c, s)))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    if unscored > 0 {
        tracing::warn!(
            unscored,
            "replies lack a weighted reward component (a component failed for them); they are \
             left out of the means"
        );
    }
    stats.unscored_replies += unscored;
    Ok(out)
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The most frequent error among `replies` and how often it occurred (ties: the first in text
/// order, so the message is reproducible).
pub fn most_common_error<'a>(
    replies: impl IntoIterator<Item = &'a StudentReply>,
) -> Option<(String, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in replies {
        if let StudentReply::Failed(f) = r {
            *counts.entry(f.error.as_str()).or_default() += 1;
        }
    }
    let mut best: Option<(&str, usize)> = None;
    for (e, n) in counts {
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((e, n));
        }
    }
    best.map(|(e, n)| (e.to_string(), n))
}

/// `Err` when more than `max_rate` of `replies` failed, naming the most common error.
pub fn check_failure_rate(replies: &[Vec<StudentReply>], max_rate: f64, what: &str) -> Result<()> {
    let total: usize = replies.iter().map(Vec::len).sum();
    let failed = replies.iter().flatten().filter(|r| r.is_failed()).count();
    if total == 0 || failed as f64 / total as f64 <= max_rate {
        return Ok(());
    }
    let (error, n) = most_common_error(replies.iter().flatten()).unwrap_or_default();
    Err(Error::StudentFailures(format!(
        "{failed} of {total} student replies {what} failed ({:.0}% > student.max_failure_rate = \
         {max_rate}); most common error ({n} of {failed}): {error}",
        100.0 * failed as f64 / total as f64
    )))
}

fn check_replies(replies: &[Vec<StudentReply>], requests: usize, k: usize) -> Result<()> {
    if replies.len() != requests || replies.iter().any(|r| r.len() != k) {
        return Err(Error::Contract(format!(
            "the student returned {} reply lists (sizes {:?}) for {requests} requests of k = {k}",
            replies.len(),
            replies.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

impl Collector {
    /// The collector of a run configuration (templates compiled, weights validated).
    pub fn from_config(config: &Config) -> Result<Self> {
        let weights = config.reward_weights()?;
        Ok(Collector {
            templates: PromptTemplates::new(config.templates.resolve())?,
            mix: std::sync::Mutex::new(RewardMix::new(
                weights.clone(),
                &config.reward.normalization(),
                config.grpo.multi_objective_aggregation,
            )),
            weights,
            reward_hash: wst_core::reward_hash(&config.reward),
            teacher_sampling: config.teacher.sampling.clone(),
            student_sampling: config.student.sampling.clone(),
            group_size: config.grpo.group_size,
            samples: config.student.samples,
            baseline_samples: config.student.baseline_samples,
            max_failure_rate: config.student.max_failure_rate,
            run_id: config.run.name.clone(),
            seed: config.run.seed,
        })
    }

    /// The raw weighted sum of the weights (what baselines and rollouts are scored with).
    fn plain_mix(&self) -> RewardMix {
        RewardMix::plain(self.weights.clone())
    }

    /// The baseline cache key of a query.
    pub fn baseline_key(&self, student_id: &str, dataset: &str, query: &Query) -> BaselineKey {
        BaselineKey {
            student_id: student_id.to_string(),
            dataset: dataset.to_string(),
            query_id: query.id.clone(),
            query_hash: query.content_hash(),
            template_hash: stable_hash(&[&self.templates.student_hash()]),
            reward_hash: self.reward_hash.clone(),
            sampling: format!(
                "{};n={}",
                self.student_sampling.cache_key(),
                self.baseline_samples
            ),
        }
    }

    /// Baselines `s_i` of `queries`: cached values, the rest computed (one student call for all
    /// misses) and stored. Returns the values and how many were computed.
    pub fn baselines(
        &self,
        student: &mut dyn Student,
        reward: &mut dyn Reward,
        store: &mut dyn BaselineStore,
        dataset: &str,
        queries: &[Query],
        stats: &mut CollectStats,
    ) -> Result<Vec<f64>> {
        let sid = student.id();
        let keys: Vec<BaselineKey> = queries
            .iter()
            .map(|q| self.baseline_key(&sid, dataset, q))
            .collect();
        let mut values: Vec<Option<f64>> =
            keys.iter().map(|k| store.get(k).map(|v| v.mean)).collect();
        let missing: Vec<usize> = (0..queries.len())
            .filter(|&i| values[i].is_none())
            .collect();
        if missing.is_empty() || self.baseline_samples == 0 {
            return Ok(values.into_iter().map(|v| v.unwrap_or(0.0)).collect());
        }
        let requests: Vec<StudentRequest<'_>> = missing
            .iter()
            .map(|&i| StudentRequest {
                query: &queries[i],
                instruction: None,
                k: self.baseline_samples,
            })
            .collect();
        // A baseline is a property of the query, not of the step: seed it from the query id.
        let mut sampling = self.student_sampling.clone();
        sampling.seed = Some(derive_seed(
            self.seed,
            u64::from_str_radix(&stable_hash(&[&queries[missing[0]].id]), 16).unwrap_or(0),
            2,
        ));
        let t = Instant::now();
        let replies = student.generate(&requests, &sampling)?;
        stats.t_student += t.elapsed().as_secs_f64();
        check_replies(&replies, requests.len(), self.baseline_samples)?;
        let items: Vec<(&Query, Option<&str>, &StudentReply)> = missing
            .iter()
            .zip(&replies)
            .flat_map(|(&i, rs)| rs.iter().map(move |r| (&queries[i], None, r)))
            .collect();
        let t = Instant::now();
        let scored = score(reward, &self.plain_mix(), &items, stats)?;
        stats.t_reward += t.elapsed().as_secs_f64();
        let mut puts = Vec::new();
        let mut unusable = Vec::new();
        for (j, &i) in missing.iter().enumerate() {
            let chunk = &scored[j * self.baseline_samples..(j + 1) * self.baseline_samples];
            let ok: Vec<f64> = chunk.iter().flatten().filter_map(|(_, s)| *s).collect();
            let failures = (chunk.len() - ok.len()) as u32;
            match mean(ok.iter().copied()) {
                Some(m) => {
                    values[i] = Some(m);
                    puts.push((
                        keys[i].clone(),
                        BaselineValue {
                            mean: m,
                            samples: ok.len() as u32,
                            failures,
                        },
                    ));
                }
                None => unusable.push(j),
            }
        }
        stats.baselines_computed += puts.len();
        store.put(&puts)?;
        if let Some(&first) = unusable.first() {
            let (error, n) =
                most_common_error(unusable.iter().flat_map(|&j| &replies[j])).unwrap_or_default();
            return Err(Error::StudentFailures(format!(
                "no baseline s_i for query {:?}: none of its {} replies without an instruction \
                 could be used ({} of {} queries of this call have none; the other {} baselines \
                 were stored); most common error ({n} of {}): {error}",
                queries[missing[first]].id,
                self.baseline_samples,
                unusable.len(),
                missing.len(),
                puts.len(),
                unusable.len() * self.baseline_samples,
            )));
        }
        Ok(values.into_iter().map(|v| v.unwrap_or(0.0)).collect())
    }

    /// Collects one step's rollouts for `queries`: [`Collector::draw`], then
    /// [`Collector::answer`].
    #[allow(clippy::too_many_arguments)]
    pub fn collect(
        &self,
        step: u64,
        policy: &mut dyn Policy,
        student: &mut dyn Student,
        reward: &mut dyn Reward,
        store: &mut dyn BaselineStore,
        dataset: &str,
        queries: &[Query],
    ) -> Result<Collected> {
        let drawn = self.draw(step, policy, queries.to_vec())?;
        self.answer(&drawn, student, reward, store, dataset)
    }

    /// The teacher's part of step `step`: `G` instructions per query, sampled from the seed of
    /// the step.
    pub fn draw(&self, step: u64, policy: &mut dyn Policy, queries: Vec<Query>) -> Result<Drawn> {
        let g = self.group_size;
        let t = Instant::now();
        let prompts = queries
            .iter()
            .map(|q| policy.encode_prompt(&self.templates.teacher(q)?))
            .collect::<Result<Vec<_>>>()?;
        let created_ms = now_ms();
        let draw = Draw {
            n: g,
            params: &self.teacher_sampling,
            seed: derive_seed(self.seed, step, 0),
        };
        let samples = policy.sample(&prompts, draw)?;
        let t_teacher_gen = t.elapsed().as_secs_f64();
        if samples.len() != queries.len() || samples.iter().any(|s| s.len() != g) {
            return Err(Error::Contract(format!(
                "the policy returned {} groups for {} prompts of G = {g}",
                samples.len(),
                queries.len()
            )));
        }
        Ok(Drawn {
            step,
            teacher_tokens: samples.iter().flatten().map(|s| s.tokens.len()).sum(),
            queries,
            prompts,
            samples,
            created_ms,
            t_teacher_gen,
        })
    }

    /// The student's part of a drawn step: baselines, `K` replies per instruction, each request's
    /// replies scored as they arrive ([`Student::generate_each`]), then the values trained on.
    pub fn answer(
        &self,
        drawn: &Drawn,
        student: &mut dyn Student,
        reward: &mut dyn Reward,
        store: &mut dyn BaselineStore,
        dataset: &str,
    ) -> Result<Collected> {
        let mut stats = CollectStats {
            t_teacher_gen: drawn.t_teacher_gen,
            teacher_tokens: drawn.teacher_tokens,
            ..CollectStats::default()
        };
        let (step, queries, samples) = (drawn.step, &drawn.queries, &drawn.samples);
        let g = self.group_size;
        let k = self.samples;
        let created_ms = drawn.created_ms;

        let baselines = self.baselines(student, reward, store, dataset, queries, &mut stats)?;

        let requests: Vec<StudentRequest<'_>> = queries
            .iter()
            .zip(samples)
            .flat_map(|(q, group)| {
                group.iter().map(move |s| StudentRequest {
                    query: q,
                    instruction: Some(s.text.as_str()),
                    k,
                })
            })
            .collect();
        let mut sampling = self.student_sampling.clone();
        sampling.seed = Some(derive_seed(self.seed, step, 1));
        let plain = self.plain_mix();
        let n = requests.len();
        let mut got: Vec<Option<Vec<StudentReply>>> = vec![None; n];
        let mut scored: Vec<Vec<Scored>> = vec![Vec::new(); n];
        let mut waiting: Vec<usize> = Vec::new();
        let mut t_reward = 0.0;
        // Scores the replies of the requests in `waiting` (one reward call).
        let mut flush = |waiting: &mut Vec<usize>,
                         got: &[Option<Vec<StudentReply>>],
                         scored: &mut [Vec<Scored>],
                         stats: &mut CollectStats|
         -> Result<()> {
            if waiting.is_empty() {
                return Ok(());
            }
            let t = Instant::now();
            let items: Vec<(&Query, Option<&str>, &StudentReply)> = waiting
                .iter()
                .flat_map(|&i| {
                    let rq = &requests[i];
                    got[i]
                        .iter()
                        .flatten()
                        .map(move |r| (rq.query, rq.instruction, r))
                })
                .collect();
            let mut out = score(reward, &plain, &items, stats)?.into_iter();
            for &i in waiting.iter() {
                scored[i] = out.by_ref().take(k).collect();
            }
            waiting.clear();
            t_reward += t.elapsed().as_secs_f64();
            Ok(())
        };
        let t = Instant::now();
        // The first error of the scoring side; the student is told to stop with a stand-in.
        let mut failed: Option<Error> = None;
        let handed = student.generate_each(&requests, &sampling, &mut |i, replies| {
            let res = if i >= n || got[i].is_some() || replies.len() != k {
                Err(Error::Contract(format!(
                    "the student handed over {} replies for request {i} of {n} (k = {k}, each \
                     request once)",
                    replies.len()
                )))
            } else {
                got[i] = Some(replies);
                waiting.push(i);
                if waiting.len() * k >= SCORE_CHUNK {
                    flush(&mut waiting, &got, &mut scored, &mut stats)
                } else {
                    Ok(())
                }
            };
            res.map_err(|e| {
                failed = Some(e);
                wst_core::Error::RewardCombination("scoring stopped the student".into())
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        handed?;
        flush(&mut waiting, &got, &mut scored, &mut stats)?;
        stats.t_reward += t_reward;
        stats.t_student += (t.elapsed().as_secs_f64() - t_reward).max(0.0);
        let replies: Vec<Vec<StudentReply>> =
            got.into_iter().map(Option::unwrap_or_default).collect();
        check_replies(&replies, requests.len(), k)?;
        check_failure_rate(
            &replies,
            self.max_failure_rate,
            &format!("of step {}", step + 1),
        )?;
        stats.replies = requests.len() * k;
        stats.failed_replies = replies.iter().flatten().filter(|r| r.is_failed()).count();
        let scored: Vec<Scored> = scored.into_iter().flatten().collect();

        let t = Instant::now();
        // With normalised components or normalise-then-sum, the values trained on come from the
        // mix; the rollouts keep the raw scores either way.
        let mixed = {
            let mut mix = self
                .mix
                .lock()
                .map_err(|_| Error::Contract("the reward mix lock is poisoned".into()))?;
            (!mix.is_plain()).then(|| {
                let batch: Vec<Option<&RewardComponents>> = scored
                    .iter()
                    .map(|x| x.as_ref().filter(|(_, s)| s.is_some()).map(|(c, _)| c))
                    .collect();
                let normed = mix.normalize_step(&batch);
                let groups: Vec<Vec<Vec<Option<RewardComponents>>>> = normed
                    .chunks(g * k)
                    .map(|q| q.chunks(k).map(<[_]>::to_vec).collect())
                    .collect();
                mix.sample_values(&groups, &baselines)
            })
        };
        stats.t_reward += t.elapsed().as_secs_f64();
        let scored_ms = now_ms();

        let mut rewards = Vec::with_capacity(queries.len());
        let mut records = Vec::with_capacity(requests.len());
        for (qi, (q, group)) in queries.iter().zip(samples).enumerate() {
            let mut group_r = Vec::with_capacity(g);
            for (gi, s) in group.iter().enumerate() {
                let idx = qi * g + gi;
                let sc = &scored[idx * k..(idx + 1) * k];
                let reward_mean = mean(sc.iter().flatten().filter_map(|(_, s)| *s));
                if reward_mean.is_none() {
                    stats.failed_samples += 1;
                }
                let r = reward_mean.map(|m| m - baselines[qi]);
                group_r.push(match &mixed {
                    Some(v) => v[qi][gi],
                    None => r,
                });
                records.push(RolloutRecord {
                    run_id: self.run_id.clone(),
                    step,
                    query_id: q.id.clone(),
                    query: q.text.clone(),
                    group_index: gi as u32,
                    instruction: s.text.clone(),
                    instruction_tokens: s.tokens.len() as u32,
                    truncated: s.truncated,
                    replies: replies[idx]
                        .iter()
                        .map(|r| r.as_text().map(str::to_string))
                        .collect(),
                    reward_components: sc
                        .iter()
                        .map(|x| x.as_ref().map(|(c, _)| c.clone()).unwrap_or_default())
                        .collect(),
                    rewards: sc
                        .iter()
                        .map(|x| x.as_ref().and_then(|(_, s)| *s))
                        .collect(),
                    reward_mean,
                    baseline: baselines[qi],
                    reward: r,
                    advantage: 0.0,
                    teacher_logprob_sum: s.logprobs.iter().map(|&x| f64::from(x)).sum(),
                    created_ms,
                    scored_ms,
                });
            }
            rewards.push(group_r);
        }
        Ok(Collected {
            prompts: drawn.prompts.clone(),
            samples: samples.clone(),
            rewards,
            records,
            stats,
        })
    }
}

/// Share of records whose instruction contains its query's reference answer (0 when no query has
/// a reference).
pub fn answer_share(records: &[RolloutRecord], queries: &[Query], group: usize) -> f64 {
    let mut n = 0usize;
    let mut hit = 0usize;
    for (i, r) in records.iter().enumerate() {
        if let Some(reference) = queries
            .get(i / group.max(1))
            .and_then(|q| q.reference.as_deref())
        {
            n += 1;
            hit += usize::from(contains_answer(&r.instruction, reference));
        }
    }
    if n == 0 {
        0.0
    } else {
        hit as f64 / n as f64
    }
}

/// What [`compute_baselines`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineReport {
    /// `(query id, s_i)` for every query visited, in order.
    pub values: Vec<(String, f64)>,
    /// Baselines computed (the rest came from the store).
    pub computed: usize,
    /// Seconds in the student.
    pub t_student: f64,
    /// Seconds in the reward.
    pub t_reward: f64,
}

/// Computes and caches the student baselines `s_i` of the first `limit` queries of `prompts` (all
/// of them when `limit` is `None` and the source knows its length), `chunk` queries per student
/// call (`wst baseline`). Queries already in `store` are not asked again.
pub fn compute_baselines(
    config: &Config,
    student: &mut dyn Student,
    reward: &mut dyn Reward,
    prompts: &mut dyn PromptSource,
    store: &mut dyn BaselineStore,
    limit: Option<usize>,
    chunk: usize,
) -> Result<BaselineReport> {
    let collector = Collector::from_config(config)?;
    let total = limit.or(prompts.len()).ok_or_else(|| {
        Error::Config("the prompt source has no known length: give a limit".into())
    })?;
    let dataset = prompts.dataset_id();
    let mut stats = CollectStats::default();
    let mut values = Vec::with_capacity(total);
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.max(1));
        let qs = prompts.next_batch(n)?;
        let s = collector.baselines(student, reward, store, &dataset, &qs, &mut stats)?;
        values.extend(qs.iter().map(|q| q.id.clone()).zip(s));
        left -= n;
    }
    Ok(BaselineReport {
        values,
        computed: stats.baselines_computed,
        t_student: stats.t_student,
        t_reward: stats.t_reward,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(spec: &[&[Option<&str>]]) -> Vec<Vec<StudentReply>> {
        spec.iter()
            .map(|rs| {
                rs.iter()
                    .map(|r| match r {
                        Some(e) => StudentReply::failed(*e, 1),
                        None => StudentReply::text("4"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn most_common_error_counts_failures_only() {
        let r = replies(&[&[Some("b"), None, Some("a")], &[Some("b"), None]]);
        assert_eq!(
            most_common_error(r.iter().flatten()),
            Some(("b".to_string(), 2))
        );
        // Ties go to the first in text order.
        let r = replies(&[&[Some("z"), Some("y")]]);
        assert_eq!(most_common_error(r.iter().flatten()).unwrap().0, "y");
        assert_eq!(
            most_common_error(replies(&[&[None]]).iter().flatten()),
            None
        );
    }

    #[test]
    fn failure_rate_above_the_limit_is_an_error_naming_the_commonest() {
        let half = replies(&[&[Some("HTTP 500"), None], &[Some("null content"), None]]);
        // 2 of 4 is not above 0.5.
        check_failure_rate(&half, 0.5, "of step 1").unwrap();
        let e = check_failure_rate(&half, 0.4, "of step 1")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "2 of 4 student replies of step 1 failed (50% > student.max_failure_rate = 0.4)"
            ) && e.contains("most common error (1 of 2): HTTP 500"),
            "{e}"
        );
        let all = replies(&[&[Some("x"), Some("x")]]);
        check_failure_rate(&all, 1.0, "").unwrap();
        assert!(check_failure_rate(&all, 0.99, "").is_err());
        check_failure_rate(&[], 0.0, "").unwrap();
    }
}
