//! Reward mixing in rollout collection: the rollouts keep raw components and their raw weighted
//! sum; normalise-then-sum and running normalisation change only the values trained on.

use wst_core::{
    Aggregation, ComponentKind, MemoryBaselines, Normalize, PromptSource, Result, Reward,
    RewardComponentConfig, RewardComponents, RewardInput,
};
use wst_rl::collect::{Collected, Collector};

use crate::support::{config, mock_student, policy, source, ExactReward};

/// `correct` (exact answer) and `brief` (1 / reply length), so the two components disagree.
struct TwoParts;

impl Reward for TwoParts {
    fn component_names(&self) -> Vec<String> {
        vec!["correct".into(), "brief".into()]
    }
    fn score(&mut self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardComponents>> {
        let mut out = ExactReward.score(inputs)?;
        for (c, i) in out.iter_mut().zip(inputs) {
            c.0.insert("brief".into(), 1.0 / (1.0 + i.reply.len() as f64));
        }
        Ok(out)
    }
}

fn mixed_config(agg: Aggregation, norm: Normalize) -> wst_core::Config {
    let mut c = config(1, 5);
    c.reward.weights = [("correct".into(), 1.0), ("brief".into(), -2.0)].into();
    c.reward.components = [
        (
            "correct".into(),
            RewardComponentConfig::of(ComponentKind::Math),
        ),
        (
            "brief".into(),
            RewardComponentConfig {
                normalize: norm,
                ..RewardComponentConfig::of(ComponentKind::AnswerLeak)
            },
        ),
    ]
    .into();
    c.grpo.multi_objective_aggregation = agg;
    c.validate().unwrap();
    c
}

/// One collection step of `cfg` with the two-part reward and a mock student (the collector
/// holds the running statistics it updated).
fn collect_one_step(cfg: &wst_core::Config) -> (Collector, Collected) {
    let collector = Collector::from_config(cfg).unwrap();
    let mut src = source(5);
    let queries = src.next_batch(cfg.grpo.batch_size).unwrap();
    let col = collector
        .collect(
            0,
            &mut policy(5),
            &mut mock_student(),
            &mut TwoParts,
            &mut MemoryBaselines::default(),
            "sums",
            &queries,
        )
        .unwrap();
    (collector, col)
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn std(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

#[test]
fn normalize_then_sum_z_scores_each_component_within_its_group() {
    let cfg = mixed_config(Aggregation::NormalizeThenSum, Normalize::None);
    let (_, col) = collect_one_step(&cfg);
    let g = cfg.grpo.group_size;
    for (qi, group) in col.records.chunks(g).enumerate() {
        // The rollouts are raw.
        for r in group {
            for (c, s) in r.reward_components.iter().zip(&r.rewards) {
                let raw = c.get("correct").unwrap() - 2.0 * c.get("brief").unwrap();
                assert_eq!(s.unwrap(), raw);
            }
            assert_eq!(r.reward, r.reward_mean.map(|m| m - r.baseline));
        }
        // The trained value: per component, the sample's mean over K, z-scored in the group.
        let per = |name: &str| -> Vec<f64> {
            group
                .iter()
                .map(|r| {
                    mean(
                        &r.reward_components
                            .iter()
                            .map(|c| c.get(name).unwrap())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect()
        };
        let mut want = vec![0.0; g];
        for (name, w) in [("correct", 1.0), ("brief", -2.0)] {
            let v = per(name);
            let (m, s) = (mean(&v), std(&v));
            if v.iter().all(|x| (x - v[0]).abs() < 1e-12) {
                continue;
            }
            for (o, x) in want.iter_mut().zip(&v) {
                *o += w * (x - m) / (s + 1e-4);
            }
        }
        for (gi, w) in want.iter().enumerate() {
            let got = col.rewards[qi][gi].unwrap();
            assert!(
                (got - w).abs() < 1e-9,
                "query {qi} sample {gi}: {got} vs {w}"
            );
        }
    }
    assert_eq!(
        cfg.grpo.advantage_scale(),
        wst_core::ScaleRewards::Batch,
        "the summed z-scores are normalised over the batch"
    );
}

#[test]
fn running_normalisation_changes_only_the_trained_values() {
    let cfg = mixed_config(Aggregation::SumThenNormalize, Normalize::Running);
    let (collector, col) = collect_one_step(&cfg);
    // After one step the running statistics are those of this step's `brief` scores.
    let all: Vec<f64> = col
        .records
        .iter()
        .flat_map(|r| r.reward_components.iter().map(|c| c.get("brief").unwrap()))
        .collect();
    let (m, s) = (mean(&all), std(&all));
    let st = collector.mix.lock().unwrap().running_stats()["brief"];
    assert_eq!(st.count, all.len() as u64);
    assert!((st.mean - m).abs() < 1e-12 && (st.std() - s).abs() < 1e-12);
    let g = cfg.grpo.group_size;
    for (i, r) in col.records.iter().enumerate() {
        let z: Vec<f64> = r
            .reward_components
            .iter()
            .map(|c| c.get("correct").unwrap() - 2.0 * (c.get("brief").unwrap() - m) / (s + 1e-4))
            .collect();
        let got = col.rewards[i / g][i % g].unwrap();
        assert!((got - mean(&z)).abs() < 1e-9, "{got} vs {}", mean(&z));
        // Raw in the rollouts.
        let raw = r.reward_components[0].get("correct").unwrap()
            - 2.0 * r.reward_components[0].get("brief").unwrap();
        assert_eq!(r.rewards[0], Some(raw));
    }
}
