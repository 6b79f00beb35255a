//! The local student on the tiny Qwen2: k replies per request, batched like one by one.

use super::*;
use wst_core::{
    PromptTemplates, Query, SamplingParams, Student, StudentReply, StudentRequest, TemplatePreset,
};
use wst_models::{LoadedModel, LocalStudent};

fn student() -> LocalStudent {
    let dir = vectors("tiny-qwen2");
    let model = LoadedModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float).unwrap();
    let templates = PromptTemplates::new(TemplatePreset::Arith.texts()).unwrap();
    LocalStudent::new(model, templates).with_batch_size(3)
}

#[test]
fn local_student_answers_k_times_per_request() -> TestResult {
    let mut s = student();
    assert!(s.id().starts_with("local:"), "{}", s.id());
    assert!(!s.id().contains("dtype"), "{}", s.id());
    // Another weight type is another student: its baselines are cached apart.
    let dir = vectors("tiny-qwen2");
    let bf16 = LoadedModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::BFloat16)?;
    let templates = PromptTemplates::new(TemplatePreset::Arith.texts())?;
    let id = LocalStudent::new(bf16, templates).id();
    assert_eq!(id, format!("{};dtype=bf16", s.id()));
    let q1 = Query::new("1", "What is 2 + 3?");
    let q2 = Query::new("2", "What is 4 + 4?");
    let requests = [
        StudentRequest {
            query: &q1,
            instruction: None,
            k: 3,
        },
        StudentRequest {
            query: &q2,
            instruction: Some("Add carefully."),
            k: 2,
        },
    ];
    // The instruction becomes the system message of the chat prompt.
    let with = s.prompt_ids(&requests[1])?;
    let text = s.model().tokenizer.decode(&with, false)?;
    assert!(
        text.contains("<|im_start|>system\nAdd carefully.<|im_end|>"),
        "{text}"
    );

    let greedy = SamplingParams::greedy(5);
    let out = s.generate(&requests, &greedy)?;
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
    for (r, replies) in requests.iter().zip(&out) {
        // Greedy replies equal a single generation of the same prompt.
        let alone = s.model().generate(&[s.prompt_ids(r)?], &greedy)?;
        for reply in replies {
            let StudentReply::Completed(c) = reply else {
                panic!("failed reply {reply:?}")
            };
            assert_eq!(c.text, alone[0].text);
            assert_eq!(c.num_tokens, Some(alone[0].token_ids.len()));
            assert_eq!(c.finish_reason, alone[0].finish_reason);
        }
    }
    // A seed in the parameters makes sampling reproducible across calls.
    let sampled = SamplingParams {
        temperature: 1.0,
        max_new_tokens: 6,
        seed: Some(5),
        ..SamplingParams::default()
    };
    assert_eq!(
        s.generate(&requests, &sampled)?,
        s.generate(&requests, &sampled)?
    );
    Ok(())
}
