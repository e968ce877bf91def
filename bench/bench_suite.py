"""micrograd against PyTorch on a suite of networks that covers what users train.

Each network is written once, against the PyTorch-shaped API both libraries
share (``nn.Conv2d``, ``nn.BatchNorm2d``, ``optim.AdamW``...), and built by each
library from the same code. Together they cover: padding 0/1/2, stride 1/2,
kernels 1/3/5, MaxPool2d and AvgPool2d (overlapping windows included),
BatchNorm1d/2d in training and evaluation, Dropout, ReLU/Tanh/Sigmoid, input
channels 1 and 3, batches of 32 to 256, SGD with momentum, Adam, AdamW and
RMSprop, training steps and evaluation under no_grad.

Usage::

    python bench/bench_suite.py [--only NAME ...] [--seconds 1] [--rounds 5] [--no-rss]
    python bench/bench_suite.py --profile [--only NAME ...] [--steps 20]

Timing runs in this process: each round runs the same number of steps with
each library, about ``--seconds`` of micrograd's time (training:
zero_grad, forward, cross entropy, backward, optimiser step; evaluation: a
forward under no_grad), one library then the other, alternating which goes
first; a figure is the median over the rounds, so both libraries see the same
machine load. ``ratio`` is micrograd's steps per second over PyTorch's. The
micrograd model goes through ``mn.fuse``, as ``micrograd train`` builds it.

Memory is measured apart, in one fresh child process per network and library:
``peak_rss_mb`` is the child's peak resident set (imports, data and first
steps included) and ``step_peak_mb`` how far the resident set rose during the
timed steps above where it stood before them, after two warm-up steps (what
the steps themselves hold, without one-off costs such as loading numba).

Prints one JSON line for the environment, one per network, and a last one with
the geometric mean of the ratios. ``--profile`` instead prints, per network,
where micrograd's step goes: each primitive's forward and backward time per
step, and the rest (optimiser, Python). Benchmarks are not tests: nothing here
asserts a speed.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import environment, peak_rss_kib, settle, torch_available  # noqa: E402

POOL = 4  # distinct batches cycled through (the data's size does not matter here)


@dataclass
class Network:
    name: str
    build: object  # build(nn) -> the model, from torch.nn or micrograd.nn
    input_shape: tuple  # one sample's
    batch: int
    optimizer: str  # "" for evaluation
    options: dict
    classes: int = 10

    @property
    def mode(self):
        return "train" if self.optimizer else "eval"


def design_cnn(pool):
    def build(nn):
        return nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), pool(nn)(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), pool(nn)(2),
            nn.Flatten(), nn.Linear(64 * 5 * 5, 10))
    return build


def cifar_cnn(nn):
    """conv 3x3 pad 1 -> BatchNorm2d -> ReLU -> MaxPool2d, twice; Linear-ReLU-Dropout-Linear."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10))


def strided_cnn(nn):
    """Strided 5x5 pad 2 and 3x3 pad 1 convolutions with Tanh, no pooling."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.Tanh(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.Tanh(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def overlap_cnn(nn):
    """1x1 and 3x3 convolutions, overlapping pools (3, stride 2, padding 1), Sigmoid."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 1), nn.Sigmoid(), nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(3, stride=2, padding=1),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 10))


def mlp(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def bn_mlp(nn):
    """BatchNorm1d between Tanh and Sigmoid layers, with Dropout."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.BatchNorm1d(512), nn.Tanh(),
        nn.Linear(512, 256), nn.BatchNorm1d(256), nn.Sigmoid(), nn.Dropout(0.2),
        nn.Linear(256, 10))


def _max(nn):
    return nn.MaxPool2d


def _avg(nn):
    return nn.AvgPool2d


MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
NETWORKS = [
    Network("design_cnn", design_cnn(_avg), MNIST, 64, "Adam", {"lr": 1e-3}),
    Network("design_cnn_eval", design_cnn(_avg), MNIST, 256, "", {}),
    Network("maxpool_cnn", design_cnn(_max), MNIST, 32, "RMSprop", {"lr": 1e-3}),
    Network("cifar_bn_cnn", cifar_cnn, CIFAR, 128, "SGD",
            {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}),
    Network("cifar_bn_cnn_eval", cifar_cnn, CIFAR, 256, "", {}),
    Network("strided_cnn", strided_cnn, MNIST, 64, "AdamW", {"lr": 1e-3}),
    Network("overlap_pool_cnn", overlap_cnn, CIFAR, 32, "Adam", {"lr": 1e-3}),
    Network("mlp", mlp, MNIST, 64, "Adam", {"lr": 1e-3}),
    Network("bn_mlp", bn_mlp, MNIST, 256, "SGD", {"lr": 0.1, "momentum": 0.9}),
    Network("bn_mlp_eval", bn_mlp, MNIST, 256, "", {}),
]
BY_NAME = {net.name: net for net in NETWORKS}


def batches(net, seed=0):
    rng = np.random.default_rng(seed)
    shape = (POOL, net.batch) + net.input_shape
    images = rng.standard_normal(shape, dtype=np.float32)
    return images, rng.integers(0, net.classes, (POOL, net.batch))


class Runner:
    """One library's model, loss, optimiser and batches for one network."""

    def step(self, i):
        x, y = self.x[i % POOL], self.y[i % POOL]
        if not self.net.optimizer:
            with self.no_grad():
                return self.model(x)
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def run(self, steps):
        for i in range(steps):
            self.step(i)


class MicrogradRunner(Runner):
    name = "micrograd"

    def __init__(self, net, seed=0):
        import micrograd.nn as mn
        import micrograd.tensor as mt

        mt.manual_seed(seed)
        self.net, self.no_grad = net, mt.no_grad
        self.model = mn.fuse(net.build(mn))
        self.model.train(bool(net.optimizer))
        if net.optimizer:
            self.optimizer = getattr(mt, net.optimizer)(self.model.parameters(), **net.options)
        self.loss_fn = mt.CrossEntropyLoss()
        images, labels = batches(net, seed)
        self.x = [mt.from_numpy(b) for b in images]
        self.y = [mt.from_numpy(b) for b in labels]


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, net, seed=0):
        import torch

        torch.manual_seed(seed)
        self.net, self.no_grad = net, torch.no_grad
        self.model = net.build(torch.nn)
        self.model.train(bool(net.optimizer))
        if net.optimizer:
            self.optimizer = getattr(torch.optim, net.optimizer)(self.model.parameters(),
                                                                 **net.options)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        images, labels = batches(net, seed)
        self.x = [torch.from_numpy(b) for b in images]
        self.y = [torch.from_numpy(b) for b in labels]


RUNNERS = {"micrograd": MicrogradRunner, "torch": TorchRunner}


def compare(net, impls, seconds, rounds):
    """Median steps per second of each library over interleaved rounds of the same
    number of steps, enough for about ``seconds`` of the first library's time."""
    runners = [RUNNERS[name](net) for name in impls]
    for runner in runners:  # warm-up: first-call costs, allocator, BLAS threads
        runner.run(3)
    start = time.perf_counter()
    runners[0].run(3)
    steps = max(5, round(seconds / ((time.perf_counter() - start) / 3)))
    rates = {r.name: [] for r in runners}
    for round_ in range(rounds):
        for runner in (runners if round_ % 2 == 0 else runners[::-1]):
            settle()
            start = time.perf_counter()
            runner.run(steps)
            rates[runner.name].append(steps / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


def profile(net, steps):
    """Where a micrograd step goes: each primitive's forward and backward time per
    step (every Function subclass's methods wrapped with a timer), its
    ``values`` where a layer calls that without a graph node (evaluation under
    no_grad), evaluation's BatchNorm written over a fused layer's output, and
    the rest (optimiser, Python). Prints one JSON line per network."""
    import collections
    import importlib

    from micrograd.engine.autograd import Function

    fuse = importlib.import_module("micrograd.nn.fuse")  # micrograd.nn.fuse is the function

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    runner = MicrogradRunner(net)
    runner.run(3)
    totals = collections.defaultdict(float)
    depth = [0]  # a timed call inside another (FlattenLinear -> Linear) counts once

    def timer(fn, key):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            depth[0] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    totals[key] += time.perf_counter() - start
        return timed

    targets = [(fuse, "normalise_in_place", "BatchNorm.normalise_in_place")]
    for cls in set(subclasses(Function)):
        targets += [(cls, method, f"{cls.__name__}.{method}")
                    for method in ("forward", "backward", "values") if method in cls.__dict__]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in targets]
    for owner, name, key in targets:
        original = owner.__dict__[name]
        if isinstance(original, staticmethod):
            setattr(owner, name, staticmethod(timer(original.__func__, key)))
        else:
            setattr(owner, name, timer(original, key))
    try:
        start = time.perf_counter()
        runner.run(steps)
        step_ms = (time.perf_counter() - start) / steps * 1e3
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
    parts = {k: round(v / steps * 1e3, 2) for k, v in
             sorted(totals.items(), key=lambda kv: -kv[1]) if v / steps * 1e3 >= 0.01}
    parts["rest"] = round(step_ms - sum(totals.values()) / steps * 1e3, 2)
    print(json.dumps({"net": net.name, "step_ms": round(step_ms, 2), "parts_ms": parts}),
          flush=True)


def memory_in_child(net, impl, steps):
    cmd = [sys.executable, __file__, "--child", impl, "--only", net.name, "--steps", str(steps)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{impl} child for {net.name} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(net, impl, steps):
    from bench_train import _keep_freed_memory

    _keep_freed_memory()  # the same malloc settings for both libraries, as in the parent
    runner = RUNNERS[impl](net)
    runner.run(2)  # first-step costs: lazy imports, compiled loops, the allocator's pools
    peak = peak_rss_kib()
    reset_peak_rss()
    before = current_rss_kib()
    runner.run(steps)
    steps_peak = peak_rss_kib()
    print(json.dumps({"peak_rss_mb": round(max(peak, steps_peak) / 1024),
                      "step_peak_mb": round((steps_peak - before) / 1024)}))


def reset_peak_rss():
    """Start VmHWM again from the current resident set (Linux 4.0 and later)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def current_rss_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BY_NAME), help="these networks only")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="about how long each round runs, per library (default 1)")
    parser.add_argument("--steps", type=int, default=20,
                        help="steps of each memory child process (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--no-torch", action="store_true", help="micrograd alone")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory child processes")
    parser.add_argument("--profile", action="store_true",
                        help="where micrograd's step goes, per primitive (no PyTorch)")
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    nets = [BY_NAME[n] for n in args.only] if args.only else NETWORKS
    if args.child:
        return child(nets[0], args.child, args.steps)
    if args.profile:
        for net in nets:
            profile(net, args.steps)
        return None
    has_torch = torch_available(args.no_torch)
    impls = ["micrograd", "torch"] if has_torch else ["micrograd"]
    print(json.dumps(environment(has_torch)), flush=True)
    ratios = []
    for net in nets:
        rates = compare(net, impls, args.seconds, args.rounds)
        line = {"net": net.name, "mode": net.mode, "batch": net.batch,
                "optimizer": net.optimizer or None,
                "micrograd_samples_per_s": round(rates["micrograd"] * net.batch)}
        if has_torch:
            line["torch_samples_per_s"] = round(rates["torch"] * net.batch)
            line["ratio"] = round(rates["micrograd"] / rates["torch"], 3)
            ratios.append(rates["micrograd"] / rates["torch"])
        if not args.no_rss:
            for impl in impls:
                mem = memory_in_child(net, impl, args.steps)
                line[f"{impl}_peak_rss_mb"] = mem["peak_rss_mb"]
                line[f"{impl}_step_peak_mb"] = mem["step_peak_mb"]
        print(json.dumps(line), flush=True)
    if ratios:
        print(json.dumps({"networks": len(ratios), "min_ratio": round(min(ratios), 3),
                          "geomean_ratio": round(math.exp(sum(map(math.log, ratios))
                                                          / len(ratios)), 3)}), flush=True)


if __name__ == "__main__":
    main()
