#!/usr/bin/env bash
# GRPO train step of wst (`wst bench train-step`, the update function `wst train` runs) against
# PyTorch eager (scripts/bench/train_step_torch.py: the same surrogate, clip_grad_norm_ and
# torch.optim.AdamW) on the same shapes: SmolLM2-135M, random weights, f32 (or WST_BENCH_DTYPE)
# on the CPU. Both run in this one call, back to back per shape; prints each side's time and peak
# memory, the ratio last.
#   WST_BENCH_SHAPES="2x16:8 8x96:32"  (batch x seq : prompt tokens)   WST_BENCH_ITERS=5
#   WST_BENCH_WARMUP=3  (untimed steps first, on both sides: PyTorch's steps take 3-5 steps to
#   settle on the CPU, 0.5-0.8 s at 2x16 before 0.48 s, so a single warm-up step flatters wst)
#   WST_BENCH_GROUP=1  (consecutive sequences sharing their prompt, as a GRPO group; wst runs a
#   shared prompt once per micro-batch, the reference runs every row whole either way)
#   WST_BENCH_DTYPE=f32  (bf16: wst's bf16 weights with f32 masters against the same recipe in
#   PyTorch, train_step_torch.py --bf16; dtype `auto` trains in bf16 on CPUs with AVX512-BF16)
#   WST_BIN=path/to/wst  (default: cargo build --release -p wst-cli)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
shapes=${WST_BENCH_SHAPES:-"2x16:8 8x96:32"}
dtype=${WST_BENCH_DTYPE:-f32}
case "$dtype" in
  f32) torch_dtype=() ;;
  bf16) torch_dtype=(--bf16) ;;
  *) echo "WST_BENCH_DTYPE must be f32 or bf16, not $dtype" >&2; exit 2 ;;
esac
iters=${WST_BENCH_ITERS:-5}
warmup=${WST_BENCH_WARMUP:-3}
. scripts/bench/wst-bin.sh
wst_bin release
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; wst: $WST_BIN" >&2
for shape in $shapes; do
  bs=${shape%%:*}; prompt=${shape##*:}; b=${bs%%x*}; s=${bs##*x}
  echo "[bench] $b x $s (prompt $prompt): wst..." >&2
  "$WST_BIN" bench train-step --preset smollm2-135m --device cpu --dtype "$dtype" --batch "$b" \
    --seq "$s" --prompt-len "$prompt" --micro-batch "$b" --group "${WST_BENCH_GROUP:-1}" \
    --warmup "$warmup" --iters "$iters" --json >>"$out/wst.jsonl"
  echo "[bench] $b x $s (prompt $prompt): pytorch eager..." >&2
  "$WST_PYTHON" -W ignore scripts/bench/train_step_torch.py --batch "$b" --seq "$s" \
    --prompt-len "$prompt" --micro-batch "$b" --warmup "$warmup" --iters "$iters" "${torch_dtype[@]}" >>"$out/torch.jsonl"
done
python3 - "$out/wst.jsonl" "$out/torch.jsonl" <<'PY'
import json, sys
wst = [json.loads(l) for l in open(sys.argv[1])]
pt = [json.loads(l) for l in open(sys.argv[2])]
gib = lambda b: b / 2**30
print(f"{'shape':>8} {'wst s/step':>11} {'wst GiB':>8} {'torch s/step':>13} {'torch GiB':>10} {'time ratio':>11}")
for w, t in zip(wst, pt):
    shape = f"{w['batch']}x{w['seq']}"
    print(f"{shape:>8} {w['seconds']:>11.3f} {gib(w['peak_memory_bytes']):>8.2f} "
          f"{t['seconds']:>13.3f} {gib(t['peak_memory_bytes']):>10.2f} {w['seconds'] / t['seconds']:>11.2f}")
print("ratio (wst / pytorch, lower is better): " +
      ", ".join(f"{w['batch']}x{w['seq']} {w['seconds'] / t['seconds']:.2f}" for w, t in zip(wst, pt)))
PY
