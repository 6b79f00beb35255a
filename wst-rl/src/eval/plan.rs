//! The evaluation plan: which conditions run, with which reward weights, and which paired
//! differences the report gives. `wst eval --conditions none,teacher,teacher:RUN --weights
//! 0.5,0.9` becomes one run per condition (per weight for a condition that mentions `{w}`),
//! each scored once and re-weighted for the others.

use wst_core::{EvalSample, RewardWeights};

use crate::{Error, Result};

/// What writes the instructions of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum ConditionKind {
    /// The student alone.
    None,
    /// The config's teacher model, untrained.
    Untrained,
    /// A teacher from a path (a run or checkpoint folder, or another model).
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

/// Parses `KIND[:ARG][=LABEL]`: `none`, `teacher`, `teacher:PATH`, `api-teacher:MODEL@URL`.
pub fn parse_condition(text: &str) -> Result<Condition> {
    let text = text.trim();
    let bad = |why: &str| Error::Config(format!("condition `{text}`: {why}"));
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
            _ => return Err(bad("write api-teacher:MODEL@URL")),
        },
        _ => {
            return Err(bad(
                "expected none, teacher, teacher:PATH or api-teacher:MODEL@URL",
            ))
        }
    };
    let label = label.unwrap_or_else(|| match &kind {
        ConditionKind::None => "student alone".into(),
        ConditionKind::Untrained => "untrained teacher".into(),
        ConditionKind::Teacher(p) => format!("teacher {p}"),
        ConditionKind::Api { model, .. } => format!("API teacher {model}"),
    });
    Ok(Condition { kind, label })
}

/// The two reward components a weighted evaluation trades off (`eval.weight_axis`): weight
/// `1 - w` on `first`, `w` on `second`.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightAxis {
    /// The component weighted `1 - w` (HH-RLHF: `harmless`).
    pub first: String,
    /// The component weighted `w` (HH-RLHF: `helpful`).
    pub second: String,
}

impl WeightAxis {
    /// The axis over `names[0]` and `names[1]`, checked against the components the reward
    /// produces.
    pub fn new(names: &[String; 2], components: &[String]) -> Result<Self> {
        for n in names {
            if !components.contains(n) {
                return Err(Error::Config(format!(
                    "--weights trades off reward components `{}` and `{}` (eval.weight_axis), \
                     but the reward has [{}]",
                    names[0],
                    names[1],
                    components.join(", ")
                )));
            }
        }
        Ok(WeightAxis {
            first: names[0].clone(),
            second: names[1].clone(),
        })
    }

    /// The weights of `w`.
    pub fn weights(&self, w: f64) -> Result<RewardWeights> {
        if !(0.0..=1.0).contains(&w) {
            return Err(Error::Config(format!("--weights: {w} is outside [0, 1]")));
        }
        Ok(RewardWeights::new([
            (self.first.as_str(), 1.0 - w),
            (self.second.as_str(), w),
        ])?)
    }
}

/// One condition run: the condition, the weight its reward uses (`None`: the config's), and
/// the weights its samples are reported under.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    /// The condition (with `{w}` replaced).
    pub condition: Condition,
    /// The weight this run scores with.
    pub weight: Option<f64>,
    /// The weights its samples are re-weighted to (one report row each).
    pub targets: Vec<Option<f64>>,
}

/// Conditions x weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The runs, in the order given.
    pub runs: Vec<PlannedRun>,
    /// The weights of a weighted evaluation (empty: the config's weights).
    pub weights: Vec<f64>,
    /// The weight axis of a weighted evaluation.
    pub axis: Option<WeightAxis>,
}

impl Plan {
    /// Expands `conditions` (each optionally with `{w}`) over `weights`. Every condition and
    /// weight is checked before anything runs.
    pub fn new(conditions: &[String], weights: &[f64], axis: Option<WeightAxis>) -> Result<Self> {
        if !weights.is_empty() && axis.is_none() {
            return Err(Error::Config("--weights needs a weight axis".into()));
        }
        if let Some(a) = &axis {
            for w in weights {
                a.weights(*w)?;
            }
        }
        let ws: Vec<Option<f64>> = if weights.is_empty() {
            vec![None]
        } else {
            weights.iter().map(|w| Some(*w)).collect()
        };
        let mut runs = Vec::new();
        for text in conditions {
            parse_condition(&text.replace("{w}", "0.5"))?;
            if text.contains("{w}") {
                for w in &ws {
                    let t = match w {
                        Some(w) => text.replace("{w}", &format!("{w}")),
                        None => text.clone(),
                    };
                    runs.push(PlannedRun {
                        condition: parse_condition(&t)?,
                        weight: *w,
                        targets: vec![*w],
                    });
                }
            } else {
                // A condition that does not depend on w runs once and is re-weighted.
                runs.push(PlannedRun {
                    condition: parse_condition(text)?,
                    weight: ws[0],
                    targets: ws.clone(),
                });
            }
        }
        Ok(Plan {
            runs,
            weights: weights.to_vec(),
            axis,
        })
    }

    /// The label of a condition's row at weight `w`.
    pub fn label(condition: &str, w: Option<f64>) -> String {
        match w {
            Some(w) => format!("{condition} (w={w})"),
            None => condition.to_string(),
        }
    }

    /// The reward weights of `w` (`None`: `default`).
    pub fn weights_for(&self, w: Option<f64>, default: &RewardWeights) -> Result<RewardWeights> {
        match (w, &self.axis) {
            (Some(w), Some(a)) => a.weights(w),
            _ => Ok(default.clone()),
        }
    }

    /// The samples of `run` as reported: one copy per target weight, labelled and (for a weight
    /// other than the one scored with) re-weighted from the components.
    pub fn report_samples(
        &self,
        run: &PlannedRun,
        samples: &[EvalSample],
    ) -> Result<Vec<EvalSample>> {
        let mut out = Vec::with_capacity(samples.len() * run.targets.len());
        for &tw in &run.targets {
            let wts = match (tw, &self.axis) {
                (Some(w), Some(a)) => Some(a.weights(w)?),
                _ => None,
            };
            for s in samples {
                let mut s = s.clone();
                s.weight = tw;
                s.condition = Plan::label(&run.condition.label, tw);
                if let (Some(wts), Some(_)) = (&wts, s.reward) {
                    s.reward = Some(wts.combine(&s.components)?);
                }
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The paired differences worth reporting, per weight: every teacher against the student
    /// alone, and every teacher from a path (a trained one) against the untrained teacher.
    pub fn comparisons(&self) -> Vec<(String, String)> {
        let ws: Vec<Option<f64>> = if self.weights.is_empty() {
            vec![None]
        } else {
            self.weights.iter().map(|w| Some(*w)).collect()
        };
        let alone = self.first_label(|k| matches!(k, ConditionKind::None));
        let untrained = self.first_label(|k| matches!(k, ConditionKind::Untrained));
        let mut pairs = Vec::new();
        for w in ws {
            for r in &self.runs {
                if !r.targets.contains(&w) {
                    continue;
                }
                let me = Plan::label(&r.condition.label, w);
                if let (ConditionKind::Teacher(_), Some(u)) = (&r.condition.kind, &untrained) {
                    pairs.push((me.clone(), Plan::label(u, w)));
                }
                if let (false, Some(a)) = (matches!(r.condition.kind, ConditionKind::None), &alone)
                {
                    pairs.push((me, Plan::label(a, w)));
                }
            }
        }
        pairs.dedup();
        pairs
    }

    /// The label of the first run whose kind is `wanted`.
    fn first_label(&self, wanted: impl Fn(&ConditionKind) -> bool) -> Option<String> {
        self.runs
            .iter()
            .find(|r| wanted(&r.condition.kind))
            .map(|r| r.condition.label.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wst_core::RewardComponents;

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

    fn axis() -> WeightAxis {
        let names = ["harmless".to_string(), "helpful".to_string()];
        WeightAxis::new(&names, &names).unwrap()
    }

    #[test]
    fn the_axis_is_checked_against_the_reward() {
        let e = WeightAxis::new(
            &["harmless".into(), "helpful".into()],
            &["correct".to_string()],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("harmless") && e.contains("[correct]"), "{e}");
        let w = axis().weights(0.7).unwrap();
        let c = RewardComponents::from_pairs([("harmless", 1.0), ("helpful", 0.0)]);
        assert!((w.combine(&c).unwrap() - 0.3).abs() < 1e-12);
        assert!(axis().weights(1.5).is_err());
        let other = WeightAxis::new(
            &["safe".into(), "useful".into()],
            &["safe".to_string(), "useful".to_string()],
        )
        .unwrap();
        assert_eq!(other.second, "useful");
    }

    #[test]
    fn conditions_times_weights_and_their_comparisons() {
        let conds: Vec<String> = ["none", "teacher", "teacher:runs/w{w}=trained"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plan = Plan::new(&conds, &[0.5, 0.9], Some(axis())).unwrap();
        // none and teacher once (re-weighted to both), trained once per weight.
        assert_eq!(plan.runs.len(), 4);
        assert_eq!(plan.runs[0].targets, vec![Some(0.5), Some(0.9)]);
        assert_eq!(
            plan.runs[2].condition.kind,
            ConditionKind::Teacher("runs/w0.5".into())
        );
        assert_eq!(plan.runs[3].targets, vec![Some(0.9)]);
        let pairs = plan.comparisons();
        assert!(pairs.contains(&("trained (w=0.9)".into(), "untrained teacher (w=0.9)".into())));
        assert!(pairs.contains(&("trained (w=0.5)".into(), "student alone (w=0.5)".into())));
        assert!(pairs.contains(&(
            "untrained teacher (w=0.5)".into(),
            "student alone (w=0.5)".into()
        )));
        assert!(!pairs
            .iter()
            .any(|(a, b)| a.contains("0.5") && b.contains("0.9")));
        assert_eq!(pairs.len(), 6);

        let sample = EvalSample {
            condition: "student alone".into(),
            query_id: "q".into(),
            sample: 0,
            instruction: None,
            answer_in_instruction: false,
            reply: Some("r".into()),
            components: RewardComponents::from_pairs([("harmless", 1.0), ("helpful", 0.0)]),
            reward: Some(0.5),
            weight: Some(0.5),
            error: None,
        };
        let out = plan.report_samples(&plan.runs[0], &[sample]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].condition, "student alone (w=0.9)");
        assert!((out[1].reward.unwrap() - 0.1).abs() < 1e-12);

        assert!(Plan::new(&conds, &[2.0], Some(axis())).is_err());
        assert!(Plan::new(&["bogus".to_string()], &[], None).is_err());
        let plain = Plan::new(&conds[..2], &[], None).unwrap();
        assert_eq!(
            plain.comparisons(),
            vec![("untrained teacher".to_string(), "student alone".to_string())]
        );
    }
}
