//! Hugging Face model folders from wst models and trained checkpoints: what
//! `transformers.AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained`
//! load as they are, and what `vllm serve DIR` serves.
//!
//! Tensor names need no table: the decoder's variables carry the Hugging Face names, and GGUF
//! weights are renamed (and llama's Q/K rows un-permuted) when they are read. The config,
//! tokenizer and chat template come from the base model: copied from its folder, or, for a GGUF
//! file, built from its metadata. Weights are cast to the export dtype whatever the checkpoint
//! holds (f32 master weights of a bf16 teacher included). The folder is written under a
//! temporary name beside `out` and renamed at the end, so `out` is whole or absent.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tch::{Kind, Tensor};

use crate::decoder::lora::merge_adapters;
use crate::error::read_json;
use crate::hub::INDEX_FILE;
use crate::loader::{
    alias_path, checkpoint_base, checkpoint_dir, checkpoint_teacher, resolve_spec,
    CHECKPOINT_ADAPTERS, CHECKPOINT_WEIGHTS,
};
use crate::{Error, Result};

/// Files copied from a base model folder when it has them.
const COPIED: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
];

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The dtype of the written weights (`Kind::Float` or `Kind::BFloat16`, also `Kind::Half`).
    pub kind: Kind,
    /// Above this many bytes the weights are split into shards with an index.
    pub max_shard_bytes: u64,
    /// Extra Markdown for the README (the run and its eval table).
    pub readme_extra: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            kind: Kind::BFloat16,
            max_shard_bytes: 5_000_000_000,
            readme_extra: String::new(),
        }
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The base model spec.
    pub base: String,
    /// The checkpoint whose weights were written, if any.
    pub checkpoint: Option<PathBuf>,
    /// Weight files written.
    pub weight_files: Vec<String>,
    /// Tensors written.
    pub tensors: usize,
}

fn dtype_name(kind: Kind) -> Result<&'static str> {
    match kind {
        Kind::Float => Ok("float32"),
        Kind::BFloat16 => Ok("bfloat16"),
        Kind::Half => Ok("float16"),
        other => Err(Error::Invalid(format!(
            "export dtype {other:?}: use f32, bf16 or f16"
        ))),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(io(path))
}

/// Exports `src` (a run folder, a checkpoint, or any model spec) to the folder `out`.
pub fn export(src: &str, out: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    if out.exists() {
        return Err(Error::Invalid(format!(
            "{} exists: remove it or choose another --out",
            out.display()
        )));
    }
    let ckpt = checkpoint_dir(Path::new(src))?;
    let base = match &ckpt {
        Some(c) => checkpoint_base(c)?,
        None => src.to_string(),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "export".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = write_folder(&base, ckpt.as_deref(), &tmp, opts);
    match result {
        Ok(mut report) => {
            for entry in std::fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
                if let Ok(f) = std::fs::File::open(entry.path()) {
                    f.sync_all().map_err(io(&entry.path()))?;
                }
            }
            std::fs::rename(&tmp, out).map_err(io(out))?;
            if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
            report.checkpoint = ckpt;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn write_folder(
    base: &str,
    ckpt: Option<&Path>,
    dir: &Path,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let dtype = dtype_name(opts.kind)?;
    let path = alias_path(base)?.map_or_else(|| resolve_spec(base), Ok)?;
    let (mut config, base_tensors) = if path.is_file() {
        gguf_files(&path, dir)?
    } else {
        for f in COPIED {
            let from = path.join(f);
            if from.is_file() {
                std::fs::copy(&from, dir.join(f)).map_err(io(&from))?;
            }
        }
        let config = read_json(&path.join("config.json"))?;
        (config, None)
    };
    config["torch_dtype"] = json!(dtype);
    config["dtype"] = json!(dtype);
    write_json(&dir.join("config.json"), &config)?;
    let tied = config
        .get("tie_word_embeddings")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let read = |file: &Path| {
        Tensor::read_safetensors(file)
            .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))
    };
    let tensors: Vec<(String, Tensor)> = match (ckpt, base_tensors) {
        // LoRA: the base weights with `s B A` added, a plain model.
        (Some(c), base_tensors) if c.join(CHECKPOINT_ADAPTERS).is_file() => {
            let lora = checkpoint_teacher(c)?.lora.ok_or_else(|| {
                Error::Invalid(format!(
                    "checkpoint {}: it holds {CHECKPOINT_ADAPTERS} but its config has no \
                     [teacher.lora]",
                    c.display()
                ))
            })?;
            let mut weights = match base_tensors {
                Some(t) => t,
                None => read_folder_weights(&path)?,
            };
            let adapters = read(&c.join(CHECKPOINT_ADAPTERS))?;
            let merged = merge_adapters(&mut weights, &adapters, lora.scale())?;
            tracing::info!(merged, "LoRA adapters merged into the base weights");
            weights
        }
        (Some(c), _) => {
            let file = c.join(CHECKPOINT_WEIGHTS);
            Tensor::read_safetensors(&file)
                .map_err(|e| Error::Invalid(format!("{}: {e}", file.display())))?
        }
        (None, Some(t)) => t,
        (None, None) => read_folder_weights(&path)?,
    };
    let mut tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(n, _)| !(tied && n == "lm_head.weight"))
        .map(|(n, t)| -> Result<(String, Tensor)> {
            Ok((n, t.f_to_kind(opts.kind)?.f_contiguous()?))
        })
        .collect::<Result<_>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let weight_files = write_weights(dir, &tensors, opts.max_shard_bytes)?;
    let readme = format!(
        "# {}\n\nExported by `wst export` from {}.\n\n- base model: `{base}`\n- dtype: {dtype}\n- \
         architecture: {}\n\nLoad with `transformers.AutoModelForCausalLM.from_pretrained(DIR)`, \
         serve with `vllm serve DIR`.\n\n{}",
        dir.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        ckpt.map_or_else(
            || "a model (no training)".to_string(),
            |c| format!("checkpoint `{}`", c.display())
        ),
        config
            .get("architectures")
            .map(Value::to_string)
            .unwrap_or_default(),
        opts.readme_extra
    );
    std::fs::write(dir.join("README.md"), readme).map_err(io(dir))?;
    Ok(ExportReport {
        base: base.to_string(),
        checkpoint: None,
        weight_files,
        tensors: tensors.len(),
    })
}

/// The tensors of a model folder's safetensors files (sharded or not).
fn read_folder_weights(dir: &Path) -> Result<Vec<(String, Tensor)>> {
    let files: Vec<PathBuf> = if dir.join(INDEX_FILE).is_file() {
        crate::hub::shards_of(&dir.join(INDEX_FILE))?
            .into_iter()
            .map(|f| dir.join(f))
            .collect()
    } else {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    };
    let mut out = Vec::new();
    for f in files {
        out.extend(
            Tensor::read_safetensors(&f)
                .map_err(|e| Error::Invalid(format!("{}: {e}", f.display())))?,
        );
    }
    Ok(out)
}

/// Named tensors, in file order.
type Named = Vec<(String, Tensor)>;

/// Config, tokenizer, template and generation config of a GGUF file; its dequantised tensors.
fn gguf_files(path: &Path, dir: &Path) -> Result<(Value, Option<Named>)> {
    let g = crate::gguf::load_gguf(path)?;
    std::fs::write(dir.join("tokenizer.json"), &g.tokenizer_json).map_err(io(dir))?;
    let tok: Value = serde_json::from_str(&g.tokenizer_json).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let token_text = |id: Option<u64>| -> Option<String> {
        let id = id?;
        let added = tok.get("added_tokens")?.as_array()?;
        if let Some(t) = added
            .iter()
            .find(|t| t.get("id").and_then(Value::as_u64) == Some(id))
        {
            return t.get("content")?.as_str().map(str::to_string);
        }
        let vocab = tok.get("model")?.get("vocab")?.as_object()?;
        vocab
            .iter()
            .find(|(_, v)| v.as_u64() == Some(id))
            .map(|(k, _)| k.clone())
    };
    let cfg = &g.config;
    let id_of = |k: &str| {
        cfg.get(k)
            .and_then(|v| v.as_u64().or_else(|| v.as_array()?.first()?.as_u64()))
    };
    let (bos, eos, pad) = (
        id_of("bos_token_id"),
        id_of("eos_token_id"),
        id_of("pad_token_id"),
    );
    let mut tc = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": false,
        "model_max_length": cfg.get("max_position_embeddings").cloned().unwrap_or(json!(2048)),
    });
    for (key, id) in [
        ("bos_token", bos),
        ("eos_token", eos),
        ("pad_token", pad.or(eos)),
        ("unk_token", None),
    ] {
        if let Some(t) = token_text(id) {
            tc[key] = json!(t);
        }
    }
    if let Some(t) = &g.chat_template {
        tc["chat_template"] = json!(t);
        std::fs::write(dir.join("chat_template.jinja"), t).map_err(io(dir))?;
    }
    write_json(&dir.join("tokenizer_config.json"), &tc)?;
    let mut gen = json!({ "_from_model_config": true });
    for (k, v) in [
        ("bos_token_id", bos),
        ("eos_token_id", eos),
        ("pad_token_id", pad),
    ] {
        if let Some(v) = v {
            gen[k] = json!(v);
        }
    }
    write_json(&dir.join("generation_config.json"), &gen)?;
    Ok((g.config.clone(), Some(g.tensors)))
}

/// Writes `model.safetensors`, or shards `model-0000K-of-0000N.safetensors` with an index
/// when the total passes `max_shard_bytes`. Returns the file names.
fn write_weights(
    dir: &Path,
    tensors: &[(String, Tensor)],
    max_shard_bytes: u64,
) -> Result<Vec<String>> {
    let bytes = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as u64;
    let total: u64 = tensors.iter().map(|(_, t)| bytes(t)).sum();
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0u64;
    for (i, (_, t)) in tensors.iter().enumerate() {
        let b = bytes(t);
        if size > 0 && size + b > max_shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        shards.last_mut().expect("one shard").push(i);
        size += b;
    }
    let n = shards.len();
    let mut names = Vec::new();
    let mut map = serde_json::Map::new();
    for (k, shard) in shards.iter().enumerate() {
        let file = if n == 1 {
            CHECKPOINT_WEIGHTS.to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", k + 1)
        };
        let part: Vec<(&str, &Tensor)> = shard
            .iter()
            .map(|&i| (tensors[i].0.as_str(), &tensors[i].1))
            .collect();
        let path = dir.join(&file);
        Tensor::write_safetensors(&part, &path)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        for (name, _) in &part {
            map.insert(name.to_string(), json!(file));
        }
        names.push(file);
    }
    if n > 1 {
        write_json(
            &dir.join(INDEX_FILE),
            &json!({ "metadata": { "total_size": total }, "weight_map": Value::Object(map) }),
        )?;
    }
    Ok(names)
}
