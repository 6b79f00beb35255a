"""Sampling throughput of Python transformers on SmolLM2 (the GGUF, dequantised to float32).
Default workload, that of `benches/benches/generate.rs`: chat-formatted arithmetic prompts,
left-padded batches of 16 and 64, 64 new tokens each (end tokens ignored), temperature 0.7.
With `--prompt-len L`, that of `wst bench generate --prompt-len L`: L random token ids per row
(no padding), temperature 1.

Prints one JSON line per batch size: {"batch": B, "new_tokens": N, "seconds": S, "tokens_per_s": T}
(S: the median of `--iters` timed runs after a short warm-up).
Usage: generate_transformers.py GGUF_PATH [--batches 16,64] [--new-tokens 64] [--prompt-len L]
       [--iters 1] [--bf16]
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
    ap.add_argument("--prompt-len", type=int, default=0, help="random prompts of this many tokens")
    ap.add_argument("--iters", type=int, default=1)
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
        if args.prompt_len > 0:
            # `wst bench generate`'s prompts: random ids in [100, 30000), no padding.
            torch.manual_seed(0)
            ids = torch.randint(100, min(30000, model.config.vocab_size), (b, args.prompt_len))
            enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        else:
            texts = [
                tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
                for q in prompts(b)
            ]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw = dict(
            do_sample=True,
            temperature=1.0 if args.prompt_len > 0 else 0.7,
            top_p=1.0,
            top_k=0,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        with torch.inference_mode():
            torch.manual_seed(0)
            model.generate(**enc, **dict(kw, max_new_tokens=4, min_new_tokens=4))  # warm-up
            times = []
            for _ in range(max(1, args.iters)):
                start = time.perf_counter()
                out = model.generate(**enc, **kw)
                times.append(time.perf_counter() - start)
            secs = sorted(times)[len(times) // 2]
        n = (out.shape[1] - enc["input_ids"].shape[1]) * b
        print(json.dumps({"impl": "transformers", "batch": b, "new_tokens": args.new_tokens,
                          "prompt_len": enc["input_ids"].shape[1],
                          "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
                          "seconds": round(secs, 3), "tokens_per_s": round(n / secs, 2)}), flush=True)


if __name__ == "__main__":
    main()
