//! Builds the CUDA-graph shim (`csrc/cuda_graph.cpp`, a C ABI over `at::cuda::CUDAGraph` and the
//! caching allocator's statistics) when the libtorch in use has CUDA: its headers, the CUDA
//! runtime headers and `libtorch_cuda` must all be found. libtorch is the one torch-sys linked
//! (`DEP_TCH_LIBTORCH_LIB`, as in wst-cli's build script). CUDA headers come from
//! `CUDA_HOME`, the wheel's `nvidia/cu*/include`, or `/usr/local/cuda/include`.
//!
//! When any piece is missing (a CPU-only libtorch) the shim is skipped and the crate is built
//! without the `wst_cuda_graph` cfg: decoding then always runs eagerly. `WST_NO_CUDA_GRAPH_SHIM=1`
//! skips it on purpose.
//!
//! Also builds the fbgemm int8 linear shim (`csrc/fbgemm_linear.cpp`, CPU) whenever the torch
//! headers are found, with the cfg `wst_fbgemm` (int8 inference; without it `_int_mm`). Both
//! shims share `csrc/guarded.h` (C++ exceptions to error messages).

use std::path::{Path, PathBuf};

/// The torch root (a folder with `include/` and `lib/`): the parent of the torch/lib folder that
/// torch-sys linked, from its build-script metadata (`DEP_TCH_LIBTORCH_LIB`).
fn torch_root() -> Option<PathBuf> {
    let lib = PathBuf::from(std::env::var_os("DEP_TCH_LIBTORCH_LIB")?);
    lib.parent().map(Path::to_path_buf)
}

/// A folder holding `cuda_runtime_api.h`.
fn cuda_include(torch: &Path) -> Option<PathBuf> {
    // The PyPI wheel ships these headers without `crt/` (scripts/setup.sh adds it).
    let has =
        |d: &Path| d.join("cuda_runtime_api.h").is_file() && d.join("crt/host_defines.h").is_file();
    if let Ok(home) = std::env::var("CUDA_HOME") {
        let d = PathBuf::from(home).join("include");
        if has(&d) {
            return Some(d);
        }
    }
    // The PyPI wheel: site-packages/torch beside site-packages/nvidia/cu13/include.
    if let Some(site) = torch.parent() {
        if let Ok(entries) = std::fs::read_dir(site.join("nvidia")) {
            let mut dirs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("include"))
                .filter(|d| has(d))
                .collect();
            dirs.sort();
            if let Some(d) = dirs.pop() {
                return Some(d);
            }
        }
    }
    let d = PathBuf::from("/usr/local/cuda/include");
    has(&d).then_some(d)
}

fn main() {
    for var in [
        "DEP_TCH_LIBTORCH_LIB",
        "CUDA_HOME",
        "WST_NO_CUDA_GRAPH_SHIM",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    println!("cargo:rerun-if-changed=csrc/fbgemm_linear.cpp");
    println!("cargo:rerun-if-changed=csrc/guarded.h");
    println!("cargo::rustc-check-cfg=cfg(wst_cuda_graph)");
    println!("cargo::rustc-check-cfg=cfg(wst_fbgemm)");
    let Some(root) = torch_root() else {
        println!("cargo:warning=torch not found: CUDA graphs and fbgemm int8 disabled");
        return;
    };
    let include = root.join("include");
    fbgemm_shim(&root);
    if std::env::var("WST_NO_CUDA_GRAPH_SHIM").is_ok_and(|v| v == "1") {
        return;
    }
    let lib = root.join("lib");
    let graph_header = include.join("ATen/cuda/CUDAGraph.h");
    if !graph_header.is_file() || !lib.join("libtorch_cuda.so").is_file() {
        // A CPU-only libtorch: nothing to build, and no warning (it is a normal set-up).
        return;
    }
    let Some(cuda) = cuda_include(&root) else {
        println!(
            "cargo:warning=CUDA runtime headers (with crt/) not found; set CUDA_HOME or run \
             scripts/setup.sh (it installs nvidia-cuda-crt): CUDA graphs disabled"
        );
        return;
    };
    torch_cpp(&include)
        .include(&cuda)
        .file("csrc/cuda_graph.cpp")
        .compile("wst_cuda_graph");
    println!("cargo:rustc-link-search=native={}", lib.display());
    for l in ["torch_cuda", "c10_cuda", "torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    println!("cargo:rustc-cfg=wst_cuda_graph");
}

/// The fbgemm int8 linear shim (`csrc/fbgemm_linear.cpp`, CPU only): built whenever the torch
/// headers are there, with the cfg `wst_fbgemm`; without it int8 projections use `_int_mm`.
fn fbgemm_shim(root: &Path) {
    let include = root.join("include");
    let lib = root.join("lib");
    if !include
        .join("ATen/ops/fbgemm_linear_int8_weight_fp32_activation.h")
        .is_file()
    {
        println!("cargo:warning=ATen without fbgemm_linear_int8_weight_fp32_activation: int8 uses _int_mm");
        return;
    }
    torch_cpp(&include)
        .file("csrc/fbgemm_linear.cpp")
        .compile("wst_fbgemm_linear");
    println!("cargo:rustc-link-search=native={}", lib.display());
    for l in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={l}");
    }
    println!("cargo:rustc-cfg=wst_fbgemm");
}

/// A C++ build against the torch headers under `include` (the flags libtorch's ABI needs).
fn torch_cpp(include: &Path) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(true)
        .pic(true)
        .warnings(false)
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT");
    b
}
