//! [`WeightStore`]: named tensors from safetensors files (one file, or shards listed in
//! `model.safetensors.index.json`), memory-mapped, or from tensors already in memory (GGUF).
//!
//! Models take each tensor they need by name with the shape they expect
//! ([`WeightStore::take`]); a missing or misshapen tensor is an error that names it and its file,
//! and whatever was never taken can be listed ([`WeightStore::unused`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use tch::{nn, Kind, Tensor};

use crate::error::read_json;
use crate::{Error, Result};

/// Where one tensor's bytes are.
enum Entry {
    /// In a mapped safetensors file.
    Mapped {
        file: usize,
        dtype: Dtype,
        shape: Vec<i64>,
        /// Byte range within the file.
        start: usize,
        end: usize,
    },
    /// Already a tensor (GGUF, tests).
    Memory(Tensor),
}

/// A mapped safetensors file.
struct MappedFile {
    path: PathBuf,
    map: Mmap,
}

/// Named tensors from safetensors files or memory, taken one by one by a model loader.
pub struct WeightStore {
    origin: String,
    files: Vec<MappedFile>,
    entries: BTreeMap<String, Entry>,
    taken: BTreeSet<String>,
}

impl std::fmt::Debug for WeightStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightStore")
            .field("origin", &self.origin)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// Maps a file read-only.
#[allow(unsafe_code)]
fn map_file(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and lives inside the store; like every safetensors loader we
    // rely on weight files not being truncated or rewritten while a model loads. Bytes are copied
    // into tensors (with bounds checked against the map length) before the store is dropped.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

impl WeightStore {
    /// Opens the weights of a model folder (`model.safetensors.index.json` with its shards, or
    /// every `*.safetensors` file), or a single `.safetensors` file.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_file() {
            return Self::open_files(&[path.to_path_buf()]);
        }
        let index = path.join("model.safetensors.index.json");
        if index.is_file() {
            return Self::open_index(&index);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| Error::io(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::MissingTensor {
                tensor: "*".into(),
                origin: format!("{} (no *.safetensors file)", path.display()),
            });
        }
        Self::open_files(&files)
    }

    /// Opens the shards listed in a `model.safetensors.index.json` (`weight_map`).
    pub fn open_index(index: &Path) -> Result<Self> {
        let v = read_json(index)?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::Config {
                origin: index.display().to_string(),
                field: "weight_map".into(),
                problem: "missing (an object of tensor name -> shard file is expected)".into(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards = BTreeSet::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| Error::Config {
                origin: index.display().to_string(),
                field: format!("weight_map.{name}"),
                problem: "expected a file name".into(),
            })?;
            shards.insert(dir.join(file));
        }
        let files: Vec<PathBuf> = shards.into_iter().collect();
        let store = Self::open_files(&files)?;
        for name in map.keys() {
            if !store.entries.contains_key(name) {
                return Err(Error::MissingTensor {
                    tensor: name.clone(),
                    origin: format!("the shard {} names for it", index.display()),
                });
            }
        }
        Ok(store)
    }

    /// Opens and indexes the given safetensors files.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = BTreeMap::new();
        for (i, path) in paths.iter().enumerate() {
            let map = map_file(path)?;
            let (n, meta) =
                SafeTensors::read_metadata(&map).map_err(|source| Error::SafeTensors {
                    path: path.clone(),
                    source,
                })?;
            let base = 8 + n;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                if base + e > map.len() || s > e {
                    return Err(Error::TensorShape {
                        tensor: name,
                        origin: format!("{} (data past the end of the file)", path.display()),
                        expected: vec![],
                        found: info.shape.iter().map(|&d| d as i64).collect(),
                    });
                }
                entries.insert(
                    name,
                    Entry::Mapped {
                        file: i,
                        dtype: info.dtype,
                        shape: info.shape.iter().map(|&d| d as i64).collect(),
                        start: base + s,
                        end: base + e,
                    },
                );
            }
            files.push(MappedFile {
                path: path.clone(),
                map,
            });
        }
        let origin = match paths {
            [one] => one.display().to_string(),
            _ => format!(
                "{} ({} files)",
                paths
                    .first()
                    .and_then(|p| p.parent())
                    .map_or_else(String::new, |d| d.display().to_string()),
                paths.len()
            ),
        };
        Ok(WeightStore {
            origin,
            files,
            entries,
            taken: BTreeSet::new(),
        })
    }

    /// A store of tensors already in memory (e.g. a converted GGUF); `origin` names them.
    pub fn from_tensors(tensors: Vec<(String, Tensor)>, origin: impl Into<String>) -> Self {
        WeightStore {
            origin: origin.into(),
            files: Vec::new(),
            entries: tensors
                .into_iter()
                .map(|(n, t)| (n, Entry::Memory(t)))
                .collect(),
            taken: BTreeSet::new(),
        }
    }

    /// What the weights were read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every tensor name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// True if a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        self.entries.get(name).map(|e| match e {
            Entry::Mapped { shape, .. } => shape.clone(),
            Entry::Memory(t) => t.size(),
        })
    }

    fn origin_of(&self, name: &str) -> String {
        match self.entries.get(name) {
            Some(Entry::Mapped { file, .. }) => self.files[*file].path.display().to_string(),
            _ => self.origin.clone(),
        }
    }

    /// The tensor `name` on the CPU in its stored kind (f32, f16, bf16, f64 or i64), checked to have
    /// `shape`. Marks it as used.
    pub fn take(&mut self, name: &str, shape: &[i64]) -> Result<Tensor> {
        let entry = self.entries.get(name).ok_or_else(|| Error::MissingTensor {
            tensor: name.to_string(),
            origin: self.origin.clone(),
        })?;
        let found = match entry {
            Entry::Mapped { shape, .. } => shape.clone(),
            Entry::Memory(t) => t.size(),
        };
        if found != shape {
            return Err(Error::TensorShape {
                tensor: name.to_string(),
                origin: self.origin_of(name),
                expected: shape.to_vec(),
                found,
            });
        }
        let tensor = match entry {
            Entry::Memory(t) => t.shallow_clone(),
            Entry::Mapped {
                file,
                dtype,
                start,
                end,
                ..
            } => {
                let kind = match dtype {
                    Dtype::F32 => Kind::Float,
                    Dtype::F16 => Kind::Half,
                    Dtype::BF16 => Kind::BFloat16,
                    Dtype::F64 => Kind::Double,
                    Dtype::I64 => Kind::Int64,
                    other => {
                        return Err(Error::TensorDtype {
                            tensor: name.to_string(),
                            origin: self.origin_of(name),
                            dtype: format!("{other:?}"),
                        })
                    }
                };
                let bytes = &self.files[*file].map[*start..*end];
                let numel: i64 = shape.iter().product();
                if bytes.len() as i64 != numel * kind.elt_size_in_bytes() as i64 {
                    return Err(Error::TensorShape {
                        tensor: name.to_string(),
                        origin: format!("{} (byte length {})", self.origin_of(name), bytes.len()),
                        expected: shape.to_vec(),
                        found,
                    });
                }
                Tensor::f_from_data_size(bytes, shape, kind)?
            }
        };
        self.taken.insert(name.to_string());
        Ok(tensor)
    }

    /// Fills every variable of `vs` with the tensor of its name (shapes checked; the stored kind
    /// is converted to the variable's, so f32 checkpoint weights load into a bf16 model). Every
    /// missing name is reported at once; tensors left over are in [`WeightStore::unused`].
    pub fn load_into(&mut self, vs: &nn::VarStore) -> Result<()> {
        let vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        self.load_vars(vars)
    }

    /// Fills the given variables (name, handle) as [`WeightStore::load_into`] does, e.g. only
    /// the trainable ones (LoRA adapters).
    pub fn load_vars(&mut self, mut vars: Vec<(String, Tensor)>) -> Result<()> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let missing: Vec<&str> = vars
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !self.contains(n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingTensor {
                tensor: missing.join(", "),
                origin: self.origin.clone(),
            });
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in vars {
                let t = self.take(&name, &var.size())?;
                var.f_copy_(&t)?;
            }
            Ok(())
        })
    }

    /// Names of the tensors never taken (a loader logs them: they may mean a wrong layout).
    pub fn unused(&self) -> Vec<String> {
        self.entries
            .keys()
            .filter(|k| !self.taken.contains(*k))
            .cloned()
            .collect()
    }
}
