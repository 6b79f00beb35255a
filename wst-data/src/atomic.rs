//! Atomic file writes through [`wst_core::atomic`] (the one helper of the workspace): a hidden
//! `.tmp-*` file in the same folder, synced, renamed over the target, the folder synced. A crash
//! at any instant leaves the old file (or none) and at worst a `.tmp-*` file, which never matches
//! a `*.parquet` pattern and is removed by [`remove_stale_temps`].

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use wst_core::atomic::{is_temp_name, AtomicFile};

use crate::error::{DataError, Result};

/// Writes `target` atomically with `write`, which gets a buffered writer on the temp file.
pub(crate) fn write_atomic<F>(target: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let mut file =
        AtomicFile::create(target).map_err(|e| DataError::io(target, "cannot create", e))?;
    write(file.writer())?;
    file.commit()
        .map_err(|e| DataError::io(target, "cannot write", e))
}

/// Writes `bytes` to `target` atomically (temp file in the same folder, synced, renamed).
pub fn write_file_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    write_atomic(target, |w| {
        w.write_all(bytes)
            .map_err(|e| DataError::io(target, "cannot write", e))
    })
}

/// Writes record batches as one snappy-compressed Parquet file, atomically.
pub(crate) fn write_parquet_atomic(target: &Path, batch: &RecordBatch) -> Result<()> {
    write_atomic(target, |w| {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build();
        let perr = |source| DataError::Parquet {
            path: target.to_path_buf(),
            source,
        };
        let mut writer = ArrowWriter::try_new(w, batch.schema(), Some(props)).map_err(perr)?;
        writer.write(batch).map_err(perr)?;
        writer.close().map_err(perr)?;
        Ok(())
    })?;
    Ok(())
}

/// Removes temp files left in `dir` by writers that were killed, when older than `min_age`
/// (zero: all, for folders only one writer uses). Returns how many.
pub(crate) fn remove_stale_temps(dir: &Path, min_age: std::time::Duration) -> Result<usize> {
    let mut n = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list", e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !is_temp_name(&name) {
            continue;
        }
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if age >= min_age && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    Ok(n)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
