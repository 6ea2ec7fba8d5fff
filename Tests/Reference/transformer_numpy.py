#!/usr/bin/env python3
"""Reads a SiteFit transformer checkpoint with nothing but the safetensors layout and numpy, and
computes its logits for the patients in a JSON file: the independent check that the checkpoint
is what it claims (CI runs it on the committed fixture; the Swift test keeps the fixture current).

    python3 Tests/Reference/transformer_numpy.py Tests/Reference/fixtures/transformer-small.safetensors \
        Tests/Reference/fixtures/transformer-small.json

The JSON holds "tokens" (per patient, rows of [code id, time bucket, segment]) and "logits" (what
SiteFit computed); the script exits non-zero when any logit differs by more than 1e-4.
"""
import json
import math
import struct
import sys

import numpy as np


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    metadata = header.pop("__metadata__", {})
    body = data[8 + length:]
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", (name, entry["dtype"])
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(entry["shape"]).astype(np.float64)
    return tensors, metadata


def layer_norm(x, gain, bias):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return gain * (x - mean) / np.sqrt(variance + 1e-5) + bias


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def logits(t, config, tokens):
    s, d, h = config["maxLength"], config["width"], config["heads"]
    dh = d // h
    tokens = np.array(tokens, dtype=np.int64)          # (patients, s, 3)
    codes, times, segments = tokens[..., 0], tokens[..., 1], tokens[..., 2]
    keep = codes != 0
    x = t["embedding.code"][codes] + t["embedding.time"][times] + t["embedding.position"][np.arange(s)][None] \
        + t["embedding.segment"][segments]
    for l in range(config["layers"]):
        p = f"blocks.{l}"
        a = layer_norm(x, t[f"{p}.attention.norm.gain"], t[f"{p}.attention.norm.bias"])
        qkv = a @ t[f"{p}.attention.qkv.weight"].T + t[f"{p}.attention.qkv.bias"]
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(*qkv.shape[:2], h, dh).transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
        scores = np.where(keep[:, None, None, :], scores, -np.inf)
        top = scores.max(-1, keepdims=True)
        e = np.where(keep[:, None, None, :], np.exp(scores - np.where(np.isfinite(top), top, 0)), 0)
        total = e.sum(-1, keepdims=True)
        probabilities = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
        context = (probabilities @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        m = x + context @ t[f"{p}.attention.output.weight"].T + t[f"{p}.attention.output.bias"]
        f = layer_norm(m, t[f"{p}.feedforward.norm.gain"], t[f"{p}.feedforward.norm.bias"])
        f = gelu(f @ t[f"{p}.feedforward.inner.weight"].T + t[f"{p}.feedforward.inner.bias"])
        x = m + f @ t[f"{p}.feedforward.outer.weight"].T + t[f"{p}.feedforward.outer.bias"]
    z = layer_norm(x, t["final_norm.gain"], t["final_norm.bias"]) * keep[..., None]
    pooled = z.sum(1) / np.maximum(keep.sum(1, keepdims=True), 1)
    return (pooled @ t["head.weight"].T + t["head.bias"])[:, 0]


def main():
    tensors, metadata = read_safetensors(sys.argv[1])
    assert metadata["format"] == "sitefit-checkpoint-1", metadata.get("format")
    config = json.loads(metadata["model"])
    vocabulary = json.loads(metadata["vocabulary"])
    assert len(vocabulary) + 3 == config["vocabularySize"], (len(vocabulary), config["vocabularySize"])
    case = json.load(open(sys.argv[2]))
    ours = logits(tensors, config, case["tokens"])
    theirs = np.array(case["logits"])
    worst = float(np.max(np.abs(ours - theirs)))
    print(json.dumps({"patients": len(theirs), "vocabulary": len(vocabulary), "max_abs_difference": worst}))
    if worst > 1e-4:
        sys.exit(f"logits differ by {worst} (> 1e-4): numpy {ours.tolist()} vs SiteFit {theirs.tolist()}")


if __name__ == "__main__":
    main()
