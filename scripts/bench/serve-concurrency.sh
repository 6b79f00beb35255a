#!/usr/bin/env bash
# Batching of `wst serve`: N concurrent chat requests (default 64) against `wst serve --model
# smollm2`, against the same requests sent one at a time. Prints the load, p50/p99 latency of
# each mode and, last, the throughput ratio (concurrent / one at a time). Not a timed test.
#   WST_BENCH_REQUESTS=64  WST_BENCH_MAX_TOKENS=32  WST_BENCH_MODEL=smollm2
#   WST_BIN=path/to/wst (default: the debug build, built first)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
n=${WST_BENCH_REQUESTS:-64}
max_tokens=${WST_BENCH_MAX_TOKENS:-32}
model=${WST_BENCH_MODEL:-smollm2}
. scripts/bench/wst-bin.sh
wst_bin
log=$(mktemp)
"$WST_BIN" serve --model "$model" --port 0 --device cpu --max-batch "$n" >"$log" 2>"$log.err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log" "$log.err"' EXIT
for _ in $(seq 600); do
  grep -q 'listening on' "$log" && break
  kill -0 $pid 2>/dev/null || { cat "$log.err" >&2; exit 1; }
  sleep 0.2
done
url=$(sed -n 's/^wst serve: listening on //p' "$log")
echo "[bench] load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; $n requests, $max_tokens tokens, $model at $url" >&2
python3 - "$url" "$n" "$max_tokens" "$model" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

url, n, max_tokens, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def ask(i):
    body = json.dumps({
        "model": model, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "user", "content": f"What is {i % 10} + {(i * 7) % 10}?"}],
    }).encode()
    req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=3600) as r:
        out = json.load(r)
    return time.perf_counter() - t, out["usage"]["completion_tokens"], out["choices"][0]["message"]["content"]

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

ask(0)  # warm-up
results = {}
t = time.perf_counter()
seq = [ask(i) for i in range(n)]
results["one at a time"] = (time.perf_counter() - t, seq)
t = time.perf_counter()
with ThreadPoolExecutor(n) as pool:
    conc = list(pool.map(ask, range(n)))
results["concurrent"] = (time.perf_counter() - t, conc)
same = sum(a[2] == b[2] for a, b in zip(seq, conc))
for name, (wall, rs) in results.items():
    lat = [r[0] for r in rs]
    toks = sum(r[1] for r in rs)
    print(f"{name:>14}: {wall:7.1f} s, {n / wall:6.2f} req/s, {toks / wall:7.1f} tok/s, "
          f"p50 {pct(lat, 0.5):6.2f} s, p99 {pct(lat, 0.99):6.2f} s")
print(f"greedy replies equal in both modes: {same}/{n}")
print(f"throughput ratio (concurrent / one at a time): {results['one at a time'][0] / results['concurrent'][0]:.2f}x")
PY
