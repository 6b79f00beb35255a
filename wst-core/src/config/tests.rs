//! Tests of the whole config: validation, TOML round trips, `--set` overrides.

use super::*;
use crate::InstructionRole;
use std::collections::BTreeMap;

fn minimal() -> Config {
    let mut c = Config::default();
    c.teacher.model = "t.gguf".into();
    c.student.model = "s.gguf".into();
    c
}

#[test]
fn default_with_models_is_valid() {
    minimal().validate().unwrap();
}

#[test]
fn default_needs_models() {
    let p = Config::default().problems();
    assert!(p.iter().any(|m| m.starts_with("teacher.model")), "{p:?}");
    assert!(p.iter().any(|m| m.starts_with("student.model")), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut c = minimal();
    c.grpo.group_size = 1;
    c.grpo.lr = -1.0;
    c.grpo.betas = [0.9, 1.5];
    c.student.samples = 0;
    c.student.kind = StudentKind::Openai;
    c.student.base_urls = vec!["localhost:8000".into()];
    c.reward.weights = BTreeMap::from([("correct".into(), 0.5)]);
    c.data.dataset = DatasetKind::Gsm8k;
    c.templates.student_user = Some("{% if %}".into());
    let err = c.validate().unwrap_err();
    let Error::InvalidConfig(p) = &err else {
        panic!("{err}")
    };
    for key in [
        "grpo.group_size",
        "grpo.lr",
        "grpo.betas[1]",
        "student.samples",
        "student.base_urls",
        "reward.weights must sum to 1",
        "data.path",
        "templates.student_user",
    ] {
        assert!(p.iter().any(|m| m.contains(key)), "no `{key}` in {p:#?}");
    }
    assert_eq!(p.len(), 8, "{p:#?}");
    // The Display lists each one.
    assert_eq!(err.to_string().matches("\n  - ").count(), 8);
}

#[test]
fn reward_model_weights_need_models() {
    let mut c = minimal();
    c.data.dataset = DatasetKind::HhRlhf;
    c.data.path = Some("x".into());
    c.reward.kind = RewardKind::RewardModel;
    c.reward.weights = BTreeMap::from([("harmless".into(), 0.5), ("helpful".into(), 0.5)]);
    c.reward.models = BTreeMap::from([("harmless".into(), "rm1".into())]);
    let p = c.problems();
    assert_eq!(
        p,
        vec!["reward.weights.helpful has no model in reward.models"]
    );
}

#[test]
fn toml_round_trip_and_unknown_keys() {
    let c = minimal();
    let back = Config::from_toml_str(&c.to_toml(), "x").unwrap();
    assert_eq!(back, c);
    let e = Config::from_toml_str("[grpo]\nlearning_rate = 1.0\n", "cfg.toml").unwrap_err();
    let msg = error_chain(&e);
    assert!(
        msg.contains("cfg.toml") && msg.contains("learning_rate"),
        "{msg}"
    );
}

#[test]
fn overrides_set_nested_values_with_types() {
    let text = "[run]\nname = \"a\"\n[grpo]\nlr = 1e-5\n";
    let c = Config::from_toml_with_overrides(
        text,
        "x",
        &[
            "grpo.lr=3e-4".into(),
            "run.name=b".into(),
            "teacher.sampling.max_new_tokens=40".into(),
            "student.base_urls=[\"http://h:1/v1\"]".into(),
            "reward.weights={harmless=0.3, helpful=0.7}".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.grpo.lr, 3e-4);
    assert_eq!(c.run.name, "b");
    assert_eq!(c.teacher.sampling.max_new_tokens, 40);
    assert_eq!(c.student.base_urls, vec!["http://h:1/v1"]);
    assert_eq!(c.reward.weights["helpful"], 0.7);
}

#[test]
fn student_instruction_role_and_failure_rate() {
    let c = Config::from_toml_str(
        "[teacher]\nmodel = \"t\"\n[student]\nmodel = \"s\"\ninstruction_role = \"user\"\n",
        "x",
    )
    .unwrap();
    assert_eq!(c.student.instruction_role, InstructionRole::User);
    assert_eq!(c.student.max_failure_rate, 0.5);
    assert_eq!(minimal().student.instruction_role, InstructionRole::Auto);
    let e = Config::from_toml_str("[student]\ninstruction_role = \"assistant\"\n", "x");
    assert!(error_chain(&e.unwrap_err()).contains("assistant"));
    for bad in [-0.1, 1.5, f64::NAN] {
        let mut c = minimal();
        c.student.max_failure_rate = bad;
        let p = c.problems();
        assert!(
            p.len() == 1 && p[0].starts_with("student.max_failure_rate"),
            "{p:?}"
        );
    }
    let mut c = minimal();
    c.student.max_failure_rate = 1.0;
    c.validate().unwrap();
}

#[test]
fn bad_overrides_are_named() {
    let mut t = toml::Table::new();
    assert!(apply_override(&mut t, "novalue").is_err());
    assert!(apply_override(&mut t, "a..b=1").is_err());
    apply_override(&mut t, "a=1").unwrap();
    let e = apply_override(&mut t, "a.b=2").unwrap_err().to_string();
    assert!(e.contains("`a` is a value"), "{e}");
    let e = Config::from_toml_with_overrides("", "x", &["grpo.lr=fast".into()]).unwrap_err();
    assert!(
        error_chain(&e).contains("--set grpo.lr=fast"),
        "{}",
        error_chain(&e)
    );
}

#[test]
fn teacher_revision_pins_hub_ids_only() {
    let mut c = Config::default();
    c.teacher.model = "org/model".into();
    assert_eq!(c.teacher.model_spec(), "org/model");
    c.teacher.revision = Some("0123abcd".into());
    assert_eq!(c.teacher.model_spec(), "org/model@0123abcd");
    c.teacher.model = "org/model@v1".into();
    assert_eq!(c.teacher.model_spec(), "org/model@v1");
    let mut v = c.clone();
    v.teacher.revision = Some("v1".into());
    assert!(v
        .problems()
        .iter()
        .all(|m| !m.starts_with("teacher.revision")));
    assert!(
        c.problems()
            .iter()
            .any(|m| m.contains("names revision `v1`")),
        "{:?}",
        c.problems()
    );
    c.teacher.model = "/no/such/local/model".into();
    assert!(c.problems().iter().any(|m| m.contains("is no hub id")));
}

/// `FromStr`/`Display` of the option enums use serde's TOML names, and an unknown name lists
/// the choices.
#[test]
fn option_names_agree_with_serde() {
    fn check<T>()
    where
        T: std::str::FromStr<Err = String>
            + std::fmt::Display
            + serde::de::DeserializeOwned
            + PartialEq
            + std::fmt::Debug,
    {
        let names: Vec<String> = T::from_str("?")
            .unwrap_err()
            .split_once(" is not one of ")
            .unwrap()
            .1
            .split(", ")
            .map(String::from)
            .collect();
        assert!(names.len() >= 3, "{names:?}");
        for n in names {
            let parsed: T = n.parse().unwrap();
            assert_eq!(parsed.to_string(), n);
            let t: toml::Table = toml::from_str(&format!("v = {n:?}")).unwrap();
            let from_toml: T = t["v"].clone().try_into().unwrap();
            assert_eq!(from_toml, parsed, "{n}");
        }
    }
    check::<DeviceChoice>();
    check::<DType>();
    check::<DatasetKind>();
    check::<ArithLevel>();
    assert_eq!(
        "tpu".parse::<DeviceChoice>().unwrap_err(),
        "`tpu` is not one of auto, cpu, cuda"
    );
}

#[test]
fn grpo_async_is_read_and_written_under_its_toml_name() {
    let c = Config::from_toml_with_overrides("", "test", &["grpo.async=true".to_string()]).unwrap();
    assert!(c.grpo.async_rollouts && c.grpo.off_policy());
    let text = c.to_toml();
    assert!(text.contains("async = true"), "{text}");
    let back = Config::from_toml_str(&text, "written").unwrap();
    assert_eq!(back, c);
}
