//! Links libtorch_cuda into the `wst` binary even though no symbol of it is referenced (without
//! `--no-as-needed` the linker drops it and CUDA is silently unavailable), and records an rpath to
//! the libtorch the build used so the binary runs without LD_LIBRARY_PATH on this machine. On a
//! GPU machine, LD_LIBRARY_PATH pointing at that machine's torch/lib takes precedence (RUNPATH).
//!
//! The torch/lib folder is the one torch-sys linked (`DEP_TCH_LIBTORCH_LIB`, its build-script
//! metadata): wst-models' build script reads the same variable, so both always agree with tch.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        println!(
            "cargo:warning=torch-sys reported no torch/lib; the wst binary needs LD_LIBRARY_PATH"
        );
        return;
    };
    println!("cargo:rustc-link-search=native={}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg-bins=-ltorch_cuda");
        println!("cargo:rustc-link-arg-bins=-Wl,--as-needed");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
    // Test binaries of this crate run the same code: give them the rpath too.
    println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", lib.display());
}
