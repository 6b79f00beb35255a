#!/usr/bin/env bash
# Sampling throughput of wst (`wst bench generate` of $WST_BIN) against Python transformers
# (scripts/bench/generate_transformers.py) on the same workload, both in this one call:
# SmolLM2-135M-Instruct (the GGUF dequantised), batches of 16 and 64, 64 random prompt tokens +
# 64 new tokens per row (no early stop), f32 on the CPU. Prints each side's tokens/s and, last,
# the ratios (wst / transformers).
# Installs transformers, gguf and accelerate into the venv of $WST_PYTHON when missing.
#   WST_BENCH_BATCHES=16,64  WST_BENCH_PROMPT=64  WST_BENCH_NEW_TOKENS=64  WST_BENCH_ITERS=1
#   WST_BENCH_DTYPES=f32 (the wst rows; "f32 int8" adds int8, slow on CPUs without VNNI)  WST_BENCH_BF16=1 (transformers in bf16 too)
#   WST_BIN=path/to/wst (default: target/debug/wst, built first by `cargo build -p wst-cli`;
#   the time is in libtorch, so the dev profile measures the same as a release build)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
batches=${WST_BENCH_BATCHES:-16,64}
prompt=${WST_BENCH_PROMPT:-64}
new=${WST_BENCH_NEW_TOKENS:-64}
iters=${WST_BENCH_ITERS:-1}
dtypes=${WST_BENCH_DTYPES:-f32}
bf16=()
[ "${WST_BENCH_BF16:-0}" = 1 ] && bf16=(--bf16) && dtypes="bf16"
. scripts/bench/wst-bin.sh
wst_bin
# libgomp's spinning waits slow libtorch down when anything else runs (scripts/with-env.sh).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if ! "$WST_PYTHON" -c 'import transformers, gguf, accelerate' 2>/dev/null; then
  echo "[bench] installing transformers and gguf into $("$WST_PYTHON" -c 'import sys; print(sys.prefix)')" >&2
  "$WST_PYTHON" -m pip install --quiet transformers gguf numpy accelerate >&2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; wst: $WST_BIN" >&2
for b in ${batches//,/ }; do
  for dt in $dtypes; do
    echo "[bench] wst batch $b ($dt)..." >&2
    "$WST_BIN" bench generate --model "$WST_SMOLLM2_GGUF" --device cpu --dtype "$dt" --batch "$b" \
      --prompt-len "$prompt" --new-tokens "$new" --iters "$iters" --json | tee -a "$out/wst.jsonl" >&2
  done
done
echo "[bench] transformers..." >&2
"$WST_PYTHON" -W ignore scripts/bench/generate_transformers.py "$WST_SMOLLM2_GGUF" \
  --batches "$batches" --prompt-len "$prompt" --new-tokens "$new" --iters "$iters" "${bf16[@]}" \
  2>/dev/null | tee "$out/hf.jsonl" >&2
echo "[bench] load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

python3 - "$out/wst.jsonl" "$out/hf.jsonl" <<'PY'
import json, sys
wst = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
hf = {d["batch"]: d["tokens_per_s"] for d in map(json.loads, open(sys.argv[2]))}
print(f"{'batch':>6} {'wst dtype':>9} {'wst tok/s':>10} {'transformers tok/s':>19} {'ratio':>6}")
ratios = []
for w in wst:
    b, t, h = w["batch"], w["tokens_per_s"], hf.get(w["batch"])
    r = f"{t / h:.2f}" if h else "-"
    ratios.append(f"b{b} {w['dtype']} {r}")
    print(f"{b:>6} {w['dtype']:>9} {t:>10.1f} {h or '-':>19} {r:>6}")
print("ratio (wst / transformers tok/s, higher is better): " + ", ".join(ratios))
PY
