//! Where the instruction reaches the student: the published chat templates of the paper's
//! cross-family students (Gemma rejects a system message) render as transformers renders them,
//! and with `instruction_role = "auto"` or `"user"` the instruction opens the user message.

use super::*;
use wst_core::{
    InstructionRole, PromptTemplates, Query, SamplingParams, Student, StudentReply, StudentRequest,
    TemplatePreset, TemplateTexts,
};
use wst_models::{ChatMessage, ChatTemplate, LoadedModel, LocalStudent};

fn template(name: &str) -> (ChatTemplate, Value) {
    let dir = vectors("chat-templates");
    let reference = read_json(&dir.join("reference.json"));
    let entry = reference["templates"][name].clone();
    let file = dir.join(entry["file"].as_str().unwrap());
    let src = std::fs::read_to_string(&file).unwrap();
    let bos = entry["bos_token"].as_str().map(str::to_string);
    let t = ChatTemplate::new(&src, &file.display().to_string(), bos, None).unwrap();
    (t, entry)
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

#[test]
fn published_templates_render_as_transformers_does() {
    let mut checked = 0;
    for name in ["gemma-7b-it", "llama-3-8b-instruct"] {
        let (t, entry) = template(name);
        for (case, r) in entry["renders"].as_object().unwrap() {
            let got = t.render(&messages(&r["messages"]), true);
            match (r.get("text").and_then(Value::as_str), got) {
                (Some(want), Ok(text)) => assert_eq!(text, want, "{name} {case}"),
                (None, Err(e)) => {
                    let want = r["error"].as_str().unwrap();
                    let chain = format!("{e}: {:?}", std::error::Error::source(&e));
                    assert!(chain.contains(want), "{name} {case}: {chain}");
                }
                (want, got) => panic!("{name} {case}: expected {want:?}, got {got:?}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

/// The tiny random Gemma of the test vectors wearing gemma-7b-it's published template, with
/// student templates that pass the instruction and the query through unchanged.
fn gemma_student(role: InstructionRole) -> LocalStudent {
    let dir = vectors("tiny-gemma");
    let mut model = LoadedModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float).unwrap();
    model.chat_template = Some(template("gemma-7b-it").0);
    let texts = TemplateTexts {
        student_system: "{% if instruction %}{{ instruction }}{% endif %}".into(),
        student_user: "{{ query }}".into(),
        ..TemplatePreset::Math.texts()
    };
    LocalStudent::new(model, PromptTemplates::new(texts).unwrap()).with_instruction_role(role)
}

#[test]
fn gemma_student_gets_the_instruction_in_the_user_message() -> TestResult {
    let (_, entry) = template("gemma-7b-it");
    let case = &entry["renders"]["instruction_in_user"];
    let sys = &entry["renders"]["system_then_user"]["messages"];
    let instruction = sys[0]["content"].as_str().unwrap();
    let query = Query::new("q", sys[1]["content"].as_str().unwrap());
    let with = StudentRequest {
        query: &query,
        instruction: Some(instruction),
        k: 2,
    };
    let alone = StudentRequest {
        instruction: None,
        ..with.clone()
    };

    for role in [InstructionRole::Auto, InstructionRole::User] {
        let mut s = gemma_student(role);
        assert!(s.instruction_in_user(), "{role:?}");
        assert!(s.id().ends_with(";instruction=user"), "{}", s.id());
        // Exactly transformers' rendering of [user: instruction + "\n\n" + query].
        assert_eq!(s.prompt_text(&with)?, case["text"].as_str().unwrap());
        let p = s.prompt(&with)?;
        assert_eq!(p.system, None);
        assert!(p.user.starts_with(instruction), "{}", p.user);
        // Without an instruction the prompt is the user-only one.
        assert_eq!(
            s.prompt_text(&alone)?,
            entry["renders"]["user_only"]["text"].as_str().unwrap()
        );
        let out = s.generate(&[with.clone(), alone.clone()], &SamplingParams::greedy(3))?;
        assert!(out
            .iter()
            .flatten()
            .all(|r| matches!(r, StudentReply::Completed(_))));
    }

    // Forcing the system message fails as transformers does, naming the reason.
    let mut s = gemma_student(InstructionRole::System);
    assert!(!s.instruction_in_user());
    let e = s
        .generate(std::slice::from_ref(&with), &SamplingParams::greedy(3))
        .unwrap_err();
    let chain = wst_core::error_chain(&e);
    assert!(chain.contains("System role not supported"), "{chain}");
    Ok(())
}

#[test]
fn auto_keeps_the_system_message_where_the_template_accepts_one() -> TestResult {
    let dir = vectors("tiny-qwen2");
    let model = LoadedModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float)?;
    let templates = PromptTemplates::new(TemplatePreset::Arith.texts())?;
    let s = LocalStudent::new(model, templates).with_instruction_role(InstructionRole::Auto);
    assert!(!s.instruction_in_user());
    assert!(!s.id().contains("instruction="), "{}", s.id());
    let q = Query::new("1", "What is 2 + 3?");
    let text = s.prompt_text(&StudentRequest {
        query: &q,
        instruction: Some("Add carefully."),
        k: 1,
    })?;
    assert!(
        text.contains("<|im_start|>system\nAdd carefully.<|im_end|>"),
        "{text}"
    );
    Ok(())
}
