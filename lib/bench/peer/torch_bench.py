#!/usr/bin/env python3
"""PyTorch CPU peer for `attnlab bench`: the same workloads, timed in this process, driven over JSON lines.

The Node runner starts this once and interleaves it with its own runs: it writes one request per line on stdin and
reads one reply per line on stdout.

  {"cmd": "setup", "name": "gemm-1024", "kind": "gemm", "params": {"n": 1024}}  -> {"ok": true}
  {"cmd": "run", "name": "gemm-1024"}                                         -> {"ok": true, "seconds": 0.0061}
  {"cmd": "dispose", "name": "gemm-1024"}                                     -> {"ok": true}

Run with OMP_WAIT_POLICY=PASSIVE and 2 threads (the runner sets both): with the default active wait, OpenMP's spinning
threads fight OpenBLAS's and every op runs about 2x slower.

Attention is PyTorch's "manual" attention (1.13 has no scaled_dot_product_attention): scores, masked_fill, softmax,
matmul. The ToyLM step mirrors lib/layers/toylm.ts: learned positions, pre-norm blocks, exact GELU MLP, untied
unembedding, Adam. The decode workload runs the same model with a KV cache, greedy, batch 1 (as ToyLM.generate).
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, s, d = x.shape
        h = self.ln1(x)
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)  # [b, h, s, dh]
        q, k, v = split(self.wq(h)), split(self.wk(h)), split(self.wv(h))
        z = manual_attention(q, k, v, mask)
        x = x + self.wo(z.transpose(1, 2).reshape(b, s, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ToyLM(nn.Module):
    def __init__(self, vocab, d, heads, layers, max_len):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(max_len, d) * 0.01)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.lnf = nn.LayerNorm(d)
        self.unembed = nn.Linear(d, vocab, bias=False)

    def forward(self, tokens, mask):
        x = self.embed(tokens) + self.pos[: tokens.shape[1]]
        for blk in self.blocks:
            x = blk(x, mask)
        return self.unembed(self.lnf(x))


def manual_attention(q, k, v, hidden):
    """softmax(q kᵀ / sqrt(d), causal) v; `hidden` is True above the diagonal."""
    s = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.softmax(s.masked_fill(hidden, float("-inf")), dim=-1) @ v


def causal_hidden(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


def chunked_linear_scan(q, k, v, c):
    """y_t = sum_{i<=t} (q_t . k_i) v_i in chunks of c rows: in-chunk pairs directly, earlier chunks through the
    exclusive prefix sum of the chunk states k_c^T v_c (the algorithm of lib/attention/linear-scan.ts)."""
    b, h, t, d = q.shape
    e = v.shape[-1]
    n = t // c
    qc, kc, vc = q.view(b, h, n, c, d), k.view(b, h, n, c, d), v.view(b, h, n, c, e)
    tril = torch.tril(torch.ones(c, c))
    intra = ((qc @ kc.transpose(-2, -1)) * tril) @ vc
    states = kc.transpose(-2, -1) @ vc  # [b, h, n, d, e]
    prev = torch.cumsum(states, dim=2) - states  # exclusive prefix sum over chunks
    return (intra + qc @ prev).view(b, h, t, e)


def block_step(blk, x, past):
    """One Block over new positions x [b, s, d] with a KV cache `past` = (k, v) [b, h, t, dh] or None: the queries are
    end-aligned with the keys (causal), as ToyLM's cache does. Returns x and the grown cache."""
    b, s, d = x.shape
    h = blk.ln1(x)
    split = lambda t: t.view(b, s, blk.heads, d // blk.heads).transpose(1, 2)
    q, k, v = split(blk.wq(h)), split(blk.wk(h)), split(blk.wv(h))
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
    t = k.shape[2]
    hidden = torch.triu(torch.ones(s, t, dtype=torch.bool), diagonal=t - s + 1)
    z = manual_attention(q, k, v, hidden)
    x = x + blk.wo(z.transpose(1, 2).reshape(b, s, d))
    return x + blk.fc2(F.gelu(blk.fc1(blk.ln2(x)))), (k, v)


def generate(model, prompt, steps):
    """Greedy decoding with a KV cache, as ToyLM.generate: the prompt in one pass, then one token per pass."""
    past = [None] * len(model.blocks)
    out = []
    with torch.no_grad():
        tokens, start = prompt, 0
        for step in range(steps):
            x = model.embed(tokens) + model.pos[start : start + tokens.shape[1]]
            for i, blk in enumerate(model.blocks):
                x, past[i] = block_step(blk, x, past[i])
            logits = model.unembed(model.lnf(x))
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            start += tokens.shape[1]
            tokens = nxt
    return torch.cat(out, dim=1)


def make(kind, p):
    g = torch.Generator().manual_seed(0)
    if kind == "gemm":
        n = p["n"]
        a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
        return lambda: a @ b
    if kind in ("attn-fwd", "attn-fwdbwd"):
        bh, s, d = p["bh"], p["seq"], p["dim"]
        q, k, v = (torch.randn(1, bh, s, d, generator=g) for _ in range(3))
        hidden = causal_hidden(s)
        if kind == "attn-fwd":
            def fwd():
                with torch.no_grad():
                    return manual_attention(q, k, v, hidden)
            return fwd
        q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)
        dy = torch.randn(1, bh, s, d, generator=g)

        def fwdbwd():
            for t in (q, k, v):
                t.grad = None
            manual_attention(q, k, v, hidden).backward(dy)
        return fwdbwd
    if kind in ("linscan-fwd", "linscan-fwdbwd"):
        bh, s, d, e, c = p["bh"], p["seq"], p["d"], p["e"], p["chunk"]
        q, k = (torch.randn(1, bh, s, d, generator=g) * 0.1 for _ in range(2))
        v = torch.randn(1, bh, s, e, generator=g)
        if kind == "linscan-fwd":
            def scan_fwd():
                with torch.no_grad():
                    return chunked_linear_scan(q, k, v, c)
            return scan_fwd
        q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True)
        dy = torch.randn(1, bh, s, e, generator=g)

        def scan_fwdbwd():
            for t in (q, k, v):
                t.grad = None
            chunked_linear_scan(q, k, v, c).backward(dy)
        return scan_fwdbwd
    if kind == "toylm-step":
        torch.manual_seed(0)
        model = ToyLM(p["vocab"], p["dModel"], p["heads"], p["layers"], p["seq"])
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        tokens = torch.randint(0, p["vocab"], (p["batch"], p["seq"] + 1), generator=g)
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        hidden = causal_hidden(p["seq"])

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(inp, hidden)
            F.cross_entropy(logits.reshape(-1, p["vocab"]), tgt.reshape(-1)).backward()
            opt.step()
        return step
    if kind == "toylm-decode":
        torch.manual_seed(0)
        model = ToyLM(p["vocab"], p["dModel"], p["heads"], p["layers"], p["prompt"] + p["tokens"])
        prompt = torch.randint(0, p["vocab"], (1, p["prompt"]), generator=g)
        return lambda: generate(model, prompt, p["tokens"])
    raise ValueError(f"unknown workload kind {kind!r}")


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    workloads = {}
    print(json.dumps({"ok": True, "ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "setup":
                fn = make(req["kind"], req["params"])
                fn()  # warm-up: allocator, OpenMP pool, autograd graph
                workloads[req["name"]] = fn
                reply = {"ok": True}
            elif req["cmd"] == "run":
                fn = workloads[req["name"]]
                t0 = time.perf_counter()
                fn()
                reply = {"ok": True, "seconds": time.perf_counter() - t0}
            elif req["cmd"] == "dispose":
                workloads.pop(req["name"], None)
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown cmd {req['cmd']!r}"}
        except Exception as e:  # reported to the runner, which shows it in the table
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
