"""Recomputes a run's per-step means from its rollout Parquet files with polars and compares them
with `wst report --json` (the acceptance check that an external reader sees the same numbers).

    python scripts/check-report.py RUN_DIR WST_BINARY
Prints one line per step and exits 1 on any difference above 1e-9.
"""
import json
import subprocess
import sys

import polars as pl

run_dir, wst = sys.argv[1], sys.argv[2]
ours = pl.scan_parquet(f"{run_dir}/rollouts/*.parquet").group_by("step").agg(
    pl.len().alias("samples"),
    pl.col("reward_mean").mean(),
    pl.col("baseline").mean(),
    pl.col("reward").mean().alias("uplift"),
    pl.col("instruction_tokens").cast(pl.Float64).mean(),
).sort("step").collect()
out = subprocess.run([wst, "report", "--json", run_dir], check=True, capture_output=True, text=True)
theirs = {d["step"]: d for d in map(json.loads, out.stdout.splitlines())}
bad = 0
for row in ours.iter_rows(named=True):
    w = theirs.get(row["step"])
    if w is None:
        print(f"step {row['step']}: missing from wst report")
        bad += 1
        continue
    diffs = []
    for k in ["reward_mean", "baseline", "uplift", "instruction_tokens"]:
        a, b = row[k], w[k]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-9):
            diffs.append(f"{k}: polars {a} vs wst {b}")
    if row["samples"] != w["samples"]:
        diffs.append(f"samples: polars {row['samples']} vs wst {w['samples']}")
    print(f"step {row['step']:>3}: reward {row['reward_mean']:.4f} baseline {row['baseline']:.4f} "
          f"uplift {row['uplift']:+.4f} " + ("OK" if not diffs else "DIFF " + "; ".join(diffs)))
    bad += bool(diffs)
if len(theirs) != ours.height:
    print(f"wst report has {len(theirs)} steps, polars {ours.height}")
    bad += 1
sys.exit(1 if bad else 0)
