//! LoRA adapters on the decoder's projections, as PEFT's `LoraLayer`: a target projection
//! computes `W x + b + s * B (A dropout(x))` with `A` `[r, in]`, `B` `[out, r]` and
//! `s = alpha / r`. `A` starts Kaiming-uniform (bound `1 / sqrt(in)`, PEFT's default) and `B` at
//! zero, so a fresh adapter leaves the model's outputs unchanged.
//!
//! The adapters are variables of the model's store under the projection's name
//! (`model.layers.0.self_attn.q_proj.lora_A.weight`), in the model's kind; every other variable
//! is frozen, so the optimiser over the trainable variables sees the adapters only. Files use
//! PEFT's names (`base_model.model.` in front), so an `adapter_model.safetensors` written here
//! loads in `peft.PeftModel.from_pretrained` and back.
//!
//! Dropout is applied only in a forward pass that records gradients (the update); sampling,
//! scoring the sampling policy and evaluation run without it.

use std::path::Path;

use tch::nn::Init;
use tch::{Kind, Tensor};
use wst_core::{LoraConfig, LORA_TARGETS};

use super::{DecoderLm, Layer, Proj};
use crate::weights::WeightStore;
use crate::{Error, Result};

/// The prefix PEFT puts before the base model's tensor names in adapter files.
const PEFT_PREFIX: &str = "base_model.model.";

/// The low-rank term of one projection.
pub(crate) struct Adapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

impl Adapter {
    /// `scale * B (A dropout(x))`.
    pub(crate) fn apply(&self, x: &Tensor) -> Tensor {
        let h = if self.dropout > 0.0 && records_gradients(&self.a) {
            x.dropout(self.dropout, true)
                .linear(&self.a, None::<&Tensor>)
        } else {
            x.linear(&self.a, None::<&Tensor>)
        };
        h.linear(&self.b, None::<&Tensor>) * self.scale
    }
}

/// True when autograd records operations on `var` (a trainable variable) right now, i.e.
/// outside `no_grad`: the result of an operation made in no-grad mode does not require
/// gradients (a view would).
fn records_gradients(var: &Tensor) -> bool {
    var.requires_grad() && (var.narrow(0, 0, 1).narrow(1, 0, 1) * 1.0).requires_grad()
}

/// True for the name of a LoRA adapter tensor (ours or PEFT's).
pub fn is_adapter_name(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// PEFT's name of an adapter tensor (`base_model.model.` + ours).
pub fn to_peft_name(name: &str) -> String {
    format!("{PEFT_PREFIX}{name}")
}

/// Our name of a PEFT adapter tensor (PEFT's prefix and a `.default` adapter name removed).
pub fn from_peft_name(name: &str) -> String {
    name.strip_prefix(PEFT_PREFIX)
        .unwrap_or(name)
        .replace(".lora_A.default.", ".lora_A.")
        .replace(".lora_B.default.", ".lora_B.")
}

impl Layer {
    /// The adaptable projections with their module paths under `model.layers.N`.
    fn projections_mut(&mut self) -> [(&'static str, &'static str, &mut Proj); 7] {
        [
            ("self_attn", "q_proj", &mut self.q),
            ("self_attn", "k_proj", &mut self.k),
            ("self_attn", "v_proj", &mut self.v),
            ("self_attn", "o_proj", &mut self.o),
            ("mlp", "gate_proj", &mut self.gate),
            ("mlp", "up_proj", &mut self.up),
            ("mlp", "down_proj", &mut self.down),
        ]
    }
}

impl DecoderLm {
    /// Adds LoRA adapters to the `targets` projections of every layer (A drawn from `seed`, B
    /// zero, in the model's kind) and freezes every other variable: afterwards the trainable
    /// variables of the store are exactly the adapters.
    pub fn add_lora(&mut self, config: &LoraConfig, seed: i64) -> Result<()> {
        if self.lora.is_some() {
            return Err(Error::Invalid("the model has LoRA adapters already".into()));
        }
        if self.is_int8() {
            return Err(Error::Invalid(
                "LoRA adapters need float weights: this model is quantised to int8 (inference \
                 only)"
                    .into(),
            ));
        }
        let problems = config.problems("lora");
        if !problems.is_empty() {
            return Err(Error::Invalid(problems.join("; ")));
        }
        debug_assert!(LORA_TARGETS.len() == 7);
        let kind = self.kind();
        let r = config.rank;
        self.vs.freeze();
        tch::manual_seed(seed);
        let root = self.vs.root();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            for (group, target, proj) in layer.projections_mut() {
                if !config.targets.iter().any(|t| t == target) {
                    continue;
                }
                let size = proj.w.size();
                let (out, inp) = (size[0], size[1]);
                let p = &root / "model" / "layers" / l as i64 / group / target;
                let bound = 1.0 / (inp as f64).sqrt();
                let a = (&p / "lora_A").var(
                    "weight",
                    &[r, inp],
                    Init::Uniform {
                        lo: -bound,
                        up: bound,
                    },
                );
                let b = (&p / "lora_B").var("weight", &[out, r], Init::Const(0.0));
                proj.lora = Some(Adapter {
                    a,
                    b,
                    scale: config.scale(),
                    dropout: config.dropout,
                });
            }
        }
        drop(root);
        if kind != Kind::Float {
            self.vs.set_kind(kind);
        }
        self.lora = Some(config.clone());
        Ok(())
    }

    /// The adapters' configuration, when the model has them.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    /// The adapter variables under our names, sorted.
    pub fn adapters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .filter(|(n, _)| is_adapter_name(n))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The model's weights with the adapters merged in (`W + s B A`, computed in f32 and stored
    /// in the weight's kind), adapters left out, sorted by name: the weights of a plain model
    /// that computes what this one does.
    pub fn merged_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let (adapters, mut base): (Vec<_>, Vec<_>) = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.detach()))
            .partition(|(n, _)| is_adapter_name(n));
        if let Some(cfg) = &self.lora {
            merge_adapters(&mut base, &adapters, cfg.scale())?;
        }
        base.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(base)
    }

    /// Fills the adapters with the tensors of an adapter file (PEFT's or ours; kinds converted):
    /// every adapter must be present with its shape, and a tensor the model has no adapter for
    /// is an error naming it.
    pub fn load_adapters(&mut self, path: &Path) -> Result<()> {
        if self.lora.is_none() {
            return Err(Error::Invalid(format!(
                "{}: the model has no LoRA adapters to load into (add_lora first)",
                path.display()
            )));
        }
        let mut store = adapter_store(path)?;
        store.load_vars(self.adapters())?;
        let unused = store.unused();
        if !unused.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: adapters this model does not have (other rank or targets?): {}",
                path.display(),
                unused.join(", ")
            )));
        }
        Ok(())
    }
}

/// The tensors of an adapter file (PEFT's names or ours) under our names.
pub fn adapter_store(path: &Path) -> Result<WeightStore> {
    let tensors = Tensor::read_safetensors(path)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?
        .into_iter()
        .map(|(n, t)| (from_peft_name(&n), t))
        .collect();
    Ok(WeightStore::from_tensors(
        tensors,
        path.display().to_string(),
    ))
}

/// Adds `scale * B @ A` of every adapter pair in `adapters` (our names or PEFT's) to the weight
/// of the same projection in `weights` (in f32, stored back in the weight's kind). Returns how
/// many projections were merged; an adapter without its pair or without a base weight is an
/// error naming it.
pub fn merge_adapters(
    weights: &mut [(String, Tensor)],
    adapters: &[(String, Tensor)],
    scale: f64,
) -> Result<usize> {
    let adapters: std::collections::BTreeMap<String, &Tensor> = adapters
        .iter()
        .map(|(n, t)| (from_peft_name(n), t))
        .collect();
    let mut merged = 0;
    for (name, a) in &adapters {
        let Some(module) = name.strip_suffix(".lora_A.weight") else {
            if !name.ends_with(".lora_B.weight") {
                return Err(Error::Invalid(format!(
                    "adapter tensor `{name}` is neither lora_A.weight nor lora_B.weight"
                )));
            }
            let a_name = name.replace(".lora_B.weight", ".lora_A.weight");
            if !adapters.contains_key(&a_name) {
                return Err(Error::MissingTensor {
                    tensor: a_name,
                    origin: "the adapters".into(),
                });
            }
            continue;
        };
        let b_name = format!("{module}.lora_B.weight");
        let b = adapters.get(&b_name).ok_or_else(|| Error::MissingTensor {
            tensor: b_name.clone(),
            origin: "the adapters".into(),
        })?;
        let w_name = format!("{module}.weight");
        let w = weights
            .iter_mut()
            .find(|(n, _)| *n == w_name)
            .ok_or_else(|| Error::MissingTensor {
                tensor: w_name.clone(),
                origin: "the base weights (to merge the adapters into)".into(),
            })?;
        let delta = tch::no_grad(|| -> Result<Tensor> {
            let a = a.f_to_kind(Kind::Float)?;
            let b = b.f_to_kind(Kind::Float)?;
            Ok(b.f_matmul(&a)? * scale)
        })?;
        if delta.size() != w.1.size() {
            return Err(Error::Invalid(format!(
                "adapter of `{w_name}`: B A is {:?}, the weight {:?}",
                delta.size(),
                w.1.size()
            )));
        }
        let kind = w.1.kind();
        w.1 =
            tch::no_grad(|| w.1.to_kind(Kind::Float) + delta.to_device(w.1.device())).to_kind(kind);
        merged += 1;
    }
    Ok(merged)
}

/// PEFT's `adapter_config.json` for adapters of `config` on the base model `base`.
pub fn adapter_config_json(config: &LoraConfig, base: &str) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": config.targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "layers_to_transform": null,
        "revision": null,
    })
}
