//! `wst bench generate|train-step|check` on the CPU with tiny sizes.

use crate::{run_ok, tiny_model, wst};

/// `wst ARGS...`, which must succeed: its stdout as JSON.
fn run_json(args: &[&str]) -> serde_json::Value {
    let out = run_ok(wst().args(args));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// `wst bench train-step --json` of the SmolLM2 shape on the CPU (batch 2, 8 tokens of which 4
/// are the prompt, one timed step), `args` more.
fn train_step(args: &[&str]) -> serde_json::Value {
    let mut all = vec![
        "bench",
        "train-step",
        "--preset",
        "smollm2-135m",
        "--batch",
        "2",
        "--seq",
        "8",
        "--prompt-len",
        "4",
    ];
    all.extend_from_slice(args);
    all.extend(["--device", "cpu", "--warmup", "0", "--iters", "1", "--json"]);
    run_json(&all)
}

#[test]
fn bench_generate_reports_throughput_and_memory() {
    let v = run_json(&[
        "bench",
        "generate",
        "--preset",
        "smollm2-135m",
        "--batch",
        "2",
        "--prompt-len",
        "4",
        "--new-tokens",
        "3",
        "--device",
        "cpu",
        "--warmup",
        "0",
        "--iters",
        "2",
        "--json",
    ]);
    assert_eq!(v["bench"], "generate");
    assert_eq!(v["model"], "smollm2-135m");
    assert_eq!(v["device"], "Cpu");
    assert_eq!(v["dtype"], "f32");
    assert_eq!(v["cuda_graph"], false);
    assert_eq!(v["batch"], 2);
    assert_eq!(v["seconds_all"].as_array().unwrap().len(), 2);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["ms_per_step"].as_f64().unwrap() > 0.0);
    // 135M parameters in f32 are resident at the peak.
    assert!(
        v["peak_memory_bytes"].as_u64().unwrap() > 500_000_000,
        "{v}"
    );
}

#[test]
fn bench_train_step_reports_time_and_the_surrogate_loss() {
    let v = train_step(&["--micro-batch", "1", "--chunk", "2"]);
    assert_eq!(v["bench"], "train-step");
    assert_eq!(v["head"], "chunked-backward");
    assert!(v["ms_per_step"].as_f64().unwrap() > 0.0);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["loss"].as_f64().unwrap().is_finite());
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["training"], "full");
    assert_eq!(v["trainable_params"], v["params"]);
}

#[test]
fn bench_train_step_with_lora_trains_the_adapters_only() {
    let v = train_step(&["--lora-rank", "4"]);
    assert_eq!(v["training"], "LoRA rank 4");
    // SmolLM2-135M: 30 layers, hidden 576, MLP 1536, 9 heads, 3 key/value heads of 64.
    let per_layer = 4 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3);
    assert_eq!(v["trainable_params"], 30 * per_layer);
    assert!(v["params"].as_i64().unwrap() > 100_000_000);
    assert!(v["loss"].as_f64().unwrap().is_finite());
    // AdamW holds f32 moments of the adapters only.
    assert_eq!(v["optimizer_state_bytes"], 2 * 4 * 30 * per_layer);
}

#[test]
fn bench_rejects_bad_sizes_with_a_message() {
    let out = wst()
        .args([
            "bench",
            "train-step",
            "--preset",
            "smollm2-135m",
            "--seq",
            "8",
            "--prompt-len",
            "8",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--prompt-len"));
    let out = wst()
        .args(["bench", "generate", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a model or preset is required");
}

#[test]
fn bench_check_passes_on_a_tiny_reference_model() {
    let dir = tiny_model();
    let model = dir.to_str().unwrap().to_string();
    let reference = dir.join("reference.json");
    let v = run_json(&[
        "bench",
        "check",
        "--model",
        &model,
        "--reference",
        reference.to_str().unwrap(),
        "--device",
        "cpu",
        "--json",
    ]);
    assert_eq!(v["pass"], true, "{v}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("python reference")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.contains("bf16")), "{names:?}");
}
