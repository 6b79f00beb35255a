#!/usr/bin/env bash
# Sampling throughput of wst (benches/benches/generate.rs, release build) against Python
# transformers (scripts/bench/generate_transformers.py) on the same workload: SmolLM2-135M
# Instruct, batches of 16 and 64, 64 new tokens, f32 on the CPU. Prints both and the ratio.
# Installs transformers, gguf and accelerate into the venv of $WST_PYTHON when missing.
#   WST_BENCH_BATCHES=16,64  WST_BENCH_NEW_TOKENS=64  WST_BENCH_BF16=1 (both sides in bf16)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
batches=${WST_BENCH_BATCHES:-16,64}
new=${WST_BENCH_NEW_TOKENS:-64}
bf16=()
[ "${WST_BENCH_BF16:-0}" = 1 ] && bf16=(--bf16)

if ! "$WST_PYTHON" -c 'import transformers, gguf, accelerate' 2>/dev/null; then
  echo "[bench] installing transformers and gguf into $("$WST_PYTHON" -c 'import sys; print(sys.prefix)')" >&2
  "$WST_PYTHON" -m pip install --quiet transformers gguf numpy accelerate >&2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
echo "[bench] wst (cargo bench, release)..." >&2
WST_BENCH_BATCHES=$batches WST_BENCH_NEW_TOKENS=$new \
  cargo bench -p wst-benches --bench bench_main -- generate 2>/dev/null | tee "$out/wst.txt" | grep '^generate/' >&2 || true
echo "[bench] transformers..." >&2
"$WST_PYTHON" -W ignore scripts/bench/generate_transformers.py "$WST_SMOLLM2_GGUF" \
  --batches "$batches" --new-tokens "$new" "${bf16[@]}" 2>/dev/null | tee "$out/hf.jsonl" >&2

python3 - "$out/wst.txt" "$out/hf.jsonl" <<'PY'
import json, re, sys
wst = {}
for line in open(sys.argv[1]):
    m = re.match(r"generate/smollm2/b(\d+): ([0-9.]+) tok/s", line)
    if m:
        wst[int(m.group(1))] = float(m.group(2))
hf = {d["batch"]: d["tokens_per_s"] for d in map(json.loads, open(sys.argv[2]))}
print(f"{'batch':>6} {'wst tok/s':>10} {'transformers tok/s':>19} {'ratio':>6}")
for b in sorted(set(wst) | set(hf)):
    w, h = wst.get(b), hf.get(b)
    r = f"{w / h:.2f}" if w and h else "-"
    print(f"{b:>6} {w or '-':>10} {h or '-':>19} {r:>6}")
PY
