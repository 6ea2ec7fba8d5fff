#!/usr/bin/env python3
"""The transformer training step of `sitefit bench transformer`, in PyTorch eager mode on the CPU,
for side-by-side timing on the same cores. Not run by CI (PyTorch is not a dependency).

Same model and step: code + time + position + segment embeddings; L pre-LayerNorm blocks
(fused query/key/value projection, multi-head attention with a padding mask, output projection,
GELU feed-forward of 4x the width); final LayerNorm, mean over real tokens, one logit; binary
cross-entropy; Adam over the chosen tensors. Full updates or BitFit (every bias and LayerNorm beta).

    pip install torch numpy
    python3 Tests/Reference/transformer_torch.py --threads 1            # one core, as the Swift step
    python3 Tests/Reference/transformer_torch.py --threads 1 --mode bitfit

Prints one JSON line: seconds per step (the fastest of --repetitions after one warm-up) and the
GFLOP/s at SiteFit's FLOP count for the same step.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, width, heads, feed_forward):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(width, eps=1e-5)
        self.qkv = nn.Linear(width, 3 * width)
        self.output = nn.Linear(width, width)
        self.feedforward_norm = nn.LayerNorm(width, eps=1e-5)
        self.inner = nn.Linear(width, feed_forward)
        self.outer = nn.Linear(feed_forward, width)

    def forward(self, x, keep):
        b, s, d = x.shape
        h, dh = self.heads, d // self.heads
        q, k, v = self.qkv(self.attention_norm(x)).split(d, dim=-1)
        q, k, v = (t.view(b, s, h, dh).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
        scores = scores.masked_fill(~keep[:, None, None, :], float("-inf"))
        p = torch.nan_to_num(torch.softmax(scores, dim=-1))  # a sequence of padding attends to nothing
        context = (p @ v).transpose(1, 2).reshape(b, s, d)
        m = x + self.output(context)
        return m + self.outer(F.gelu(self.inner(self.feedforward_norm(m))))


class Encoder(nn.Module):
    def __init__(self, vocabulary, buckets, length, width, heads, layers, feed_forward):
        super().__init__()
        self.code = nn.Embedding(vocabulary, width)
        self.time = nn.Embedding(buckets, width)
        self.position = nn.Embedding(length, width)
        self.segment = nn.Embedding(2, width)
        self.blocks = nn.ModuleList(Block(width, heads, feed_forward) for _ in range(layers))
        self.final_norm = nn.LayerNorm(width, eps=1e-5)
        self.head = nn.Linear(width, 1)

    def forward(self, codes, times, segments):
        keep = codes != 0
        positions = torch.arange(codes.shape[1])[None, :]
        x = self.code(codes) + self.time(times) + self.position(positions) + self.segment(segments)
        for block in self.blocks:
            x = block(x, keep)
        z = self.final_norm(x) * keep[..., None]
        pooled = z.sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled).squeeze(-1)


def sitefit_flops(args, bitfit):
    """SiteFit's count for the same step (Transformer.trainingFlopsPerExample): products only, a
    multiply-add counts 2; under BitFit no weight gradients, and nothing below the lowest bias."""
    s, d, f = args.length, args.width, 4 * args.width
    linear = 2 * s * (3 * d * d + d * d + 2 * d * f)  # one pass of the block's products
    attention = 4 * s * s * d
    per_block = linear + attention + linear + 8 * s * s * d  # forward, input gradients, attention backward
    if not bitfit:
        per_block += linear  # weight gradients
    head = 2 * d * (2 if bitfit else 3)
    return args.batch * (args.layers * per_block + head)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocabulary", type=int, default=1003)
    parser.add_argument("--buckets", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--mode", choices=["full", "bitfit"], default="full")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    model = Encoder(args.vocabulary, args.buckets, args.length, args.width, args.heads, args.layers, 4 * args.width)
    if args.mode == "bitfit":
        for name, parameter in model.named_parameters():
            parameter.requires_grad = name.endswith(".bias") and not name.startswith(("code", "time", "position", "segment"))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    codes = torch.randint(3, args.vocabulary, (args.batch, args.length))
    times = torch.randint(0, args.buckets, (args.batch, args.length))
    segments = torch.randint(0, 2, (args.batch, args.length))
    labels = torch.randint(0, 2, (args.batch,)).float()

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(model(codes, times, segments), labels)
        loss.backward()
        optimiser.step()

    step()
    best = float("inf")
    for _ in range(args.repetitions):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    flops = sitefit_flops(args, args.mode == "bitfit")
    print(json.dumps({"workload": "transformer-torch", "mode": args.mode, "threads": args.threads, "torch": torch.__version__,
                      "seconds_per_step": best, "gflops_per_second": flops / best / 1e9}))


if __name__ == "__main__":
    main()
