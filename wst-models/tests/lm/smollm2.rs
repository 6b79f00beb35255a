//! SmolLM2-135M-Instruct (GGUF Q4_1) against the Python reference's test vectors.

use super::*;
use wst_core::SamplingParams;
use wst_models::{ChatMessage, LoadedModel};

fn reference() -> Value {
    read_json(&vectors("smollm2-135m-instruct-q4_1.json"))
}

fn load() -> LoadedModel {
    LoadedModel::load(smollm2_path().to_str().unwrap(), Device::Cpu, Kind::Float)
        .expect("SmolLM2 loads")
}

#[test]
fn smollm2_tokenizer_template_logits_and_greedy_match_reference() -> TestResult {
    let r = reference();
    let m = load();
    for case in r["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            m.tokenizer.encode(text, false)?,
            ids_u32(&case["ids"]),
            "{text:?}"
        );
    }
    for key in ["chat_template_render", "chat_template_render_nosys"] {
        let c = &r[key];
        let messages: Vec<ChatMessage> = serde_json::from_value(c["messages"].clone())?;
        let text = m
            .template()?
            .render(&messages, c["add_generation_prompt"].as_bool().unwrap())?;
        assert_eq!(text, c["text"].as_str().unwrap(), "{key}");
    }

    // The logits prompt is the system + user render, tokenised.
    let c = &r["chat_template_render"];
    let messages: Vec<ChatMessage> = serde_json::from_value(c["messages"].clone())?;
    let input = ids_u32(&r["logits"]["input_ids"]);
    assert_eq!(m.encode_chat(&messages)?, input, "prompt ids");

    let logits = m.model.forward(&batch1(&input), None)?.get(0);
    let last = logits.get(input.len() as i64 - 1);
    let (top, idx) = last.topk(10, -1, true, true);
    let idx: Vec<i64> = Vec::try_from(idx)?;
    let want_ids: Vec<i64> = ids_u32(&r["logits"]["last_top10_ids"])
        .iter()
        .map(|&i| i64::from(i))
        .collect();
    assert_eq!(idx, want_ids, "top-10 ids");
    let d = max_abs_diff(
        &top,
        &Tensor::from_slice(&floats(&r["logits"]["last_top10_logits"])),
    );
    assert!(d < 2e-2, "top-10 logits differ by {d}");
    let mean = logits.mean_dim(-1, false, Kind::Float);
    let d = max_abs_diff(
        &mean,
        &Tensor::from_slice(&floats(&r["logits"]["mean_logit_per_position"])),
    );
    assert!(d < 2e-3, "mean logit per position differs by {d}");

    let g = &r["greedy_20"];
    let want = ids_u32(&g["output_ids"]);
    let out = m.generate(&[ids_u32(&g["input_ids"])], &SamplingParams::greedy(20))?;
    assert_eq!(out[0].token_ids, want, "greedy tokens");
    assert_eq!(out[0].finish_reason, wst_core::FinishReason::Stop);
    assert_eq!(out[0].text, "The answer to this classic math problem is 4.");
    Ok(())
}

#[test]
fn smollm2_batch_of_different_lengths_equals_each_alone() -> TestResult {
    let m = load();
    let questions = [
        "What is 2+2?",
        "Name a colour of the sky on a clear day, in one word.",
        "Hi",
    ];
    let prompts: Vec<Vec<u32>> = questions
        .iter()
        .map(|q| m.encode_chat(&[ChatMessage::user(*q)]))
        .collect::<Result<_, _>>()?;
    let params = SamplingParams::greedy(8);
    let batched = m.generate(&prompts, &params)?;
    for (p, b) in prompts.iter().zip(&batched) {
        let alone = m.generate(std::slice::from_ref(p), &params)?;
        assert_eq!(
            alone[0].token_ids,
            b.token_ids,
            "prompt of {} tokens",
            p.len()
        );
        assert_eq!(alone[0].finish_reason, b.finish_reason);
    }
    // Seeded sampling is reproducible and differs between seeds.
    let sampled = |seed| {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            top_k: 50,
            max_new_tokens: 6,
            seed: Some(seed),
            ..SamplingParams::default()
        };
        m.generate(&prompts, &params).unwrap()
    };
    let (a, b, c) = (sampled(7), sampled(7), sampled(8));
    assert_eq!(a, b);
    assert_ne!(
        a.iter().map(|g| &g.token_ids).collect::<Vec<_>>(),
        c.iter().map(|g| &g.token_ids).collect::<Vec<_>>()
    );
    Ok(())
}
