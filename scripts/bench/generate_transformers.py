"""Sampling throughput of Python transformers on SmolLM2 (the GGUF, dequantised to float32),
the same workload as `benches/benches/generate.rs`: chat-formatted arithmetic prompts,
left-padded batches of 16 and 64, 64 new tokens each (end tokens ignored), temperature 0.7.

Prints one JSON line per batch size: {"batch": B, "new_tokens": N, "seconds": S, "tokens_per_s": T}.
Usage: generate_transformers.py GGUF_PATH [--batches 16,64] [--new-tokens 64] [--bf16]
"""

import argparse
import json
import os
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def prompts(n):
    """The arithmetic questions of the Rust bench (`wst_benches::sample_queries`)."""
    return [f"What is {i % 10} + {(i * 7) % 10}?" for i in range(n)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    model.eval()
    for b in [int(x) for x in args.batches.split(",")]:
        texts = [
            tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
            for q in prompts(b)
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw = dict(
            do_sample=True,
            temperature=0.7,
            top_p=1.0,
            top_k=0,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        with torch.inference_mode():
            torch.manual_seed(0)
            model.generate(**enc, **dict(kw, max_new_tokens=4, min_new_tokens=4))  # warm-up
            start = time.perf_counter()
            out = model.generate(**enc, **kw)
            secs = time.perf_counter() - start
        n = (out.shape[1] - enc["input_ids"].shape[1]) * b
        print(json.dumps({"impl": "transformers", "batch": b, "new_tokens": args.new_tokens,
                          "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
                          "seconds": round(secs, 3), "tokens_per_s": round(n / secs, 2)}), flush=True)


if __name__ == "__main__":
    main()
