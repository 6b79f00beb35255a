#!/usr/bin/env bash
# Runs ON the GPU machine, from the folder scripts/gpu/pack.sh filled (.gpu/): CUDA correctness
# checks, then the benchmarks of issue 8 with the two Python reference scripts in the same call,
# then a table of ratios against the targets. Needs PyTorch 2.11 (CUDA 13) there: no Rust, no
# network. Full logs and JSON go to $OUT (default ./out); the table is printed last.
#
# Usage: run.sh [--cpu-smoke] [--skip-reference]
#   --cpu-smoke       everything on the CPU with tiny sizes (tests this script without a GPU)
#   --skip-reference  do not run the Python reference scripts
# Honours: WST_GPU_PYTHON (default /opt/torch/.venv/bin/python, else python3), OUT,
#          WST_SMOLLM2_GGUF (used when the pack has no GGUF), WST_BENCH_ITERS (default 3).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
smoke=0
reference=1
for arg in "$@"; do
  case "$arg" in
    --cpu-smoke) smoke=1 ;;
    --skip-reference) reference=0 ;;
    *) echo "run.sh: unknown argument $arg (use --cpu-smoke, --skip-reference)" >&2; exit 2 ;;
  esac
done
py=${WST_GPU_PYTHON:-/opt/torch/.venv/bin/python}
[ -x "$py" ] || py=$(command -v python3)
torch_lib=$("$py" -W ignore -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') \
  || { echo "run.sh: $py cannot import torch" >&2; exit 1; }
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
wst=$here/bin/wst
if [ ! -x "$wst" ] && [ -f "$wst.gz" ]; then
  gunzip -c "$wst.gz" > "$wst.tmp" && chmod +x "$wst.tmp" && mv "$wst.tmp" "$wst"
fi
out=${OUT:-$here/out}
mkdir -p "$out"
: > "$out/checks.jsonl"
: > "$out/bench.jsonl"
: > "$out/failures.txt"
iters=${WST_BENCH_ITERS:-3}
log() { printf '[run] %s\n' "$*" >&2; }

"$wst" info | tee "$out/info.txt"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' \
  | tee -a "$out/info.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.draw --format=csv 2>/dev/null \
  | tee -a "$out/info.txt" || true

if [ "$smoke" = 1 ]; then dev=cpu; else dev=cuda; fi

# 1. Correctness: device against the CPU and the Python reference vectors.
check() { # name, wst bench check args...
  local name=$1; shift
  log "check $name"
  if ! "$wst" bench check --device "$dev" --json "$@" >> "$out/checks.jsonl" 2>> "$out/checks.log"; then
    echo "check $name" >> "$out/failures.txt"
  fi
}
for t in tiny-qwen2 tiny-llama-sharded tiny-gemma; do
  check "$t" --model "$here/testvectors/$t" --reference "$here/testvectors/$t/reference.json"
done
gguf=$(ls "$here"/models/*.gguf 2>/dev/null | head -1)
[ -n "$gguf" ] || gguf=${WST_SMOLLM2_GGUF:-}
if [ -n "$gguf" ] && [ -f "$gguf" ]; then
  check smollm2 --model "$gguf" --reference "$here/testvectors/smollm2-135m-instruct-q4_1.json"
else
  log "no SmolLM2 GGUF in the pack or WST_SMOLLM2_GGUF: SmolLM2 check skipped"
  echo '{"model":"smollm2","skipped":true}' >> "$out/checks.jsonl"
fi

# 2. Benchmarks (one JSON line each).
bench() { # label, wst bench args...
  local label=$1; shift
  log "bench $label"
  if ! "$wst" bench "$@" --device "$dev" --iters "$iters" --json 2>> "$out/bench.log" \
      | sed "s/^{/{\"label\":\"$label\",/" >> "$out/bench.jsonl"; then
    echo "bench $label" >> "$out/failures.txt"
  fi
}
if [ "$smoke" = 1 ]; then
  g="--preset smollm2-135m --batch 2 --prompt-len 8 --new-tokens 8 --warmup 0"
  bench gen-smoke-graph generate $g
  bench gen-smoke-eager generate $g --no-cuda-graph
  bench train-smoke train-step --preset smollm2-135m --batch 2 --seq 16 --prompt-len 8 --micro-batch 1 --chunk 4 --warmup 0
else
  for p in 0.5b 1.5b; do
    for bs in 64 8; do
      [ "$p" = 1.5b ] && [ "$bs" = 8 ] && continue
      bench "gen-$p-bs$bs-graph" generate --preset "qwen2.5-$p" --batch "$bs"
      bench "gen-$p-bs$bs-eager" generate --preset "qwen2.5-$p" --batch "$bs" --no-cuda-graph
    done
  done
  bench train-0.5b train-step --preset qwen2.5-0.5b
  bench train-0.5b-one-pass train-step --preset qwen2.5-0.5b --one-pass-head
fi

# 3. The Python reference scripts, same card, same call.
if [ "$reference" = 1 ] && [ "$smoke" = 0 ]; then
  log "reference: torch_decode_eager_vs_graph.py"
  "$py" "$here/reference/torch_decode_eager_vs_graph.py" > "$out/ref_torch_graph.txt" 2>&1 \
    || echo "reference torch_decode_eager_vs_graph.py" >> "$out/failures.txt"
  log "reference: hf_generate_train_baseline.py 0.5B 1.5B"
  "$py" "$here/reference/hf_generate_train_baseline.py" 0.5B 1.5B > "$out/ref_hf.txt" 2>&1 \
    || echo "reference hf_generate_train_baseline.py" >> "$out/failures.txt"
elif [ "$smoke" = 1 ]; then
  "$py" -m py_compile "$here/reference/torch_decode_eager_vs_graph.py" \
    "$here/reference/hf_generate_train_baseline.py" || echo "reference scripts do not compile" >> "$out/failures.txt"
fi

# 4. The table (last, so the end of the output carries it).
"$py" - "$out" <<'PY'
import json, re, sys, os
out = sys.argv[1]
def lines(name):
    p = os.path.join(out, name)
    return open(p).read().splitlines() if os.path.exists(p) else []
bench = {}
for l in lines("bench.jsonl"):
    try:
        v = json.loads(l); bench[v["label"]] = v
    except Exception:
        pass
checks = [json.loads(l) for l in lines("checks.jsonl") if l.strip()]
hf, tg = {}, {}
for l in lines("ref_hf.txt"):
    m = re.search(r"\[(\S+)\] HF generate bs=(\d+) .*?(\d+) tok/s\s+([\d.]+) ms/step", l)
    if m: hf[(m[1].lower(), int(m[2]))] = float(m[3])
    m = re.search(r"\[(\S+)\] train step .*?: ([\d.]+)s/step .*peak ([\d.]+) GiB", l)
    if m: hf[("train", m[1].lower())] = (float(m[2]), float(m[3]))
for l in lines("ref_torch_graph.txt"):
    m = re.search(r"python (eager|CUDA-graph) decode bs=\d+: ([\d.]+) ms/step (\d+) tok/s", l)
    if m: tg[m[1]] = float(m[3])
print()
print("== correctness ==")
for c in checks:
    if c.get("skipped"):
        print(f"SKIP  {c['model']}")
        continue
    for k in c.get("checks", []):
        print(f"{'PASS' if k['pass'] else 'FAIL'}  {os.path.basename(c['model'])}: {k['check']}: {k['detail']}")
print()
print("== benchmarks ==")
print(f"{'label':28} {'device':10} {'dtype':5} {'tok/s':>10} {'ms/step':>9} {'peak GiB':>9}")
for k, v in bench.items():
    print(f"{k:28} {v['device']:10} {v['dtype']:5} {v['tokens_per_s']:>10.0f} {v['ms_per_step']:>9.2f} {v['peak_memory_bytes']/2**30:>9.2f}")
for (k, b), t in sorted((k, t) for k, t in hf.items() if k[0] != "train"):
    print(f"{'transformers ' + k + ' bs' + str(b):28} {'':10} {'bf16':5} {t:>10.0f}")
for k, t in tg.items():
    print(f"{'torch ' + k + ' decode 0.5b bs64':28} {'':10} {'bf16':5} {t:>10.0f}")
if ("train", "0.5b") in hf:
    s, gib = hf[("train", "0.5b")]
    print(f"{'pytorch eager train 0.5b':28} {'':10} {'bf16':5} {'':>10} {s*1e3:>9.1f} {gib:>9.2f}")
print()
print("== targets (issue 8) ==")
def ratio(name, num, den, target, higher=True):
    if num is None or den is None or den == 0:
        print(f"{name:58} n/a (missing measurement)"); return
    r = num / den
    ok = r >= target if higher else r <= target
    print(f"{name:58} {r:8.2f}  target {'>=' if higher else '<='} {target:<5} {'MET' if ok else 'MISSED'}")
g = bench.get("gen-0.5b-bs64-graph", {}).get("tokens_per_s")
ratio("generation 0.5B bs64 (graph) / transformers generate", g, hf.get(("0.5b", 64)), 20)
ratio("generation 0.5B bs64 (graph) / torch CUDA-graph decode", g, tg.get("CUDA-graph"), 1.0)
g8 = bench.get("gen-0.5b-bs8-graph", {}).get("tokens_per_s")
ratio("generation 0.5B bs8 (graph) / transformers generate", g8, hf.get(("0.5b", 8)), 20)
g15 = bench.get("gen-1.5b-bs64-graph", {}).get("tokens_per_s")
ratio("generation 1.5B bs64 (graph) / transformers generate", g15, hf.get(("1.5b", 64)), 20)
t = bench.get("train-0.5b")
ht = hf.get(("train", "0.5b"))
ratio("train step 0.5B 64x384 time / pytorch eager", t and t["seconds"], ht and ht[0], 0.8, higher=False)
ratio("train step 0.5B peak memory / pytorch eager", t and t["peak_memory_bytes"] / 2**30, ht and ht[1], 1.0, higher=False)
fails = lines("failures.txt")
print()
print("failures: " + ("; ".join(fails) if fails else "none"))
PY
[ -s "$out/failures.txt" ] && exit 1
exit 0
