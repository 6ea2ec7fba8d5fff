"""Hand-written numpy FedAvg on the workloads of `sitefit bench`, for the speed comparison in the README.

    python3 Tests/Reference/fedavg_numpy.py synthetic 32 2000   # S sites x P train patients
    python3 Tests/Reference/fedavg_numpy.py heart logreg        # or: heart mlp

synthetic: S sites x P train patients, 40 features, MLP 40->128->128->1 ReLU, 20 rounds of one
local epoch, batch 32, Adam lr 0.001. heart: four sites of FLamby's train sizes (199, 172, 30,
85) with 13 features, logistic regression or MLP 13->64->64->1, 15 rounds x 100 local steps,
batch 4, Adam lr 0.001. Both: Adam state fresh each round, FedAvg weighted by site size, float32.
The data are random (the time depends only on the shapes and the step count). Prints the wall
seconds of the federated loop alone, as `sitefit bench` reports its own.
"""
import sys
import time

import numpy as np

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def make_sites(rng, sizes, features):
    truth = rng.standard_normal(features).astype(np.float32)
    sites = []
    for s, rows in enumerate(sizes):
        x = (rng.standard_normal((rows, features)) + 0.1 * s / len(sizes)).astype(np.float32)
        y = ((x @ truth + rng.standard_normal(rows)) > 0).astype(np.float32)
        sites.append((x, y))
    return sites


def init_params(rng, widths):
    params = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        params.append((rng.standard_normal((fan_out, fan_in)) * np.sqrt(2 / fan_in)).astype(np.float32))
        params.append(np.full(fan_out, 0.01, np.float32))
    return params


def gradients(params, xb, yb):
    """Forward and backward of the ReLU MLP (or logistic regression) with mean BCE on logits."""
    layers = len(params) // 2
    inputs, pre = [xb], []
    a = xb
    for l in range(layers):
        z = a @ params[2 * l].T + params[2 * l + 1]
        pre.append(z)
        if l < layers - 1:
            a = np.maximum(z, 0)
            inputs.append(a)
    logits = pre[-1][:, 0]
    dz = ((1 / (1 + np.exp(-logits)) - yb) / len(xb)).astype(np.float32)[:, None]
    grads = [None] * len(params)
    for l in reversed(range(layers)):
        grads[2 * l] = dz.T @ inputs[l]
        grads[2 * l + 1] = dz.sum(0)
        if l > 0:
            dz = (dz @ params[2 * l]) * (pre[l - 1] > 0)
    return grads


def local_training(params, x, y, rng, batch, epochs=None, steps=None):
    params = [t.copy() for t in params]
    m = [np.zeros_like(t) for t in params]
    v = [np.zeros_like(t) for t in params]
    step = 0
    limit = steps if steps is not None else epochs * -(-len(x) // batch)
    while step < limit:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            if step == limit:
                break
            idx = order[start:start + batch]
            grads = gradients(params, x[idx], y[idx])
            step += 1
            c1, c2 = 1 - B1 ** step, 1 - B2 ** step
            alpha = np.float32(LR * np.sqrt(c2) / c1)
            eps_hat = np.float32(EPS * np.sqrt(c2))
            for t, g, mt, vt in zip(params, grads, m, v):
                mt *= B1
                mt += (1 - B1) * g
                vt *= B2
                vt += (1 - B2) * g * g
                t -= alpha * mt / (np.sqrt(vt) + eps_hat)
    return params


def fedavg(sites, params, rounds, **local):
    total_rows = sum(len(x) for x, _ in sites)
    for r in range(rounds):
        total = [np.zeros(t.shape, np.float64) for t in params]
        for s, (x, y) in enumerate(sites):
            trained = local_training(params, x, y, np.random.default_rng((r, s)), **local)
            for acc, t in zip(total, trained):
                acc += len(x) * t
        params = [(acc / total_rows).astype(np.float32) for acc in total]
    return params


def main(argv):
    rng = np.random.default_rng(0)
    if len(argv) >= 1 and argv[0] == "heart":
        model = argv[1] if len(argv) > 1 else "logreg"
        widths = [13, 1] if model == "logreg" else [13, 64, 64, 1]
        sites = make_sites(rng, [199, 172, 30, 85], 13)
        params = init_params(rng, widths)
        began = time.perf_counter()
        fedavg(sites, params, 15, batch=4, steps=100)
        name = f"heart-{model}"
    else:
        count = int(argv[1]) if len(argv) > 1 else 32
        patients = int(argv[2]) if len(argv) > 2 else 2000
        sites = make_sites(rng, [patients] * count, 40)
        params = init_params(rng, [40, 128, 128, 1])
        began = time.perf_counter()
        fedavg(sites, params, 20, batch=32, epochs=1)
        name = f"synthetic-{count}x{patients}"
    print(f"numpy {name}: {time.perf_counter() - began:.3f} s federated loop")


if __name__ == "__main__":
    main(sys.argv[1:])
