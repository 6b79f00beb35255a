#!/usr/bin/env bash
# Builds the release `wst` binary on this (CPU) machine and packs into .gpu/ (git-ignored)
# everything a GPU machine with PyTorch 2.11 (CUDA 13) needs to run scripts/gpu/run.sh there:
# the binary, the small Python reference vectors, the two reference Python scripts and run.sh.
# No Rust toolchain is needed on the GPU machine: libtorch's ABI is the wheel's, so the binary
# runs against that machine's torch/lib (run.sh sets LD_LIBRARY_PATH).
#
# The SmolLM2 GGUF (98 MB) is packed only when the pack stays under WST_PACK_MAX_MIB (default
# 60: a device tool that carries at most 64 MiB), or with --with-gguf; run.sh then also checks
# SmolLM2 on the GPU. Otherwise run.sh uses $WST_SMOLLM2_GGUF on the GPU machine if set, and
# skips the SmolLM2 check if not (the tiny reference models are always checked).
#
# Usage: scripts/gpu/pack.sh [--with-gguf] [--no-build]
# Honours: WST_SHARED (default ../shared beside the repository), WST_PACK_MAX_MIB,
#          CARGO_TARGET_DIR, LIBTORCH / the setup script's cache, WST_PACK_BIN (pack this
#          binary instead of the release build, e.g. a debug one to test the scripts).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
with_gguf=0
build=1
for arg in "$@"; do
  case "$arg" in
    --with-gguf) with_gguf=1 ;;
    --no-build) build=0 ;;
    *) echo "pack.sh: unknown argument $arg (use --with-gguf, --no-build)" >&2; exit 2 ;;
  esac
done
log() { printf '[pack] %s\n' "$*" >&2; }

shared=${WST_SHARED:-$root/../shared}
[ -d "$shared/testvectors" ] || { log "no test vectors at $shared/testvectors (set WST_SHARED)"; exit 1; }
eval "$(bash scripts/setup.sh)"
target=${CARGO_TARGET_DIR:-$root/target}
if [ -n "${WST_PACK_BIN:-}" ]; then
  build=0
fi
if [ "$build" = 1 ]; then
  log "building the release wst binary (cargo build --release -p wst-cli)"
  cargo build --release --locked -p wst-cli >&2
fi
bin=${WST_PACK_BIN:-$target/release/wst}
[ -x "$bin" ] || { log "no binary at $bin (build it, or drop --no-build)"; exit 1; }

out=$root/.gpu
rm -rf "$out"
mkdir -p "$out/bin" "$out/testvectors" "$out/reference" "$out/models"
# Symbols are not needed there; stripped and gzipped the binary is ~27 MB instead of 94 MB, which
# keeps the pack under the 64 MiB a remote run may carry. run.sh unpacks it.
strip -o "$out/bin/wst" "$bin" 2>/dev/null || cp "$bin" "$out/bin/wst"
gzip -9 -f "$out/bin/wst"
for t in tiny-qwen2 tiny-llama-sharded tiny-gemma; do
  cp -r "$shared/testvectors/$t" "$out/testvectors/"
done
cp "$shared/testvectors/smollm2-135m-instruct-q4_1.json" "$out/testvectors/"
cp "$shared/reference/hf_generate_train_baseline.py" "$shared/reference/torch_decode_eager_vs_graph.py" \
  "$out/reference/"
cp scripts/gpu/run.sh "$out/run.sh"
chmod +x "$out/run.sh"

max_mib=${WST_PACK_MAX_MIB:-60}
size_mib() { du -sm "$1" | cut -f1; }
gguf=${WST_SMOLLM2_GGUF:-}
if [ -n "$gguf" ] && [ -f "$gguf" ]; then
  total=$(( $(size_mib "$out") + $(size_mib "$gguf") ))
  if [ "$with_gguf" = 1 ] || [ "$total" -le "$max_mib" ]; then
    cp "$gguf" "$out/models/"
    log "packed the SmolLM2 GGUF ($(size_mib "$gguf") MiB)"
  else
    log "SmolLM2 GGUF left out: the pack would be $total MiB > $max_mib MiB (WST_PACK_MAX_MIB);"
    log "  run.sh checks the tiny reference models; pass --with-gguf to include it, or set"
    log "  WST_SMOLLM2_GGUF on the GPU machine"
  fi
fi
log "packed $(size_mib "$out") MiB into $out:"
du -sh "$out"/* >&2
