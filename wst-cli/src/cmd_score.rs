//! `wst score`: the reward a GPT-2 reward model gives one (prompt, response) pair.

use anyhow::{Context, Result};
use wst_core::{DeviceChoice, RewardConfig, RewardKind};
use wst_reward::{hh_rlhf_query, hh_rlhf_response, RewardModelReward};

/// Score a (prompt, response) pair with a GPT-2 sequence-classifier reward model.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The reward model: a folder (config.json, tokenizer.json, model.safetensors) or a hub id
    /// found in the Hugging Face cache.
    #[arg(long, value_name = "PATH_OR_ID")]
    reward_model: String,
    /// The prompt: a question (wrapped as `\n\nHuman: {P}\n\nAssistant:`) or an HH-RLHF
    /// dialogue.
    #[arg(long)]
    prompt: String,
    /// The response (scored after one space, as the reward-model cards do).
    #[arg(long)]
    response: String,
    /// Score the prompt and response exactly as given, without the HH-RLHF format.
    #[arg(long)]
    raw: bool,
    /// Device: auto (CUDA when available, else the CPU), cpu or cuda.
    #[arg(long, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Print `{"score", "prompt", "response", "input_ids"}` as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `wst score`.
pub fn run(args: ScoreArgs) -> Result<()> {
    let device = wst_models::select_device(args.device)?;
    let cfg = RewardConfig {
        kind: RewardKind::RewardModel,
        weights: [("score".to_string(), 1.0)].into(),
        models: [("score".to_string(), args.reward_model.clone())].into(),
        batch_size: 1,
        ..RewardConfig::default()
    };
    let reward = RewardModelReward::from_config(&cfg, device)?;
    let model = reward
        .model("score")
        .context("reward model missing after load")?;
    let (prompt, response) = if args.raw {
        (args.prompt, args.response)
    } else {
        (
            hh_rlhf_query(&args.prompt),
            hh_rlhf_response(&args.response),
        )
    };
    let ids = model.encode_pair(&prompt, &response)?;
    let score = model.score_ids(std::slice::from_ref(&ids))?[0];
    if args.json {
        let v = serde_json::json!({
            "score": score,
            "prompt": prompt,
            "response": response,
            "input_ids": ids,
        });
        println!("{v}");
    } else {
        println!("{score}");
    }
    Ok(())
}
