//! `wst generate`: sample from a local model (folder, GGUF file, cached hub id, run folder or
//! checkpoint).

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};
use wst_core::{DType, SamplingParams};
use wst_models::{select_device, ChatMessage};

use crate::args::ModelArgs;

/// Arguments of `wst generate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["chat", "prompt"])))]
#[command(group(ArgGroup::new("mode").args(["greedy", "temperature"])))]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// System message (with --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// User message, formatted with the model's chat template.
    #[arg(long)]
    chat: Option<String>,
    /// Raw prompt text, tokenised as is (with the tokenizer's special tokens).
    #[arg(long)]
    prompt: Option<String>,
    /// Maximum number of new tokens.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Argmax decoding.
    #[arg(long)]
    greedy: bool,
    /// Sampling temperature.
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Seed of the sampler.
    #[arg(long)]
    seed: Option<u64>,
    /// A string that ends generation (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print {"prompt_ids", "output_ids", "text", "finish_reason"} as JSON.
    #[arg(long)]
    json: bool,
    /// The same as `--dtype bf16`.
    #[arg(long, conflicts_with = "dtype")]
    bf16: bool,
}

/// Runs `wst generate`.
pub fn run(args: GenerateArgs) -> Result<()> {
    let device = select_device(args.model.on.device)?;
    let dtype = if args.bf16 {
        DType::Bf16
    } else {
        args.model.on.dtype
    };
    let model = crate::wiring::load_model(&args.model.model, device, dtype)?;

    let prompt_ids = match (&args.chat, &args.prompt) {
        (Some(chat), _) => {
            let mut messages = Vec::new();
            if let Some(system) = &args.system {
                messages.push(ChatMessage::system(system.clone()));
            }
            messages.push(ChatMessage::user(chat.clone()));
            model.encode_chat(&messages)?
        }
        (None, Some(prompt)) => model.tokenizer.encode(prompt, true)?,
        (None, None) => anyhow::bail!("give --chat or --prompt"),
    };
    let params = SamplingParams {
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_p: args.top_p,
        top_k: args.top_k,
        max_new_tokens: args.max_tokens,
        stop: args.stop.clone(),
        seed: args.seed,
    };
    let out = model
        .generate(std::slice::from_ref(&prompt_ids), &params)?
        .into_iter()
        .next()
        .context("no generation returned")?;
    if args.json {
        let v = serde_json::json!({
            "prompt_ids": prompt_ids,
            "output_ids": out.token_ids,
            "text": out.text,
            "finish_reason": out.finish_reason,
        });
        println!("{v}");
    } else {
        println!("{}", out.text);
    }
    Ok(())
}
