//! The tiny random Qwen2, sharded Llama and Gemma saved by the Python reference.

use super::*;
use wst_core::SamplingParams;
use wst_models::{ChatMessage, LoadedModel};

fn check_tiny(name: &str) -> TestResult {
    let dir = vectors(name);
    let r = read_json(&dir.join("reference.json"));
    let m = LoadedModel::load(dir.to_str().unwrap(), Device::Cpu, Kind::Float)?;

    for case in r["tokenizer"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        assert_eq!(
            m.tokenizer.encode(text, false)?,
            ids_u32(&case["ids"]),
            "{name}: {text:?}"
        );
    }

    let render = &r["chat_template_render"];
    let messages: Vec<ChatMessage> = serde_json::from_value(render["messages"].clone())?;
    let text = m.template()?.render(
        &messages,
        render["add_generation_prompt"].as_bool().unwrap(),
    )?;
    assert_eq!(
        text,
        render["text"].as_str().unwrap(),
        "{name}: chat render"
    );

    let input = ids_u32(&r["logits"]["input_ids"]);
    let logits = m.model.forward(&batch1(&input), None)?;
    let last = logits.get(0).get(input.len() as i64 - 1);
    let want = Tensor::from_slice(&floats(&r["logits"]["last_logits"]));
    let d = max_abs_diff(&last, &want);
    assert!(d < 1e-4, "{name}: last-position logits differ by {d}");
    let mean = logits.get(0).mean_dim(-1, false, Kind::Float);
    let want = Tensor::from_slice(&floats(&r["logits"]["mean_logit_per_position"]));
    let d = max_abs_diff(&mean, &want);
    assert!(d < 1e-4, "{name}: mean logit per position differs by {d}");

    let g = &r["greedy_12"];
    let want = ids_u32(&g["output_ids"]);
    let out = m.generate(
        &[ids_u32(&g["input_ids"])],
        &SamplingParams::greedy(want.len()),
    )?;
    assert_eq!(out[0].token_ids, want, "{name}: greedy tokens");
    assert_eq!(out[0].logprobs.len(), want.len());
    Ok(())
}

#[test]
fn tiny_qwen2_matches_reference() -> TestResult {
    check_tiny("tiny-qwen2")
}

#[test]
fn tiny_llama_sharded_matches_reference() -> TestResult {
    check_tiny("tiny-llama-sharded")
}

#[test]
fn tiny_gemma_matches_reference() -> TestResult {
    check_tiny("tiny-gemma")
}
