#!/usr/bin/env bash
# The asynchronous pipeline (`grpo.async = true`) against the synchronous one, in this one call:
# the same `wst train` run twice (SmolLM2-135M teacher on the CPU, arithmetic queries) against
# an HTTP student that answers every request after a fixed delay (scripts/bench/delayed_student.py,
# a local OpenAI-compatible server), each mode in its own output folder (no shared baselines).
# Prints per mode the seconds per step, steps per minute, the teacher's own work per step
# (sampling + update) and how long it waited for the student; the async/sync ratio last. The
# async run should approach max(teacher work, student latency) per step.
#   WST_BENCH_DELAY=4 (seconds per student call)  WST_BENCH_STEPS=6  WST_BIN=path/to/wst
#   (default: target/debug/wst, built here)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
delay=${WST_BENCH_DELAY:-4}
steps=${WST_BENCH_STEPS:-6}
. scripts/bench/wst-bin.sh
wst_bin
out=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
python3 -u scripts/bench/delayed_student.py --delay "$delay" >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q listening "$out/server.log" 2>/dev/null && break
  sleep 0.1
done
port=$(awk '/listening on/ {print $3}' "$out/server.log")
[ -n "$port" ] || { echo "the delayed student did not start: $(cat "$out/server.log")" >&2; exit 1; }
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; student delay ${delay} s on port $port; wst: $WST_BIN" >&2

for mode in sync async; do
  flag=false
  [ "$mode" = async ] && flag=true
  echo "[bench] $mode: $steps steps..." >&2
  start=$(date +%s.%N)
  "$WST_BIN" train --config configs/demo.toml --quiet \
    --set "run.output_dir=\"$out/$mode\"" --set 'run.name="bench"' --set "run.steps=$steps" \
    --set run.save_every=0 --set run.keep_checkpoints=1 \
    --set grpo.batch_size=2 --set grpo.group_size=4 --set grpo.micro_batch_size=8 \
    --set "grpo.async=$flag" \
    --set 'student.kind="openai"' --set 'student.model="delayed"' \
    --set "student.base_urls=[\"http://127.0.0.1:$port/v1\"]" \
    --set student.samples=1 --set student.baseline_samples=1 --set student.timeout_s=120 \
    >"$out/$mode.log" 2>&1 || { cat "$out/$mode.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print($end - $start)" >"$out/$mode.wall"
done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = {}
for mode in ("sync", "async"):
    ms = [json.loads(l) for l in open(os.path.join(out, mode, "bench", "metrics.jsonl"))]
    n = len(ms)
    step = sum(m["t_step"] for m in ms) / n
    teacher = sum(m["t_teacher_gen"] + m["t_update"] for m in ms) / n
    wait = sum(m["t_teacher_wait"] for m in ms) / n
    student = sum(m["t_student"] for m in ms) / n
    wall = float(open(os.path.join(out, mode + ".wall")).read())
    rows[mode] = (n, step, 60 / step, teacher, student, wait, max(m["staleness"] for m in ms), wall)
print(f"{'mode':>6} {'steps':>5} {'s/step':>7} {'steps/min':>9} {'teacher s':>9} {'student s':>9} "
      f"{'teacher idle s':>14} {'staleness':>9} {'wall s':>7}")
for mode, (n, step, spm, teacher, student, wait, stale, wall) in rows.items():
    print(f"{mode:>6} {n:>5} {step:>7.2f} {spm:>9.2f} {teacher:>9.2f} {student:>9.2f} "
          f"{wait:>14.2f} {stale:>9} {wall:>7.1f}")
s, a = rows["sync"], rows["async"]
bound = max(a[3], a[4])
print(f"async/sync time per step: {a[1] / s[1]:.2f} (async {a[1]:.2f} s against "
      f"max(teacher work, student latency) = {bound:.2f} s)")
PY
