#!/usr/bin/env python3
"""A reward program for wst's `kind = "command"` components.

wst starts it once and keeps it running. For every student reply it writes one JSON line to
stdin:

    {"query": "...", "reference": "42" or null, "reply": "...", "instruction": "..." or null,
     "metadata": {...}, "query_id": "..."}

and reads one JSON line back from stdout: {"score": x}, or {"components": {"name": x, ...}}
when the config lists `outputs = ["name", ...]`. Print nothing else on stdout (logs go to
stderr); exit when stdin closes. A crash, a malformed line or a reply slower than `timeout_s`
stops the run with this program's stderr.

This one rewards short replies that end with a number: 1 for at most 40 words, falling linearly
to 0 at 200 words, halved when the reply has no number in its last line.
"""
import json
import re
import sys


def score(reply: str) -> float:
    words = len(reply.split())
    s = 1.0 if words <= 40 else max(0.0, 1.0 - (words - 40) / 160)
    last = reply.strip().splitlines()[-1] if reply.strip() else ""
    if not re.search(r"-?\d", last):
        s *= 0.5
    return s


def main() -> None:
    for line in sys.stdin:
        x = json.loads(line)
        print(json.dumps({"score": score(x["reply"])}), flush=True)


if __name__ == "__main__":
    main()
