//! Checkpoints: a folder per saved step, written under a temporary name and renamed into place,
//! so a crash at any instant leaves either the whole checkpoint or none of it.
//!
//! ```text
//! RUN_DIR/checkpoints/step-00000010/
//!     model.safetensors      teacher weights (every VarStore variable), or for a LoRA run
//!     adapter_model.safetensors + adapter_config.json   the adapters only (PEFT's layout)
//!     optimizer.safetensors  AdamW moments and step count
//!     trainer.json           TrainerState: next step, data cursor, RNG seed/stream
//!     config.toml            the configuration it was trained with
//!     pending.json           asynchronous runs: the next step's teacher samples, drawn one
//!                            update earlier (they cannot be drawn again from these weights)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wst_core::atomic::{self, TMP_PREFIX};
use wst_core::LoraConfig;
use wst_models::lora;

use crate::adamw::AdamW;
use crate::collect::Drawn;

use crate::{Error, Result};

pub use wst_core::layout::{
    ADAPTER_CONFIG_FILE, ADAPTER_FILE, CHECKPOINTS_DIR as CHECKPOINTS, CONFIG_FILE, MODEL_FILE,
    OPTIMIZER_FILE, STATE_FILE,
};

/// What the trainer needs, besides weights and optimiser, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps completed (the next step to run).
    pub step: u64,
    /// [`wst_core::PromptSource::position`] after those steps.
    pub data_position: u64,
    /// Seed of the run's random streams.
    pub rng_seed: u64,
    /// Position of the random streams (every draw of step `s` is derived from `(seed, s)`).
    pub rng_stream: u64,
    /// Run identifier.
    pub run_id: String,
}

/// Writes `bytes` to `path` atomically (through [`wst_core::atomic::write_file`]: temporary
/// file in the same folder, fsync, rename, fsync of the folder).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic::write_file(path, bytes).map_err(|e| Error::io("cannot write", path, e))
}

/// The file of an asynchronous run's [`Pending`] samples in a checkpoint folder.
pub const PENDING_FILE: &str = "pending.json";

/// Teacher samples drawn for a step and not trained on yet: in an asynchronous run, those of the
/// step after a checkpoint, drawn before its last update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Optimiser updates the teacher had taken when it drew them.
    pub version: u64,
    /// [`wst_core::PromptSource::position`] before their queries were drawn.
    pub data_position: u64,
    /// The samples (f32 log-probabilities round-trip exactly through JSON).
    pub drawn: Drawn,
}

/// Reads `pending.json` of a checkpoint, if it has one.
pub fn read_pending(dir: &Path) -> Result<Option<Pending>> {
    let p = dir.join(PENDING_FILE);
    if !p.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&p).map_err(|e| Error::io("cannot read", &p, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| Error::Json { path: p, source })
}

/// Writes `pending.json` into a checkpoint folder being filled.
pub fn write_pending(dir: &Path, pending: &Pending) -> Result<()> {
    let p = dir.join(PENDING_FILE);
    let text = serde_json::to_string(pending).map_err(|source| Error::Json {
        path: p.clone(),
        source,
    })?;
    fs::write(&p, text).map_err(|e| Error::io("cannot write", &p, e))
}

/// Writes the LoRA adapters of a run into a checkpoint folder: the optimiser's f32 masters of
/// the trainable variables (the adapters) under PEFT's names, and PEFT's `adapter_config.json`
/// naming the base model, so `peft.PeftModel.from_pretrained(base, DIR)` loads the folder.
pub fn save_adapters(opt: &AdamW, lora: &LoraConfig, base: &str, dir: &Path) -> Result<()> {
    let named: Vec<(String, tch::Tensor)> = opt
        .master_weights()
        .into_iter()
        .map(|(n, t)| (lora::to_peft_name(&n), t))
        .collect();
    tch::Tensor::write_safetensors(&named, dir.join(ADAPTER_FILE))?;
    let json = serde_json::to_string_pretty(&lora::adapter_config_json(lora, base))
        .map_err(|e| Error::Contract(format!("adapter_config.json: {e}")))?;
    let path = dir.join(ADAPTER_CONFIG_FILE);
    fs::write(&path, json + "\n").map_err(|e| Error::io("cannot write", &path, e))
}

/// The folder of the checkpoint after `step` completed steps.
pub fn step_dir(run_dir: &Path, step: u64) -> PathBuf {
    wst_core::RunLayout::new(run_dir).checkpoint(step)
}

/// Saves a checkpoint: `fill` writes the files into a fresh temporary folder, which is then
/// renamed to `step-NNNNNNNN`. Keeps the newest `keep` checkpoints (0: all).
pub fn save(
    run_dir: &Path,
    step: u64,
    keep: usize,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    let root = run_dir.join(CHECKPOINTS);
    fs::create_dir_all(&root).map_err(|e| Error::io("cannot create", &root, e))?;
    let final_dir = step_dir(run_dir, step);
    let tmp = root.join(format!("{TMP_PREFIX}step-{step:08}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| Error::io("cannot remove", &tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    fill(&tmp)?;
    // Synced, then swapped in; an existing folder of this step is deleted only after the new
    // one is in place.
    atomic::replace_dir(&tmp, &final_dir)
        .map_err(|e| Error::io("cannot move into place", &tmp, e))?;
    if keep > 0 {
        let all = list(run_dir)?;
        for (step, old) in all.iter().take(all.len().saturating_sub(keep)) {
            // Renamed first, so a crash mid-removal leaves a `.tmp-` folder, not half a
            // checkpoint under a valid name.
            let doomed = root.join(format!("{TMP_PREFIX}old-step-{step:08}"));
            fs::rename(old, &doomed).map_err(|e| Error::io("cannot rename", old, e))?;
            fs::remove_dir_all(&doomed).map_err(|e| Error::io("cannot remove", &doomed, e))?;
        }
    }
    Ok(final_dir)
}

/// The checkpoints of a run, oldest first, as `(step, folder)`.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let root = run_dir.join(CHECKPOINTS);
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in fs::read_dir(&root).map_err(|e| Error::io("cannot list", &root, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", &root, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest checkpoint of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<(u64, PathBuf)>> {
    Ok(list(run_dir)?.pop())
}

/// Removes leftovers of interrupted writes (`.tmp-*` files and folders) in the run directory and
/// its checkpoint folder, after restoring a checkpoint that an interrupted replacement had moved
/// aside. Returns how many were removed or restored.
pub fn clean_partial(run_dir: &Path) -> Result<usize> {
    let mut n = 0;
    for dir in [run_dir.to_path_buf(), run_dir.join(CHECKPOINTS)] {
        // A checkpoint moved aside by an interrupted replacement goes back first.
        n += atomic::restore_replaced(&dir).map_err(|e| Error::io("cannot restore", &dir, e))?;
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            if atomic::is_temp_name(&entry.file_name().to_string_lossy()) {
                let p = entry.path();
                let r = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.map_err(|e| Error::io("cannot remove", &p, e))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Reads `trainer.json` of a checkpoint.
pub fn read_state(dir: &Path) -> Result<TrainerState> {
    let p = dir.join(STATE_FILE);
    let text = fs::read_to_string(&p).map_err(|e| Error::io("cannot read", &p, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json { path: p, source })
}

/// Writes `trainer.json` into a checkpoint folder being filled.
pub fn write_state(dir: &Path, state: &TrainerState) -> Result<()> {
    let p = dir.join(STATE_FILE);
    let text = serde_json::to_string_pretty(state).map_err(|source| Error::Json {
        path: p.clone(),
        source,
    })?;
    fs::write(&p, text).map_err(|e| Error::io("cannot write", &p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_keeps_the_newest_and_cleans_partials() {
        let dir = std::env::temp_dir().join(format!("wst-ckpt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for s in [1, 2, 3] {
            save(&dir, s, 2, |d| {
                fs::write(d.join("x"), s.to_string()).map_err(|e| Error::io("w", d, e))
            })
            .unwrap();
        }
        let steps: Vec<u64> = list(&dir).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![2, 3]);
        fs::create_dir_all(dir.join(CHECKPOINTS).join(".tmp-step-00000004")).unwrap();
        fs::write(dir.join(".tmp-metrics.jsonl.1"), "x").unwrap();
        assert_eq!(clean_partial(&dir).unwrap(), 2);
        assert_eq!(latest(&dir).unwrap().unwrap().0, 3);
        // Saving a step again replaces its folder whole; a replacement interrupted after the old
        // folder went aside is undone by clean_partial.
        save(&dir, 3, 2, |d| {
            fs::write(d.join("x"), "again").map_err(|e| Error::io("w", d, e))
        })
        .unwrap();
        let three = step_dir(&dir, 3);
        assert_eq!(fs::read_to_string(three.join("x")).unwrap(), "again");
        fs::rename(
            &three,
            dir.join(CHECKPOINTS).join(".tmp-replaced-step-00000003"),
        )
        .unwrap();
        assert_eq!(clean_partial(&dir).unwrap(), 1);
        assert_eq!(fs::read_to_string(three.join("x")).unwrap(), "again");
        fs::remove_dir_all(&dir).unwrap();
    }
}
