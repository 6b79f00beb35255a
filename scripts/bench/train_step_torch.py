"""PyTorch eager reference for `wst bench train-step`: the same GRPO-shaped step on random
weights with the shape of SmolLM2-135M (Llama: hidden 576, 30 layers, 9 heads / 3 KV heads,
MLP 1536, vocab 49152, tied embeddings), written in plain PyTorch (no transformers).

Per step: for each micro-batch, the decoder's hidden states with gradients, the f32 log-probs of
the completion tokens, the surrogate loss -sum(exp(lp - lp.detach()) * A) / tokens, backward;
then clip_grad_norm_(1.0) and torch.optim.AdamW (foreach, the default) at lr 1e-6. Prints one JSON
line: seconds per step (median), tokens/s and the peak resident set (VmHWM) of the process.

--bf16: the model's weights in bf16 for the forward and backward (as a bf16 teacher in wst) and an
f32 master copy of every weight in AdamW: after backward the bf16 gradients are copied into the
masters' f32 gradients, clipped and stepped there, and the masters are copied back into the bf16
weights (the usual bf16-with-f32-master recipe of Megatron or DeepSpeed, in plain PyTorch).
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Decoder(torch.nn.Module):
    def __init__(self, vocab, hidden, layers, heads, kv, inter, theta, eps):
        super().__init__()
        self.heads, self.kv, self.d, self.eps = heads, kv, hidden // heads, eps
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.layers = torch.nn.ModuleList()
        for _ in range(layers):
            m = torch.nn.Module()
            m.n1 = torch.nn.Parameter(torch.ones(hidden))
            m.q = torch.nn.Linear(hidden, heads * self.d, bias=False)
            m.k = torch.nn.Linear(hidden, kv * self.d, bias=False)
            m.v = torch.nn.Linear(hidden, kv * self.d, bias=False)
            m.o = torch.nn.Linear(heads * self.d, hidden, bias=False)
            m.n2 = torch.nn.Parameter(torch.ones(hidden))
            m.gate = torch.nn.Linear(hidden, inter, bias=False)
            m.up = torch.nn.Linear(hidden, inter, bias=False)
            m.down = torch.nn.Linear(inter, hidden, bias=False)
            self.layers.append(m)
        self.norm = torch.nn.Parameter(torch.ones(hidden))
        inv = 1.0 / theta ** (torch.arange(0, self.d, 2, dtype=torch.float32) / self.d)
        self.register_buffer("inv_freq", inv, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def rms(self, x, w):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * w

    def hidden(self, ids):
        b, t = ids.shape
        x = self.embed(ids)
        freqs = torch.arange(t, dtype=torch.float32)[:, None] * self.inv_freq[None]
        emb = torch.cat([freqs, freqs], -1)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)

        def rope(u):
            a, c = u[..., : self.d // 2], u[..., self.d // 2 :]
            return u * cos + torch.cat([-c, a], -1) * sin

        for m in self.layers:
            h = self.rms(x, m.n1)
            q = rope(m.q(h).view(b, t, self.heads, self.d).transpose(1, 2))
            k = rope(m.k(h).view(b, t, self.kv, self.d).transpose(1, 2))
            v = m.v(h).view(b, t, self.kv, self.d).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            x = x + m.o(a.transpose(1, 2).reshape(b, t, -1))
            h = self.rms(x, m.n2)
            x = x + m.down(F.silu(m.gate(h)) * m.up(h))
        return self.rms(x, self.norm)


def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=96)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Decoder(49152, 576, 30, 9, 3, 1536, 100000.0, 1e-5)
    params = list(model.parameters())
    if a.bf16:
        masters = [p.detach().clone() for p in params]
        model.to(torch.bfloat16)
        model.inv_freq = model.inv_freq.float()  # rotary frequencies stay f32, as in wst
        params = list(model.parameters())
    else:
        masters = params
    opt = torch.optim.AdamW(masters, lr=1e-6, weight_decay=0.01)
    ids = torch.randint(100, 30000, (a.batch, a.seq))
    adv = torch.randn(a.batch)
    tokens = a.batch * (a.seq - a.prompt_len)

    def step():
        opt.zero_grad(set_to_none=True)
        for p in params:
            p.grad = None
        total = 0.0
        for s in range(0, a.batch, a.micro_batch):
            x = ids[s : s + a.micro_batch]
            h = model.hidden(x)[:, a.prompt_len - 1 : -1]
            logits = (h @ model.embed.weight.T).float()
            lp = logits.log_softmax(-1).gather(-1, x[:, a.prompt_len :, None]).squeeze(-1)
            loss = -((lp - lp.detach()).exp() * adv[s : s + a.micro_batch, None]).sum() / tokens
            loss.backward()
            total += loss.detach()
        if a.bf16:
            for m, p in zip(masters, params):
                m.grad = p.grad.float() if p.grad is not None else None
        torch.nn.utils.clip_grad_norm_(masters, 1.0)
        opt.step()
        if a.bf16:
            with torch.no_grad():
                for m, p in zip(masters, params):
                    p.copy_(m)
        return float(total)

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.iters):
        t = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t)
    secs = sorted(times)[len(times) // 2]
    print(
        json.dumps(
            {
                "bench": "train-step-torch",
                "dtype": "bf16" if a.bf16 else "f32",
                "batch": a.batch,
                "seq": a.seq,
                "seconds": secs,
                "seconds_all": times,
                "tokens_per_s": a.batch * a.seq / secs,
                "loss": loss if math.isfinite(loss) else None,
                "peak_memory_bytes": peak_rss(),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
