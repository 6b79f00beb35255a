//! Atomic file writes: a hidden temp file in the same folder, synced, then renamed over the target.
//! A crash at any instant leaves the old file (or none) and at worst a `.NAME.tmp-*` file, which
//! never matches a `*.parquet` pattern and is removed by [`remove_stale_temps`].

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::{DataError, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The marker in temp-file names.
const TMP_MARK: &str = ".tmp-";

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!(".{name}{TMP_MARK}{}-{n}", std::process::id()))
}

/// Writes `target` atomically with `write`, which gets a buffered writer on the temp file.
pub(crate) fn write_atomic<F>(target: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_path(target);
    let result = (|| {
        let f = File::create(&tmp).map_err(|e| DataError::io(&tmp, "cannot create", e))?;
        let mut w = BufWriter::new(f);
        write(&mut w)?;
        let f = w
            .into_inner()
            .map_err(|e| DataError::io(&tmp, "cannot write", e.into_error()))?;
        f.sync_all()
            .map_err(|e| DataError::io(&tmp, "cannot sync", e))?;
        std::fs::rename(&tmp, target).map_err(|e| DataError::io(target, "cannot rename into", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else if let Some(dir) = target.parent() {
        // Persist the rename itself (best effort: not every platform can sync a folder).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    result
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
        if !(name.starts_with('.') && name.contains(TMP_MARK)) {
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
