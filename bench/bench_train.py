"""Training and evaluation throughput of micrograd against PyTorch, same machine, same run.

The networks are the design document's MNIST CNN (Conv(1->32, 3)-ReLU-AvgPool-
Conv(32->64, 3)-ReLU-AvgPool-Flatten-Linear(1600->10)) and an MLP 784-256-10
with ReLU, both trained with Adam (lr 1e-3) and cross entropy in batches of 64.

Usage::

    python bench/bench_train.py [--net cnn|mlp|both] [--batches 100] [--rounds 5]
                                [--data IDX_FOLDER] [--no-torch] [--no-rss]

Timing runs in this process. Each round trains ``--batches`` batches with
micrograd, then the same number with PyTorch (the order alternates between
rounds), then times evaluation (forward under no_grad over 10,000 images, in
batches of ``--eval-batch``, 64 by default like training); each figure is the
median over the rounds, so both libraries see the same machine load.
``ratio`` is micrograd / PyTorch.

Peak memory is measured apart: one fresh child process per library trains one
full epoch over the data (60,000 images with Fashion-MNIST's IDX files, or
60,000 synthetic ones) and reports its peak resident set size (VmHWM), data
and imports included; ``epoch_samples_per_s`` is that child's throughput.

Both libraries run with the glibc malloc settings that importing micrograd
makes (keep freed memory for the next step, see micrograd/engine/memory.py);
they speed PyTorch up as much as micrograd. ``--no-mallopt`` leaves malloc at
its defaults for both.

Data: synthetic standard-normal images and random labels by default; with
``--data`` the IDX files of a folder (``train-*`` if present, else ``t10k-*``),
scaled to [-1, 1] as ``../shared/bench/torch_cnn.py`` does.

Prints one JSON line per environment and per (network, library). Benchmarks
are not tests: nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 64
LR = 1e-3
SYNTHETIC_SIZE = 60_000
EVAL_SAMPLES = 10_000  # per round and library

# ------------------------------------------------------------------- data


def load_data(folder, size=SYNTHETIC_SIZE, seed=0):
    """(images float32 (N, 1, 28, 28) in about [-1, 1], labels int64 (N,))."""
    if folder is None:
        rng = np.random.default_rng(seed)
        images = rng.standard_normal((size, 1, 28, 28), dtype=np.float32)
        return images, rng.integers(0, 10, size)
    from micrograd.data.idx import read_idx

    folder = Path(folder)
    split = "train" if (folder / "train-images-idx3-ubyte.gz").exists() else "t10k"
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz").astype(np.float32)
    # (x / 255 - 0.5) / 0.5 in place: the data's memory is counted once in the peak.
    images *= 2 / 255.0
    images -= 1.0
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return images[:, None], labels


class Runner:
    """One library's model, optimiser and batches; the training step is the same
    code for both, since micrograd's API is PyTorch's."""

    def train(self, n_batches):
        self.model.train()
        for _ in range(n_batches):
            x, y = self._next()
            self.optimizer.zero_grad()
            loss = self.loss_fn(self.model(x), y)
            loss.backward()
            self.optimizer.step()
        return loss.item()


# ------------------------------------------------------------- micrograd


class MicrogradRunner(Runner):
    name = "micrograd"

    def __init__(self, net, images, labels, seed=0):
        import micrograd.nn as mn
        import micrograd.tensor as mt

        self.mt = mt
        mt.manual_seed(seed)
        if net == "cnn":
            self.model = mn.Sequential([
                mn.Conv2d(1, 32, 3), mn.ReLU(), mn.AvgPool2d(2),
                mn.Conv2d(32, 64, 3), mn.ReLU(), mn.AvgPool2d(2),
                mn.Flatten(), mn.Linear(64 * 5 * 5, 10),
            ])
        else:
            self.model = mn.Sequential([mn.Flatten(), mn.Linear(784, 256), mn.ReLU(),
                                        mn.Linear(256, 10)])
        self.model = mn.fuse(self.model)  # the fused conv + ReLU + pooling runs, as built
        self.optimizer = mt.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = mt.CrossEntropyLoss()
        self.images, self.labels = images, labels
        self.loader = mt.DataLoader(mt.TensorDataset(images, labels), batch_size=BATCH,
                                    shuffle=True, seed=seed)
        self.batches = iter(())

    def _next(self):
        batch = next(self.batches, None)
        if batch is None:
            self.batches = iter(self.loader)
            batch = next(self.batches)
        return batch

    def evaluate(self, n_samples, batch):
        self.model.eval()
        correct = 0
        with self.mt.no_grad():
            for i in range(0, n_samples, batch):
                out = self.model(self.mt.from_numpy(self.images[i:i + batch]))
                correct += int((out.data.argmax(1) == self.labels[i:i + batch]).sum())
        return correct


# --------------------------------------------------------------- PyTorch


class TorchRunner(Runner):
    name = "torch"

    def __init__(self, net, images, labels, seed=0):
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(seed)
        if net == "cnn":
            self.model = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.AvgPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.AvgPool2d(2),
                nn.Flatten(), nn.Linear(64 * 5 * 5, 10))
        else:
            self.model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                                       nn.Linear(256, 10))
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = nn.CrossEntropyLoss()
        self.images, self.labels = torch.from_numpy(images), torch.from_numpy(labels)
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = None, len(labels)

    def _next(self):
        # As ../shared/bench/torch_cnn.py: index a random permutation, no DataLoader.
        n = len(self.labels)
        if self.position + BATCH > n:
            self.order = self.torch.randperm(n, generator=self.generator)
            self.position = 0
        index = self.order[self.position:self.position + BATCH]
        self.position += BATCH
        return self.images[index], self.labels[index]

    def evaluate(self, n_samples, batch):
        self.model.eval()
        correct = 0
        with self.torch.no_grad():
            for i in range(0, n_samples, batch):
                out = self.model(self.images[i:i + batch])
                correct += int((out.argmax(1) == self.labels[i:i + batch]).sum())
        return correct


RUNNERS = {"micrograd": MicrogradRunner, "torch": TorchRunner}

# ----------------------------------------------------------------- timing


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def settle():
    """Pause before timing a library: the worker threads of the one timed before
    (OpenBLAS's spin for about 0.1 s after a call, OpenMP's briefly) would
    otherwise compete with it for the two cores."""
    time.sleep(0.3)


def compare(net, impls, images, labels, batches, rounds, eval_batch):
    """Interleaved rounds; the median samples/s of each library, training and eval."""
    runners = [RUNNERS[name](net, images, labels) for name in impls]
    eval_samples = min(len(labels), EVAL_SAMPLES)
    for runner in runners:  # warm-up: first-call costs, allocator, BLAS threads
        runner.train(3)
        runner.evaluate(eval_batch, eval_batch)
    train = {r.name: [] for r in runners}
    evaluate = {r.name: [] for r in runners}
    for round_ in range(rounds):
        order = runners if round_ % 2 == 0 else runners[::-1]
        for runner in order:
            settle()
            train[runner.name].append(BATCH * batches / timed(runner.train, batches))
        for runner in order:
            settle()
            seconds = timed(runner.evaluate, eval_samples, eval_batch)
            evaluate[runner.name].append(eval_samples / seconds)
    return ({k: statistics.median(v) for k, v in train.items()},
            {k: statistics.median(v) for k, v in evaluate.items()})


def epoch_in_child(net, impl, data):
    """Peak RSS and throughput of one full training epoch in a fresh process."""
    cmd = [sys.executable, __file__, "--child", impl, "--net", net]
    if data is not None:
        cmd += ["--data", str(data)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{impl} epoch child failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child(net, impl, data):
    # micrograd tunes glibc's malloc when imported (micrograd/engine/memory.py);
    # the PyTorch child gets the same settings, as it does in the parent process,
    # so that the comparison is between the libraries, not between allocators.
    _keep_freed_memory()
    images, labels = load_data(data)
    runner = RUNNERS[impl](net, images, labels)
    n_batches = len(labels) // BATCH
    seconds = timed(runner.train, n_batches)
    print(json.dumps({"peak_rss_mb": round(peak_rss_kib() / 1024),
                      "epoch_samples_per_s": round(n_batches * BATCH / seconds)}))


def _keep_freed_memory():
    try:
        from micrograd.engine.memory import keep_freed_memory
    except ImportError:  # a micrograd older than the tuning, for "before" figures
        return False
    return keep_freed_memory()


def peak_rss_kib():
    """This process's peak resident set size, in KiB.

    VmHWM rather than ru_maxrss where there is a /proc: Linux carries
    ru_maxrss over exec, so a child started from this (large) benchmark process
    would report the parent's size as its own peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


# ------------------------------------------------------------------- main


def torch_available(no_torch=False):
    """Whether to compare with PyTorch: installed and not turned off (``--no-torch``)."""
    if no_torch:
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        print("torch is not installed: micrograd alone", file=sys.stderr)
        return False
    return True


def environment(has_torch):
    env = {"env": platform.python_implementation() + " " + platform.python_version(),
           "numpy": np.__version__, "cores": os.cpu_count(), "cpu": _cpu_model()}
    from micrograd import kernels
    from micrograd.kernels import mkl

    # Loaded now, so that the BLAS list below shows what the steps will use.
    env["mkl"] = mkl.available()
    env["loops"] = "numba" if kernels.available() else "numpy"
    try:
        from threadpoolctl import threadpool_info

        env["blas"] = [f"{i['internal_api']} {i['version']} {i.get('architecture')} "
                       f"{i['num_threads']} threads" for i in threadpool_info()
                       if i["user_api"] == "blas"]
    except ImportError:
        pass
    if has_torch:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    env["malloc_tuned"] = _keep_freed_memory()  # already done by importing micrograd
    env["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return env


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=["cnn", "mlp", "both"], default="both")
    parser.add_argument("--batches", type=int, default=100,
                        help="training batches of 64 timed per round (default 100)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--eval-batch", type=int, default=BATCH,
                        help="evaluation batch size (default 64, the training batch)")
    parser.add_argument("--data", type=Path, help="folder of MNIST-style IDX .gz files")
    parser.add_argument("--no-torch", action="store_true", help="micrograd alone")
    parser.add_argument("--no-rss", action="store_true",
                        help="skip the full-epoch child processes (peak memory)")
    parser.add_argument("--no-mallopt", action="store_true",
                        help="leave glibc's malloc at its defaults for both libraries "
                             "(sets MICROGRAD_MALLOPT=0)")
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.no_mallopt:
        os.environ["MICROGRAD_MALLOPT"] = "0"  # before micrograd is imported; children inherit it
    if args.child:
        return child(args.net, args.child, args.data)

    has_torch = torch_available(args.no_torch)
    impls = ["micrograd", "torch"] if has_torch else ["micrograd"]
    images, labels = load_data(args.data)
    print(json.dumps(environment(has_torch)), flush=True)
    for net in (["cnn", "mlp"] if args.net == "both" else [args.net]):
        train, evaluate = compare(net, impls, images, labels, args.batches, args.rounds,
                                  args.eval_batch)
        epochs = {} if args.no_rss else {impl: epoch_in_child(net, impl, args.data)
                                          for impl in impls}
        for impl in impls:
            line = {"net": net, "impl": impl, "batch": BATCH,
                    "samples_per_s": round(train[impl]),
                    "eval_samples_per_s": round(evaluate[impl]),
                    **epochs.get(impl, {"peak_rss_mb": None})}
            if has_torch and impl == "micrograd":
                line["ratio"] = round(train["micrograd"] / train["torch"], 2)
                line["eval_ratio"] = round(evaluate["micrograd"] / evaluate["torch"], 2)
                if epochs:
                    line["rss_ratio"] = round(epochs["micrograd"]["peak_rss_mb"]
                                              / epochs["torch"]["peak_rss_mb"], 2)
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
