//! Atomic writes, std only: every store of the workspace (checkpoints, rollouts, baselines,
//! metrics, `wst verify --output`) writes through here, so a crash at any instant leaves the old
//! file or folder (or none) and at worst a hidden `.tmp-*` leftover, never half a file under its
//! real name.
//!
//! A file is written to a temporary file in the same folder, which is synced, renamed over the
//! target, and the folder is synced so the rename itself survives a power loss. A folder is
//! filled under a temporary name and swapped in by [`replace_dir`], which never deletes the old
//! folder before the new one is in place: the old one is renamed aside first, and
//! [`restore_replaced`] puts it back if a crash came between the two renames.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every temporary name (files and folders). Names starting with it are leftovers of
/// an interrupted write and may be removed by cleaners ([`is_temp_name`]).
pub const TMP_PREFIX: &str = ".tmp-";

/// Prefix of a folder moved aside by [`replace_dir`] (followed by the folder's own name).
const REPLACED_PREFIX: &str = ".tmp-replaced-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// True for names of temporary files or folders written by this module (`.tmp-...`), and for the
/// older `.NAME.tmp-...` form of wst-data's writer.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TMP_PREFIX) || (name.starts_with('.') && name.contains(TMP_PREFIX))
}

/// A fresh temporary path next to `target`: `.tmp-NAME.PID-N` in the same folder (never
/// matching a `*.parquet` or `*.safetensors` pattern).
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    target.with_file_name(format!("{TMP_PREFIX}{name}.{}-{n}", std::process::id()))
}

/// Syncs a folder, so renames and creations inside it are durable. Best effort where the
/// platform cannot open folders (an error is returned only when the sync itself fails).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all().or_else(|e| {
            // Some file systems refuse fsync on a folder (EINVAL): nothing more can be done.
            if e.kind() == io::ErrorKind::InvalidInput {
                Ok(())
            } else {
                Err(e)
            }
        }),
        Err(_) => Ok(()),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file being written atomically: bytes go to a temporary file next to the target, and
/// [`AtomicFile::commit`] syncs it, renames it over the target and syncs the folder. Dropped
/// without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file for `target`.
    pub fn create(target: &Path) -> io::Result<Self> {
        let tmp = temp_path(target);
        let file = File::create(&tmp)?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            tmp,
            writer: Some(BufWriter::new(file)),
        })
    }

    /// The buffered writer on the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer
            .as_mut()
            .expect("AtomicFile: the writer lives until commit")
    }

    /// The file being replaced.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes and syncs the temporary file, renames it over the target and syncs the folder.
    pub fn commit(mut self) -> io::Result<()> {
        let writer = self
            .writer
            .take()
            .expect("AtomicFile: commit is called once");
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.target)?;
        sync_dir(parent_of(&self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() || self.tmp.exists() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `target` atomically.
pub fn write_file(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Syncs every file under `dir` (recursively) and the folders themselves.
pub fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path)?.sync_all()?;
        }
    }
    sync_dir(dir)
}

/// Moves the fully written folder `staged` to `target`, replacing a folder already there.
///
/// The staged tree is synced first. An existing `target` is renamed aside (to
/// `.tmp-replaced-NAME` in the same parent), `staged` is renamed in, the parent is synced, and only
/// then is the old folder deleted. A crash between the renames leaves the old folder under the
/// aside name: [`restore_replaced`] renames it back when `target` is missing.
pub fn replace_dir(staged: &Path, target: &Path) -> io::Result<()> {
    sync_tree(staged)?;
    let parent = parent_of(target);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = parent.join(format!("{REPLACED_PREFIX}{name}"));
    let had_old = target.exists();
    if had_old {
        if aside.exists() {
            fs::remove_dir_all(&aside)?;
        }
        fs::rename(target, &aside)?;
    }
    if let Err(e) = fs::rename(staged, target) {
        if had_old {
            let _ = fs::rename(&aside, target);
        }
        return Err(e);
    }
    sync_dir(parent)?;
    if had_old {
        fs::remove_dir_all(&aside)?;
    }
    Ok(())
}

/// Undoes an interrupted [`replace_dir`] in `parent`: a folder moved aside whose target is
/// missing is renamed back; one whose target exists (the replacement landed) is removed.
/// Returns how many were restored.
pub fn restore_replaced(parent: &Path) -> io::Result<usize> {
    let Ok(rd) = fs::read_dir(parent) else {
        return Ok(0);
    };
    let mut restored = 0;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(orig) = name.strip_prefix(REPLACED_PREFIX) else {
            continue;
        };
        let target = parent.join(orig);
        if target.exists() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::rename(entry.path(), &target)?;
            restored += 1;
        }
    }
    if restored > 0 {
        sync_dir(parent)?;
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("wst-atomic-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn write_file_replaces_and_leaves_no_temp() {
        let d = scratch("file");
        let f = d.join("a.txt");
        write_file(&f, b"one").unwrap();
        write_file(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        let names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.txt".to_string()]);
        // An uncommitted file leaves the old one and no temporary behind.
        {
            let mut w = AtomicFile::create(&f).unwrap();
            w.write_all(b"three").unwrap();
        }
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        assert!(is_temp_name(
            &temp_path(&f).file_name().unwrap().to_string_lossy()
        ));
        assert!(is_temp_name(".x.parquet.tmp-1-2") && !is_temp_name("x.parquet"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replace_dir_swaps_and_an_interrupted_swap_is_restored() {
        let d = scratch("dir");
        let target = d.join("step-1");
        let staged = d.join(".tmp-step-1");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("x"), "new").unwrap();
        replace_dir(&staged, &target).unwrap();
        assert_eq!(fs::read_to_string(target.join("x")).unwrap(), "new");
        fs::create_dir_all(&staged).unwrap();
        fs::write(staged.join("x"), "newer").unwrap();
        replace_dir(&staged, &target).unwrap();
        assert_eq!(fs::read_to_string(target.join("x")).unwrap(), "newer");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        // A crash after the old folder went aside and before the new one came in.
        fs::rename(&target, d.join(".tmp-replaced-step-1")).unwrap();
        assert_eq!(restore_replaced(&d).unwrap(), 1);
        assert_eq!(fs::read_to_string(target.join("x")).unwrap(), "newer");
        // A crash after the new one came in: the aside copy is removed.
        fs::create_dir_all(d.join(".tmp-replaced-step-1")).unwrap();
        assert_eq!(restore_replaced(&d).unwrap(), 0);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        fs::remove_dir_all(&d).unwrap();
    }
}
