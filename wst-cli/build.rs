//! Links libtorch_cuda into the `wst` binary even though no symbol of it is referenced (without
//! `--no-as-needed` the linker drops it and CUDA is silently unavailable), and records an rpath to
//! the libtorch the build used so the binary runs without LD_LIBRARY_PATH on this machine. On a
//! GPU machine, LD_LIBRARY_PATH pointing at that machine's torch/lib takes precedence (RUNPATH).

use std::path::PathBuf;
use std::process::Command;

fn torch_lib_dir() -> Option<PathBuf> {
    if let Ok(lt) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(lt).join("lib"));
    }
    let python = std::env::var("WST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-W",
            "ignore",
            "-c",
            "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.is_dir().then_some(dir)
}

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=WST_PYTHON");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    let Some(lib) = torch_lib_dir() else {
        println!("cargo:warning=could not locate torch/lib; the wst binary needs LD_LIBRARY_PATH");
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
