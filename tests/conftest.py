"""Shared test helpers (import them: ``from conftest import run, write_config``) and
fixtures. tests/ is on sys.path, so gradcheck.py and this module import by name."""
import copy
import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from micrograd.checkpoint import load_checkpoint
from micrograd.config.loader import validate
from micrograd.data.idx import write_idx
from micrograd.train import Reporter
from micrograd_cli.main import app

# tests/ holds helper modules (gradcheck.py) imported by the tests.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Each test runs in an empty folder of its own, so that the runs/ and runs/latest
    that training writes relative to the working directory never land in the repo;
    and with an empty data cache of its own, whatever MICROGRAD_DATA the shell (or
    CI) exports, so no test reads or fills a real data folder."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.delenv("MICROGRAD_DATA", raising=False)
    monkeypatch.delenv("MICROGRAD_MIRRORS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


# ------------------------------------------------------------- the command line

runner = CliRunner()


LINEAR = {
    "data": {"type": "synthetic", "kind": "linear", "n": 10,
             "splits": {"train": 0.8, "val": 0.2, "test": 0.0}},
    "model": {"layers": [{"type": "linear", "out_features": 1}]},
    "loss": "mse",
    "optimizer": {"type": "sgd", "lr": 0.01},
    "train": {"epochs": 300, "batch_size": 8, "seed": 0},
}


def write_config(folder: Path, data: dict, name="config.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(args, cwd: Path):
    """Invoke the CLI in-process with the working directory set (runs/ lands there).
    The other CLI-driving test modules import this one."""
    import os

    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        os.chdir(old)


def make_idx_folder(folder: Path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 3).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):  # a learnable mark per class
        images[i, 4 + 8 * label: 10 + 8 * label, 4:24] = 255
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


CNN = {
    "data": {"type": "mnist", "root": "digits", "splits": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "model": {"layers": [
        {"type": "conv2d", "out_channels": 32, "kernel_size": 3}, {"type": "relu"},
        {"type": "avgpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 64, "kernel_size": 3}, {"type": "relu"},
        {"type": "avgpool2d", "kernel_size": 2},
        {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.001},
    "train": {"epochs": 1, "batch_size": 16},
}


# ------------------------------------------------------------- resuming

BLOBS = {
    "data": {"type": "synthetic", "kind": "blobs", "n": 120,
             "splits": {"train": 0.7, "val": 0.3, "test": 0.0}},
    "model": {"layers": [
        {"type": "linear", "out_features": 8}, {"type": "batchnorm1d"}, {"type": "relu"},
        {"type": "dropout", "p": 0.3}, {"type": "linear", "out_features": 2}]},
    "loss": "cross_entropy",
    "optimizer": {"type": "adam", "lr": 0.01},
    "scheduler": {"type": "step", "step_size": 2, "gamma": 0.5},
    "train": {"epochs": 6, "batch_size": 16, "seed": 1},
}


def config(folder, **train_options):
    data = copy.deepcopy(BLOBS)
    data["train"].update(train_options)
    data["output"] = {"dir": str(folder)}
    return validate(data)


def rows(run_dir):
    """metrics.csv without the seconds column."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        return [r[:-1] for r in csv.reader(fh)]


def assert_same_run(a, b):
    """Bit-identical weights and optimiser state in checkpoint.npz and best.npz, same rows."""
    for name in ("checkpoint.npz", "best.npz"):
        meta_a, arrays_a = load_checkpoint(Path(a) / name)
        meta_b, arrays_b = load_checkpoint(Path(b) / name)
        assert arrays_a.keys() == arrays_b.keys()
        for key in arrays_a:
            assert arrays_a[key].dtype == arrays_b[key].dtype, key
            assert np.array_equal(arrays_a[key], arrays_b[key]), f"{name}: {key} differs"
        for key in ("epoch", "step", "optimizer", "scheduler", "rng_state", "loader"):
            assert meta_a[key] == meta_b[key], f"{name}: {key} differs"
    assert rows(a) == rows(b)


class SignalAt(Reporter):
    """Sends signals to this process from inside the loop, after given batches."""

    def __init__(self, at, signum):
        self.at, self.signum = set(at), signum

    def batch(self, epoch, done, batches, loss, samples_per_s):
        if (epoch, done) in self.at:
            os.kill(os.getpid(), self.signum)


def write_csv(path, header, rows):
    """A CSV file of a header and rows (cells as csv.writer writes them)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def assert_torch_parity(ours, theirs, x, *, rtol=1e-6, atol=1e-10, train=None, layout=None,
                        load_weights=True, seed=9):
    """micrograd against PyTorch in float64 on the same input ``x`` (a NumPy array)
    and the same output projection: outputs, input gradients and, for modules,
    parameter gradients and the state (buffers included) after the step.

    ``ours``/``theirs`` are modules (torch's weights are loaded into ours unless
    ``load_weights=False``; ``train`` sets both modes) or plain functions.
    ``layout(a)`` gives the arrays micrograd gets, input and output projection
    (the same values in another memory layout, so that its gradient arrives in
    that layout too)."""
    import torch

    from micrograd.engine.tensor import Tensor
    from micrograd.nn import Module

    modules = isinstance(ours, Module)
    if modules:
        theirs.double()
        ours.double()
        if train is not None:
            theirs.train(train)
            ours.train(train)
        if load_weights:
            ours.load_state_dict({k: v.detach().numpy().copy()
                                  for k, v in theirs.state_dict().items()})
        theirs.zero_grad()
        ours.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    xm = Tensor(x if layout is None else layout(x), requires_grad=True, dtype=np.float64)
    yt, ym = theirs(xt), ours(xm)
    assert ym.shape == tuple(yt.shape)
    proj = np.random.default_rng(seed).standard_normal(ym.shape)
    (yt * torch.from_numpy(proj)).sum().backward()
    (ym * Tensor(proj if layout is None else layout(proj), dtype=np.float64)).sum().backward()
    np.testing.assert_allclose(ym.data, yt.detach().numpy(), rtol=rtol, atol=atol,
                               err_msg="forward")
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=rtol, atol=atol,
                               err_msg="input gradient")
    if not modules:
        return
    ours_params, theirs_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert list(ours_params) == list(theirs_params)
    for name, p in theirs_params.items():
        np.testing.assert_allclose(ours_params[name].grad.data, p.grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=f"gradient of {name}")
    ours_state = ours.state_dict()
    theirs_state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours_state) == list(theirs_state)
    for name, value in theirs_state.items():
        np.testing.assert_allclose(ours_state[name], value, rtol=rtol, atol=atol, err_msg=name)
