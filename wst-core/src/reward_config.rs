//! `[reward.components.NAME]`: one reward component per table, of one of the kinds below,
//! combined by `reward.weights`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Normalize, RewardConfig, RewardKind};

/// What scores a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// 1 when the reply's final answer equals the reference, else 0.
    Math,
    /// A GPT-2 sequence-classifier reward model (`model`).
    RewardModel,
    /// A user's program speaking JSON lines on stdin/stdout (`command`).
    Command,
    /// A remote reward endpoint, batched POST (`url`), OpenRLHF's remote-RM shape.
    Http,
    /// An LLM judge behind an OpenAI-compatible endpoint (`url`, `model`, `template`).
    Judge,
    /// 1 when the *instruction* states an answer, else 0 (give it a negative weight).
    AnswerLeak,
}

/// One `[reward.components.NAME]` table. Which fields apply depends on `kind`; the defaults suit
/// each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardComponentConfig {
    /// The scorer (required).
    pub kind: Option<ComponentKind>,
    /// `none` or `running` (z-score against the running mean and std of this component).
    pub normalize: Normalize,
    /// Math: fall back to the last number of a reply (default: `reward.last_number_fallback`).
    pub last_number_fallback: Option<bool>,
    /// Reward model: path or hub id. Judge: the model name sent in requests.
    pub model: Option<String>,
    /// Command: the program and its arguments, e.g. `["python3", "my_reward.py"]`.
    pub command: Vec<String>,
    /// Command: working folder of the program (default: the current one).
    pub workdir: Option<String>,
    /// Command: names of the components the program returns as `{"components": {...}}`; empty:
    /// it returns `{"score": x}`, stored under the table's name.
    pub outputs: Vec<String>,
    /// Http: the endpoint URL (POSTed to as is). Judge: the base URL, ending before
    /// `/chat/completions`.
    pub url: Option<String>,
    /// Http, judge: the environment variable holding the API key (sent as a bearer token).
    pub api_key_env: Option<String>,
    /// Command: seconds per reply. Http, judge: seconds per request attempt.
    pub timeout_s: f64,
    /// Http, judge: retries after the first attempt (429, 5xx, timeouts, garbage).
    pub max_retries: u32,
    /// Http, judge: requests in flight at once.
    pub max_concurrency: usize,
    /// Http: replies per POST. Reward model: pairs per forward batch.
    pub batch_size: usize,
    /// Judge: minijinja template of the user message (`query`, `reference`, `reply`,
    /// `instruction`, `metadata`).
    pub template: Option<String>,
    /// Judge: optional system message.
    pub system: Option<String>,
    /// Judge: regex whose first capture group (else whole match) is the score; the last match
    /// in the answer counts.
    pub score_regex: String,
    /// Judge: the range of the judge's scale, mapped linearly onto [0, 1].
    pub score_range: [f64; 2],
    /// Judge: tokens the judge may write.
    pub max_tokens: usize,
    /// Judge: sampling temperature.
    pub temperature: f64,
}

impl Default for RewardComponentConfig {
    fn default() -> Self {
        RewardComponentConfig {
            kind: None,
            normalize: Normalize::None,
            last_number_fallback: None,
            model: None,
            command: Vec::new(),
            workdir: None,
            outputs: Vec::new(),
            url: None,
            api_key_env: None,
            timeout_s: 60.0,
            max_retries: 3,
            max_concurrency: 8,
            batch_size: 16,
            template: None,
            system: None,
            score_regex: r"(?i)score\s*[:=]?\s*(-?\d+(?:\.\d+)?)".into(),
            score_range: [0.0, 10.0],
            max_tokens: 256,
            temperature: 0.0,
        }
    }
}

impl RewardComponentConfig {
    /// A table of `kind` with defaults.
    pub fn of(kind: ComponentKind) -> Self {
        RewardComponentConfig {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// The component names this table produces: `outputs` for a command that lists them, else
    /// the table's own name.
    pub fn produces(&self, name: &str) -> Vec<String> {
        if self.kind == Some(ComponentKind::Command) && !self.outputs.is_empty() {
            self.outputs.clone()
        } else {
            vec![name.to_string()]
        }
    }

    fn problems(&self, name: &str, p: &mut Vec<String>) {
        let key = |f: &str| format!("reward.components.{name}.{f}");
        let Some(kind) = self.kind else {
            p.push(format!(
                "{} is required (math, reward-model, command, http, judge, answer-leak)",
                key("kind")
            ));
            return;
        };
        let url_ok = |u: &Option<String>| {
            u.as_deref()
                .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match kind {
            ComponentKind::Math | ComponentKind::AnswerLeak => {}
            ComponentKind::RewardModel => {
                if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                    p.push(format!("{} must name a reward model", key("model")));
                }
                if self.batch_size == 0 {
                    p.push(format!("{} must be >= 1", key("batch_size")));
                }
            }
            ComponentKind::Command => {
                if self.command.is_empty() || self.command[0].trim().is_empty() {
                    p.push(format!(
                        "{} must give the program and its arguments, e.g. [\"python3\", \"my_reward.py\"]",
                        key("command")
                    ));
                }
                if !positive(self.timeout_s) {
                    p.push(format!(
                        "{} must be > 0, got {}",
                        key("timeout_s"),
                        self.timeout_s
                    ));
                }
            }
            ComponentKind::Http | ComponentKind::Judge => {
                if !url_ok(&self.url) {
                    p.push(format!(
                        "{} must be an http:// or https:// URL, got {:?}",
                        key("url"),
                        self.url
                    ));
                }
                if !positive(self.timeout_s) {
                    p.push(format!(
                        "{} must be > 0, got {}",
                        key("timeout_s"),
                        self.timeout_s
                    ));
                }
                if self.max_concurrency == 0 {
                    p.push(format!("{} must be >= 1", key("max_concurrency")));
                }
                if let Some(env) = &self.api_key_env {
                    if env.is_empty() || env.contains(['=', ' ']) {
                        p.push(format!(
                            "{} must be an environment variable name, got {env:?}",
                            key("api_key_env")
                        ));
                    }
                }
                if kind == ComponentKind::Http && self.batch_size == 0 {
                    p.push(format!("{} must be >= 1", key("batch_size")));
                }
                if kind == ComponentKind::Judge {
                    if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                        p.push(format!("{} must name the judge model", key("model")));
                    }
                    match &self.template {
                        None => p.push(format!(
                            "{} is required: the judge's prompt, e.g. \"Rate this answer to {{{{ query }}}}: {{{{ reply }}}}\"",
                            key("template")
                        )),
                        Some(t) => {
                            let mut env = minijinja::Environment::new();
                            if let Err(e) = env.add_template("judge", t) {
                                p.push(format!("{}: {e}", key("template")));
                            }
                        }
                    }
                    let [lo, hi] = self.score_range;
                    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                        p.push(format!(
                            "{} must be [low, high] with low < high, got [{lo}, {hi}]",
                            key("score_range")
                        ));
                    }
                    if self.score_regex.is_empty() {
                        p.push(format!("{} must not be empty", key("score_regex")));
                    }
                    if self.max_tokens == 0 {
                        p.push(format!("{} must be >= 1", key("max_tokens")));
                    }
                }
            }
        }
        if !self.outputs.is_empty() && kind != ComponentKind::Command {
            p.push(format!(
                "{} applies only to kind = \"command\"",
                key("outputs")
            ));
        }
    }
}

impl RewardConfig {
    /// The components in use: `[reward.components]` when given, else the shorthand of
    /// `reward.kind` (`math`: one component `correct`; `reward-model`: one per `reward.models`
    /// entry).
    pub fn resolved_components(&self) -> BTreeMap<String, RewardComponentConfig> {
        if !self.components.is_empty() {
            return self.components.clone();
        }
        match self.kind {
            RewardKind::Math => BTreeMap::from([(
                "correct".to_string(),
                RewardComponentConfig::of(ComponentKind::Math),
            )]),
            RewardKind::RewardModel => self
                .models
                .iter()
                .map(|(name, model)| {
                    (
                        name.clone(),
                        RewardComponentConfig {
                            model: Some(model.clone()),
                            batch_size: self.batch_size,
                            ..RewardComponentConfig::of(ComponentKind::RewardModel)
                        },
                    )
                })
                .collect(),
        }
    }

    /// Names of every component the reward produces, in table order.
    pub fn component_names(&self) -> Vec<String> {
        self.resolved_components()
            .iter()
            .flat_map(|(n, c)| c.produces(n))
            .collect()
    }

    /// The per-component normalisation (by produced component name).
    pub fn normalization(&self) -> BTreeMap<String, Normalize> {
        self.resolved_components()
            .iter()
            .flat_map(|(n, c)| c.produces(n).into_iter().map(|p| (p, c.normalize)))
            .collect()
    }

    /// Problems of `[reward.components]` and their weights (empty when no table is given).
    pub fn component_problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.components.is_empty() {
            return p;
        }
        if !self.models.is_empty() {
            p.push(
                "reward.models is the shorthand of reward.kind = \"reward-model\"; with \
                 [reward.components] give each reward model its own table (kind = \
                 \"reward-model\", model = ...)"
                    .into(),
            );
        }
        let mut seen = BTreeMap::new();
        for (name, c) in &self.components {
            c.problems(name, &mut p);
            for out in c.produces(name) {
                if let Some(other) = seen.insert(out.clone(), name.clone()) {
                    p.push(format!(
                        "reward component `{out}` is produced by both reward.components.{other} \
                         and reward.components.{name}"
                    ));
                }
            }
        }
        p.extend(crate::RewardWeights(self.weights.clone()).signed_problems("reward.weights"));
        for k in self.weights.keys() {
            if !seen.contains_key(k) {
                p.push(format!(
                    "reward.weights.{k}: no component of that name (components: [{}])",
                    seen.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    const MIXED: &str = r#"
[teacher]
model = "t"
[student]
model = "s"
[reward.weights]
correct = 1.0
judge = 0.3
brevity = 0.1
politeness = 0.1
leak = -0.5
[reward.components.correct]
kind = "math"
[reward.components.judge]
kind = "judge"
url = "http://127.0.0.1:8000/v1"
model = "judge-7b"
template = "Rate {{ reply }} for {{ query }}. Score: 0-10"
normalize = "running"
[reward.components.style]
kind = "command"
command = ["python3", "style.py"]
outputs = ["brevity", "politeness"]
[reward.components.leak]
kind = "answer-leak"
"#;

    #[test]
    fn mixed_components_parse_validate_and_round_trip() {
        let c = Config::from_toml_str(MIXED, "mixed").unwrap();
        c.validate().unwrap();
        assert_eq!(
            c.reward.component_names(),
            vec!["correct", "judge", "leak", "brevity", "politeness"]
        );
        assert_eq!(c.reward.normalization()["judge"], Normalize::Running);
        assert_eq!(c.reward.normalization()["brevity"], Normalize::None);
        let w = c.reward_weights().unwrap();
        assert_eq!(w.0["leak"], -0.5);
        let back = Config::from_toml_str(&c.to_toml(), "x").unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn component_problems_are_named() {
        let mut c = Config::from_toml_str(MIXED, "mixed").unwrap();
        c.reward.weights.insert("honesty".into(), 1.0);
        let j = c.reward.components.get_mut("judge").unwrap();
        j.url = Some("localhost:8000".into());
        j.score_range = [10.0, 0.0];
        j.template = Some("{% if %}".into());
        c.reward
            .components
            .insert("odd".into(), RewardComponentConfig::default());
        c.reward.components.insert(
            "cmd".into(),
            RewardComponentConfig {
                outputs: vec!["correct".into()],
                ..RewardComponentConfig::of(ComponentKind::Command)
            },
        );
        let p = c.problems();
        for key in [
            "reward.weights.honesty",
            "reward.components.judge.url",
            "reward.components.judge.score_range",
            "reward.components.judge.template",
            "reward.components.odd.kind",
            "reward.components.cmd.command",
            "`correct` is produced by both",
        ] {
            assert!(p.iter().any(|m| m.contains(key)), "no `{key}` in {p:#?}");
        }
    }

    #[test]
    fn shorthands_resolve_to_components() {
        let mut c = Config::default();
        assert_eq!(c.reward.component_names(), vec!["correct"]);
        c.reward.kind = RewardKind::RewardModel;
        c.reward.models = BTreeMap::from([
            ("harmless".into(), "rm-a".into()),
            ("helpful".into(), "rm-b".into()),
        ]);
        let r = c.reward.resolved_components();
        assert_eq!(r["helpful"].model.as_deref(), Some("rm-b"));
        assert_eq!(r["helpful"].kind, Some(ComponentKind::RewardModel));
        assert!(c.reward.component_problems().is_empty());
    }
}
