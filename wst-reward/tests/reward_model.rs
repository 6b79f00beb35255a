//! Reward models through the `Reward` trait: the random `tiny-gpt2-rm` against the Python
//! reference, batching, and weighted harmless/helpful combinations.
//!
//! Run with `cargo test -p wst-reward --features reward-model`.
#![cfg(feature = "reward-model")]

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};
use wst_core::{
    Query, Reward, RewardConfig, RewardInput, RewardKind, RewardWeights, WeightedReward,
};
use wst_models::testing::{tiny_gpt2_rm_dir as tiny_dir, tiny_gpt2_rm_reference};
use wst_reward::{RewardModelError, RewardModelReward};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `(query, response, score)` of every reference pair.
fn reference() -> Vec<(String, String, f64)> {
    tiny_gpt2_rm_reference()
        .into_iter()
        .map(|p| (p.query, p.response, p.score))
        .collect()
}

fn config(models: &[(&str, &Path)], batch_size: usize) -> RewardConfig {
    RewardConfig {
        kind: RewardKind::RewardModel,
        weights: models.iter().map(|(n, _)| (n.to_string(), 0.5)).collect(),
        models: models
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_str().unwrap().to_string()))
            .collect(),
        batch_size,
        ..RewardConfig::default()
    }
}

/// The reference queries as `Query` values (already HH dialogues) and the replies without the
/// leading space the reward-model format adds back.
fn queries_and_replies() -> (Vec<Query>, Vec<String>) {
    let refs = reference();
    let queries = refs
        .iter()
        .enumerate()
        .map(|(i, r)| Query::new(format!("hh/{i}"), r.0.clone()))
        .collect();
    let replies = refs.iter().map(|r| r.1.trim_start().to_string()).collect();
    (queries, replies)
}

fn inputs<'a>(queries: &'a [Query], replies: &'a [String]) -> Vec<RewardInput<'a>> {
    queries
        .iter()
        .zip(replies)
        .map(|(query, reply)| RewardInput::new(query, reply))
        .collect()
}

#[test]
fn scores_through_the_reward_trait_equal_the_reference() -> TestResult {
    let tiny = tiny_dir();
    let refs = reference();
    let (queries, replies) = queries_and_replies();
    for batch_size in [1, 3, 16] {
        let cfg = config(&[("harmless", &tiny), ("helpful", &tiny)], batch_size);
        let mut r = RewardModelReward::from_config(&cfg, Device::Cpu)?;
        assert_eq!(r.component_names(), ["harmless", "helpful"]);
        let out = r.score(&inputs(&queries, &replies))?;
        assert_eq!(out.len(), refs.len());
        for (c, (_, _, score)) in out.iter().zip(&refs) {
            for name in ["harmless", "helpful"] {
                let got = c.get(name).unwrap();
                assert!(
                    (got - score).abs() < 1e-4,
                    "{name} bs {batch_size}: {got} vs {score}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn plain_questions_are_wrapped_in_the_hh_format() -> TestResult {
    let cfg = config(&[("helpful", &tiny_dir())], 4);
    let mut r = RewardModelReward::from_config(&cfg, Device::Cpu)?;
    let refs = reference();
    let q = Query::new("plain", "How do I bake bread?");
    let reply = "Mix flour, water, yeast and salt, knead, let it rise, then bake.";
    let out = r.score(&[RewardInput::new(&q, reply)])?;
    assert!((out[0].get("helpful").unwrap() - refs[0].2).abs() < 1e-4);
    assert!(r.score(&[])?.is_empty());
    Ok(())
}

#[test]
fn one_model_serving_two_components_is_loaded_once() -> TestResult {
    let tiny = tiny_dir();
    let r = RewardModelReward::from_config(
        &config(&[("harmless", &tiny), ("helpful", &tiny)], 2),
        Device::Cpu,
    )?;
    let a = r.model("harmless").unwrap() as *const _;
    let b = r.model("helpful").unwrap() as *const _;
    assert_eq!(a, b);
    assert!(r.model("honest").is_none());
    fn is_send<T: Send>(_: &T) {}
    is_send(&r);
    assert_eq!(r.batch_size(), 2);
    Ok(())
}

/// A copy of the tiny model whose `score.weight` is multiplied by `factor`, so its scores are
/// `factor` times the reference.
fn scaled_copy(factor: f64) -> tempfile::TempDir {
    let src = tiny_dir();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(src.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            if n == "score.weight" {
                (n, t * factor)
            } else {
                (n, t)
            }
        })
        .collect();
    Tensor::write_safetensors(&tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn weighted_combinations_of_harmless_and_helpful() -> TestResult {
    // harmless = the reference model, helpful = -2 x it: the weights change the scalar.
    let tiny = tiny_dir();
    let neg = scaled_copy(-2.0);
    let refs = reference();
    let (queries, replies) = queries_and_replies();
    let cfg = config(&[("harmless", &tiny), ("helpful", neg.path())], 4);
    for (wh, wp) in [(0.5, 0.5), (0.3, 0.7), (0.1, 0.9)] {
        let inner = RewardModelReward::from_config(&cfg, Device::Cpu)?;
        let w = RewardWeights::new([("harmless", wh), ("helpful", wp)])?;
        let mut r = WeightedReward::new(inner, w)?;
        let out = r.score_scalar(&inputs(&queries, &replies))?;
        for ((c, scalar), (_, _, s)) in out.iter().zip(&refs) {
            let (h, p) = (c.get("harmless").unwrap(), c.get("helpful").unwrap());
            assert!(
                (h - s).abs() < 1e-4 && (p + 2.0 * s).abs() < 2e-4,
                "{h} {p} vs {s}"
            );
            let expect = wh * s - wp * 2.0 * s;
            assert!(
                (scalar - expect).abs() < 3e-4,
                "w = [{wh}, {wp}]: {scalar} vs {expect}"
            );
            assert!((scalar - (wh * h + wp * p)).abs() < 1e-12);
        }
    }
    Ok(())
}

#[test]
fn weights_naming_a_missing_model_are_refused() -> TestResult {
    let inner =
        RewardModelReward::from_config(&config(&[("harmless", &tiny_dir())], 4), Device::Cpu)?;
    let w = RewardWeights::new([("harmless", 0.5), ("helpful", 0.5)])?;
    let e = WeightedReward::new(inner, w).err().unwrap().to_string();
    assert!(e.contains("helpful"), "{e}");
    Ok(())
}

#[test]
fn load_errors_name_the_component_and_model() {
    let e = RewardModelReward::from_config(
        &config(&[("harmless", Path::new("/no/such/rm"))], 4),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(e, RewardModelError::Load { .. }), "{e}");
    let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        msg.contains("harmless") && msg.contains("/no/such/rm"),
        "{msg}"
    );

    let e = RewardModelReward::from_config(&config(&[], 4), Device::Cpu).unwrap_err();
    assert!(matches!(e, RewardModelError::NoModels), "{e}");
    let e =
        RewardModelReward::from_config(&config(&[("a", &tiny_dir())], 0), Device::Cpu).unwrap_err();
    assert!(matches!(e, RewardModelError::ZeroBatch), "{e}");

    // An offline hub id that is not in the cache.
    let e = RewardModelReward::load(
        &BTreeMap::from([("helpful".to_string(), "no-such-org/no-such-rm".to_string())]),
        Device::Cpu,
        Kind::Float,
        4,
    )
    .unwrap_err();
    let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        msg.contains("no-such-org/no-such-rm") && msg.contains("config.json"),
        "{msg}"
    );
}
