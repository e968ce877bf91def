"""Convolution forward and backward across neighbouring shapes: layout cliffs show up.

From a base shape (batch 64, 16 -> 32 channels, 16 x 16 images, 3 x 3 kernel,
stride 1, padding 1) one argument moves at a time (in/out channels, kernel,
stride, padding, batch, image size). Each shape's forward (under no_grad) and
forward + backward (input, weight and bias gradients) are timed for
micrograd and, where installed, PyTorch (NCHW tensors, as users pass them),
in this process, the best of several repeats (robust to a busy core).

``gflops`` is the convolution's multiply-adds x 2 per second of forward +
backward (three GEMM-sized products). A ``cliff`` is flagged where a shape's
gflops falls below a third of its neighbour's on the same sweep: the kind of
layout cliff a transposed copy or a short inner loop causes; ``ratio_cliff``
where its ratio to PyTorch does (a cliff PyTorch does not share).

Usage::

    python bench/bench_conv_shapes.py [--repeats 7] [--no-torch]

Prints one JSON line per shape. Benchmarks are not tests: nothing here
asserts a speed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import environment, torch_available  # noqa: E402

BASE = dict(batch=64, cin=16, cout=32, size=16, kernel=3, stride=1, padding=1)
SWEEPS = {
    "cin": [1, 3, 8, 16, 32, 64],
    "cout": [8, 16, 32, 64, 128],
    "kernel": [1, 3, 5],
    "stride": [1, 2],
    "padding": [0, 1, 2],
    "batch": [32, 64, 128, 256],
    "size": [8, 14, 16, 28, 32],
}


def best_ms(fn, repeats, inner=3):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best * 1e3


def micrograd_times(shape, repeats):
    import micrograd.nn as mn
    import micrograd.tensor as mt

    layer = mn.Conv2d(shape["cin"], shape["cout"], shape["kernel"], stride=shape["stride"],
                      padding=shape["padding"])
    x_np = np.random.default_rng(0).standard_normal(
        (shape["batch"], shape["cin"], shape["size"], shape["size"]), dtype=np.float32)
    x = mt.from_numpy(x_np)
    x.requires_grad = True
    g = mt.from_numpy(np.ones(layer(x).shape, dtype=np.float32))

    def train():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    def forward():
        with mt.no_grad():
            layer(x)

    return best_ms(forward, repeats), best_ms(train, repeats)


def torch_times(shape, repeats):
    import torch

    layer = torch.nn.Conv2d(shape["cin"], shape["cout"], shape["kernel"], stride=shape["stride"],
                            padding=shape["padding"])
    x = torch.randn(shape["batch"], shape["cin"], shape["size"], shape["size"], requires_grad=True)
    g = torch.ones_like(layer(x))

    def train():
        layer.zero_grad()
        x.grad = None
        layer(x).backward(g)

    def forward():
        with torch.no_grad():
            layer(x)

    return best_ms(forward, repeats), best_ms(train, repeats)


def gflop(shape):
    out = (shape["size"] + 2 * shape["padding"] - shape["kernel"]) // shape["stride"] + 1
    macs = shape["batch"] * out * out * shape["cout"] * shape["cin"] * shape["kernel"] ** 2
    return 2 * macs / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    has_torch = torch_available(args.no_torch)
    print(json.dumps(environment(has_torch)), flush=True)
    for axis, values in SWEEPS.items():
        previous = previous_ratio = None
        for value in values:
            shape = dict(BASE, **{axis: value})
            fwd, train = micrograd_times(shape, args.repeats)
            rate = 3 * gflop(shape) / (train / 1e3)
            line = {"sweep": axis, **shape, "forward_ms": round(fwd, 3),
                    "train_ms": round(train, 3), "gflops": round(rate, 1)}
            if has_torch:
                tfwd, ttrain = torch_times(shape, args.repeats)
                line.update(torch_forward_ms=round(tfwd, 3), torch_train_ms=round(ttrain, 3),
                            forward_ratio=round(tfwd / fwd, 2), train_ratio=round(ttrain / train, 2))
            line["cliff"] = previous is not None and (rate < previous / 3 or previous < rate / 3)
            if has_torch:
                # Against PyTorch on the same shapes: a cliff of micrograd's own, not one
                # of arithmetic intensity that both libraries share (1 x 1 kernels).
                ratio = line["train_ratio"]
                line["ratio_cliff"] = previous_ratio is not None and (
                    ratio < previous_ratio / 3 or previous_ratio < ratio / 3)
                previous_ratio = ratio
            previous = rate
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
