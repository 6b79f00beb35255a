//! Prompt templates: minijinja strings from the config, compiled once, rendered per query.
//!
//! Each role has a system and a user template. Both see `query` (the query text), `reference`
//! (the reference answer or none) and `metadata`; the student templates also see `instruction`
//! (the teacher's text, or none for the student-alone baseline). A system template that renders
//! to an empty string means "no system message" (the model's chat template default applies).

use serde::{Deserialize, Serialize};

use crate::{stable_hash, Error, Query, Result};

/// Which built-in set of defaults to start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TemplatePreset {
    /// Competition maths (GSM8K, MATH-500): the student reasons and boxes its answer.
    #[default]
    Math,
    /// Short arithmetic (the demo): the student answers with a number.
    Arith,
    /// Dialogue (HH-RLHF): the teacher writes constraints on the reply.
    Dialogue,
}

/// The four templates, as given in the `[templates]` table. Unset fields take the preset's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Starting point for unset fields.
    pub preset: TemplatePreset,
    /// Teacher system message.
    pub teacher_system: Option<String>,
    /// Teacher user message.
    pub teacher_user: Option<String>,
    /// Student system message (empty: the model's default).
    pub student_system: Option<String>,
    /// Student user message.
    pub student_user: Option<String>,
}

/// Template texts with every field filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateTexts {
    /// Teacher system message.
    pub teacher_system: String,
    /// Teacher user message.
    pub teacher_user: String,
    /// Student system message.
    pub student_system: String,
    /// Student user message.
    pub student_user: String,
}

impl TemplatePreset {
    /// The preset's texts.
    pub fn texts(self) -> TemplateTexts {
        match self {
            TemplatePreset::Math => TemplateTexts {
                teacher_system:
                    "You are a maths teacher. You write brief instructions that help a \
                    stronger model solve a problem. Never solve the problem and never state its \
                    answer."
                        .into(),
                teacher_user: "Problem:\n{{ query }}\n\nWrite one to three short instructions \
                    (method, pitfalls to avoid, how to check the result) for solving this problem. \
                    Do not solve it."
                    .into(),
                student_system: "{% if instruction %}Follow these instructions from your \
                    teacher:\n{{ instruction }}{% endif %}"
                    .into(),
                student_user: "{{ query }}\nPlease reason step by step, and put your final answer \
                    within \\boxed{}."
                    .into(),
            },
            TemplatePreset::Arith => TemplateTexts {
                teacher_system: "You write one or two short instructions that will help another \
                    assistant answer a question correctly. Do not answer the question yourself."
                    .into(),
                teacher_user: "{{ query }}".into(),
                student_system: "{% if instruction %}{{ instruction }}{% endif %}".into(),
                student_user: "{{ query }}".into(),
            },
            TemplatePreset::Dialogue => TemplateTexts {
                teacher_system: "You guide an assistant in a conversation. You write brief \
                    constraints on its next reply: what it should contain and what it must avoid. \
                    Never write the reply itself."
                    .into(),
                teacher_user: "Conversation:\n{{ query }}\n\nWrite two to four short constraints \
                    for the assistant's next reply."
                    .into(),
                student_system: "{% if instruction %}When you reply, follow these \
                    guidelines:\n{{ instruction }}{% endif %}"
                    .into(),
                student_user: "{{ query }}".into(),
            },
        }
    }
}

impl TemplatesConfig {
    /// Fills unset fields from the preset.
    pub fn resolve(&self) -> TemplateTexts {
        let d = self.preset.texts();
        TemplateTexts {
            teacher_system: self.teacher_system.clone().unwrap_or(d.teacher_system),
            teacher_user: self.teacher_user.clone().unwrap_or(d.teacher_user),
            student_system: self.student_system.clone().unwrap_or(d.student_system),
            student_user: self.student_user.clone().unwrap_or(d.student_user),
        }
    }
}

/// A rendered prompt: an optional system message and a user message, ready for a chat template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatPrompt {
    /// System message; `None` leaves the model's default.
    pub system: Option<String>,
    /// User message.
    pub user: String,
}

impl ChatPrompt {
    /// The same prompt without a system message: the system text (if any) opens the user
    /// message, separated from it by a blank line (for chat templates that reject a system
    /// message).
    pub fn system_in_user(self) -> ChatPrompt {
        match self.system {
            Some(system) => ChatPrompt {
                system: None,
                user: format!("{}\n\n{}", system.trim_end(), self.user),
            },
            None => self,
        }
    }
}

const NAMES: [&str; 4] = [
    "templates.teacher_system",
    "templates.teacher_user",
    "templates.student_system",
    "templates.student_user",
];

/// The four templates, compiled once.
pub struct PromptTemplates {
    env: minijinja::Environment<'static>,
    texts: TemplateTexts,
}

impl std::fmt::Debug for PromptTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptTemplates")
            .field("texts", &self.texts)
            .finish()
    }
}

impl PromptTemplates {
    /// Compiles the templates; a syntax error names the template.
    pub fn new(texts: TemplateTexts) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        let srcs = [
            &texts.teacher_system,
            &texts.teacher_user,
            &texts.student_system,
            &texts.student_user,
        ];
        for (name, src) in NAMES.iter().zip(srcs) {
            env.add_template_owned(name.to_string(), src.clone())
                .map_err(|source| Error::Template {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(PromptTemplates { env, texts })
    }

    /// The source texts.
    pub fn texts(&self) -> &TemplateTexts {
        &self.texts
    }

    /// A stable hash of the student templates (part of the baseline cache key).
    pub fn student_hash(&self) -> String {
        stable_hash(&[&self.texts.student_system, &self.texts.student_user])
    }

    fn render(&self, name: &str, query: &Query, instruction: Option<&str>) -> Result<String> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|source| Error::Template {
                name: name.to_string(),
                source,
            })?;
        tmpl.render(minijinja::context! {
            query => query.text,
            reference => query.reference,
            metadata => query.metadata,
            instruction => instruction,
        })
        .map_err(|source| Error::Template {
            name: name.to_string(),
            source,
        })
    }

    fn prompt(&self, sys: &str, user: &str, q: &Query, m1: Option<&str>) -> Result<ChatPrompt> {
        let system = self.render(sys, q, m1)?;
        Ok(ChatPrompt {
            system: (!system.trim().is_empty()).then_some(system),
            user: self.render(user, q, m1)?,
        })
    }

    /// The teacher's prompt for a query.
    pub fn teacher(&self, query: &Query) -> Result<ChatPrompt> {
        self.prompt(NAMES[0], NAMES[1], query, None)
    }

    /// The student's prompt for a query and optional instruction.
    pub fn student(&self, query: &Query, instruction: Option<&str>) -> Result<ChatPrompt> {
        self.prompt(NAMES[2], NAMES[3], query, instruction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_render_and_instruction_toggles_system() {
        for preset in [
            TemplatePreset::Math,
            TemplatePreset::Arith,
            TemplatePreset::Dialogue,
        ] {
            let t = PromptTemplates::new(preset.texts()).unwrap();
            let q = Query::new("1", "What is 2 + 3?");
            let tp = t.teacher(&q).unwrap();
            assert!(tp.user.contains("What is 2 + 3?"));
            assert!(tp.system.is_some());
            assert_eq!(t.student(&q, None).unwrap().system, None);
            let s = t.student(&q, Some("Add carefully.")).unwrap();
            assert!(s.system.unwrap().contains("Add carefully."));
        }
    }

    #[test]
    fn system_text_moves_to_the_start_of_the_user_message() {
        let p = ChatPrompt {
            system: Some("Add the two months' totals.\n".into()),
            user: "Natalia sold clips.".into(),
        };
        assert_eq!(
            p.system_in_user(),
            ChatPrompt {
                system: None,
                user: "Add the two months' totals.\n\nNatalia sold clips.".into(),
            }
        );
        let alone = ChatPrompt {
            system: None,
            user: "q".into(),
        };
        assert_eq!(alone.clone().system_in_user(), alone);
    }

    #[test]
    fn errors_name_the_template() {
        let mut texts = TemplatePreset::Arith.texts();
        texts.teacher_user = "{{ query ".into();
        let e = PromptTemplates::new(texts).unwrap_err().to_string();
        assert!(e.contains("templates.teacher_user"), "{e}");

        let mut texts = TemplatePreset::Arith.texts();
        texts.student_user = "{{ nope }}".into();
        let t = PromptTemplates::new(texts).unwrap();
        let e = t
            .student(&Query::new("1", "x"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("templates.student_user"), "{e}");
    }

    #[test]
    fn unset_fields_take_the_preset() {
        let cfg = TemplatesConfig {
            preset: TemplatePreset::Dialogue,
            student_user: Some("Q: {{ query }}".into()),
            ..Default::default()
        };
        let r = cfg.resolve();
        assert_eq!(r.student_user, "Q: {{ query }}");
        assert_eq!(
            r.teacher_user,
            TemplatePreset::Dialogue.texts().teacher_user
        );
    }
}
