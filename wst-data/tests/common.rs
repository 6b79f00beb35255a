//! Shared helpers: paths of the offline datasets and config builders.

use std::path::PathBuf;

use wst_core::{DataConfig, DatasetKind};

/// A file under `shared/data/`, with a clear failure when the asset is missing.
pub fn shared(rel: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")).join(rel);
    assert!(
        p.exists(),
        "offline test asset {} is missing (the repository must sit beside `shared/`)",
        p.display()
    );
    p
}

/// A `[data]` table reading `path` as `kind`, no shuffle.
pub fn cfg(kind: DatasetKind, path: impl Into<String>) -> DataConfig {
    DataConfig {
        dataset: kind,
        path: Some(path.into()),
        shuffle: false,
        ..DataConfig::default()
    }
}

/// The path as a string.
pub fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}
