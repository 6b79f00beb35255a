//! Ties the build of the workspace to the checkout it is built from.
//!
//! `scripts/with-env.sh` keeps one cargo target folder in the cache for every clone, so a fresh
//! clone reuses compiled dependencies. Cargo fingerprints workspace crates by paths relative to
//! the workspace, so without this a clone at another path would also reuse test binaries that
//! carry the first clone's `CARGO_MANIFEST_DIR` and `CARGO_BIN_EXE_*` paths (and fail once that
//! clone is gone). `WST_REPO_ROOT` (the checkout, exported by `with-env.sh`) changes with the
//! path, which reruns this script and rebuilds the workspace crates, not their dependencies.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WST_REPO_ROOT");
}
