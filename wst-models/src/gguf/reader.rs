//! The GGUF container: header, metadata key/values, tensor infos and the aligned data section.
//!
//! Layout (little-endian): magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata
//! count (version 2 and 3; version 1 used `u32` counts and is refused), the metadata
//! key/values, the tensor infos (name, `u32` rank, `u64` dims innermost first, `u32` ggml type,
//! `u64` offset into the data section), then padding to `general.alignment` (default 32) and
//! the tensor data.

use std::path::{Path, PathBuf};

use super::dequant::{dequantize_into, GgmlType};
use super::error::{GgufError, Result};
use super::value::{GgufValue, GgufValueType};

/// Alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Where a tensor lies in the file and what it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// GGUF tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions, innermost (contiguous) first, as GGUF stores them: a `[rows, cols]` matrix
    /// has `dims == [cols, rows]`.
    pub dims: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// Number of bytes of data.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape in row-major (PyTorch) order: `dims` reversed.
    pub fn shape(&self) -> Vec<i64> {
        self.dims.iter().rev().map(|&d| d as i64).collect()
    }
}

/// A parsed GGUF file, its bytes held in memory.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata key/values in file order.
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensor infos in file order, each checked to lie inside the file.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data section and of each tensor's offset.
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
}

impl GgufFile {
    /// Reads and parses the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes, path)
    }

    /// Parses GGUF bytes; `origin` names them in error messages.
    pub fn from_bytes(bytes: Vec<u8>, origin: &Path) -> Result<Self> {
        let path = origin.to_path_buf();
        let mut r = Cursor {
            bytes: &bytes,
            pos: 0,
            path: &path,
        };
        let magic: [u8; 4] = r.array(|| "the magic".into())?;
        if &magic != b"GGUF" {
            return Err(GgufError::BadMagic { path, found: magic });
        }
        let version = r.u32(|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { path, version });
        }
        let n_tensors = r.u64(|| "the tensor count".into())?;
        let n_kv = r.u64(|| "the metadata count".into())?;
        // Every metadata entry and tensor info takes at least 8 bytes: reject absurd counts
        // before allocating.
        for (what, n) in [
            ("the tensor count", n_tensors),
            ("the metadata count", n_kv),
        ] {
            if n > bytes.len() as u64 / 8 {
                return Err(GgufError::BadSize {
                    path,
                    what: what.into(),
                    value: n,
                });
            }
        }

        let mut metadata = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r.string(|| format!("the key of metadata entry {i}"))?;
            let type_id = r.u32(|| format!("the value type of metadata key `{key}`"))?;
            let value = r.value(type_id, &key, None)?;
            metadata.push((key, value));
        }

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r.string(|| format!("the name of tensor info {i}"))?;
            let what = || format!("the info of tensor `{name}`");
            let n_dims = r.u32(what)?;
            if n_dims > 8 {
                return Err(GgufError::BadSize {
                    path,
                    what: format!("the rank of tensor `{name}`"),
                    value: n_dims.into(),
                });
            }
            let dims = (0..n_dims)
                .map(|_| r.u64(what))
                .collect::<Result<Vec<_>>>()?;
            let type_id = r.u32(what)?;
            let offset = r.u64(what)?;
            let ggml_type =
                GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownGgmlType {
                    tensor: name.clone(),
                    type_id,
                })?;
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| GgufError::BadSize {
                    path: path.clone(),
                    what: format!("the element count of tensor `{name}`"),
                    value: u64::MAX,
                })?;
            let n_bytes = ggml_type
                .bytes_for(n_elements)
                .map_err(|e| GgufError::InTensor {
                    tensor: name.clone(),
                    source: Box::new(e),
                })?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
                n_elements,
                n_bytes,
            });
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => v.as_u64().ok_or(GgufError::WrongValueType {
                key: "general.alignment".into(),
                expected: "an unsigned integer",
                found: v.value_type().name(),
            })?,
        };
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(GgufError::BadAlignment { path, alignment });
        }
        let data_offset = (r.pos as u64).div_ceil(alignment) * alignment;
        let len = bytes.len() as u64;
        for t in &tensors {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(t.n_bytes));
            match (start, end) {
                (Some(_), Some(end)) if end <= len => {}
                _ => {
                    return Err(GgufError::TensorOutOfBounds {
                        path,
                        tensor: t.name.clone(),
                        start: data_offset.saturating_add(t.offset),
                        end: data_offset
                            .saturating_add(t.offset)
                            .saturating_add(t.n_bytes),
                        len,
                    })
                }
            }
        }
        Ok(Self {
            path,
            bytes,
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The metadata value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The metadata value of `key`, or [`GgufError::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    /// A required unsigned integer value.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| wrong(key, "an unsigned integer", v))
    }

    /// A required float (or integer) value.
    pub fn require_f64(&self, key: &str) -> Result<f64> {
        let v = self.require(key)?;
        v.as_f64().ok_or_else(|| wrong(key, "a number", v))
    }

    /// A required string value.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| wrong(key, "a string", v))
    }

    /// An optional unsigned integer value (an error if present with another type).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| wrong(key, "an unsigned integer", v))
            })
            .transpose()
    }

    /// An optional float (or integer) value (an error if present with another type).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| wrong(key, "a number", v)))
            .transpose()
    }

    /// An optional bool value (an error if present with another type).
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| wrong(key, "a bool", v)))
            .transpose()
    }

    /// An optional string value (an error if present with another type).
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| wrong(key, "a string", v)))
            .transpose()
    }

    /// The info of tensor `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor's data (bounds were checked when the file was parsed).
    pub fn tensor_bytes(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.bytes[start..start + info.n_bytes as usize]
    }

    /// A tensor's values dequantised to `f32`, in storage order (row-major in
    /// [`TensorInfo::shape`]).
    pub fn tensor_f32(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        let mut out = vec![0f32; info.n_elements as usize];
        self.tensor_f32_into(info, &mut out)?;
        Ok(out)
    }

    /// [`GgufFile::tensor_f32`] into a caller's buffer, resized to the element count.
    pub fn tensor_f32_into(&self, info: &TensorInfo, out: &mut Vec<f32>) -> Result<()> {
        out.resize(info.n_elements as usize, 0.0);
        dequantize_into(info.ggml_type, self.tensor_bytes(info), out).map_err(|e| {
            GgufError::InTensor {
                tensor: info.name.clone(),
                source: Box::new(e),
            }
        })
    }
}

fn wrong(key: &str, expected: &'static str, v: &GgufValue) -> GgufError {
    GgufError::WrongValueType {
        key: key.into(),
        expected,
        found: v.value_type().name(),
    }
}

/// A bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let end = (self.pos as u64)
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len() as u64);
        let Some(end) = end else {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                offset: self.pos as u64,
                len: self.bytes.len() as u64,
            });
        };
        let s = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: impl Fn() -> String) -> Result<String> {
        let n = self.u64(&what)?;
        let raw = self.take(n, &what)?.to_vec();
        String::from_utf8(raw).map_err(|source| GgufError::Utf8 {
            path: self.path.to_path_buf(),
            what: what(),
            source,
        })
    }

    /// Reads a value of type `type_id`: the value of metadata `key`, or its element `index`.
    fn value(&mut self, type_id: u32, key: &str, index: Option<u64>) -> Result<GgufValue> {
        let name = || match index {
            Some(i) => format!("{key}[{i}]"),
            None => key.to_string(),
        };
        let ty = GgufValueType::from_id(type_id).ok_or_else(|| GgufError::UnknownValueType {
            path: self.path.to_path_buf(),
            key: name(),
            type_id,
        })?;
        let what = || format!("the value of metadata key `{}`", name());
        Ok(match ty {
            GgufValueType::U8 => GgufValue::U8(self.array::<1>(what)?[0]),
            GgufValueType::I8 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            GgufValueType::U32 => GgufValue::U32(self.u32(what)?),
            GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            GgufValueType::Bool => GgufValue::Bool(self.array::<1>(what)?[0] != 0),
            GgufValueType::String => GgufValue::String(self.string(what)?),
            GgufValueType::U64 => GgufValue::U64(self.u64(what)?),
            GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            GgufValueType::Array => {
                let elem_id = self.u32(what)?;
                let elem =
                    GgufValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
                        path: self.path.to_path_buf(),
                        key: format!("{}[]", name()),
                        type_id: elem_id,
                    })?;
                let n = self.u64(what)?;
                // Every element takes at least one byte: refuse counts the file cannot hold.
                if n > (self.bytes.len() - self.pos) as u64 {
                    return Err(GgufError::Truncated {
                        path: self.path.to_path_buf(),
                        what: format!("the {n} elements of metadata array `{}`", name()),
                        offset: self.pos as u64,
                        len: self.bytes.len() as u64,
                    });
                }
                let items = (0..n)
                    .map(|i| self.value(elem_id, key, Some(i)))
                    .collect::<Result<Vec<_>>>()?;
                GgufValue::Array(elem, items)
            }
        })
    }
}
