"""Generated datasets: the offline defaults behind the README's first commands.

- ``linear``: y = a*x + b + noise (the design document's toy: x = 1..10, y = 2x),
- ``blobs``: Gaussian clouds, one per class,
- ``moons``: two interleaving half circles.

Each builder returns ``Splits`` with an ``ArrayPipeline`` (the ``array`` kind,
``micrograd.data.array``), so a model trained on them predicts from plain
numbers (``micrograd predict --input 11``).
"""
from __future__ import annotations

import numpy as np

from .array import ArrayPipeline
from .pipeline import Splits
from .splits import split_indices


def _split(x, y, task, splits, seed, standardize, class_names=None):
    stratify = y if task == "classification" else None
    parts = split_indices(len(x), splits, seed=seed, stratify=stratify)
    while len(parts) < 3:
        parts.append(np.empty(0, dtype=np.int64))
    train, val, test = parts[:3]
    pipeline = ArrayPipeline.fit(x[train], task, class_names, standardize)
    xs = [pipeline.transform(x[i]) if len(i) else np.empty((0, x.shape[1]), np.float32)
          for i in (train, val, test)]
    y_dtype = np.int64 if task == "classification" else np.float32
    ys = [y[i].astype(y_dtype) for i in (train, val, test)]
    return Splits(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], pipeline,
                  info={"samples": len(x)})


def make_linear(n=10, slope=2.0, intercept=0.0, noise=0.0, x_min=1.0, x_max=None, seed=0):
    """x evenly spaced from ``x_min`` (1, 2, ..., n by default), y = slope*x + intercept + noise."""
    x_max = x_min + n - 1 if x_max is None else x_max
    x = np.linspace(x_min, x_max, n)[:, None]
    y = slope * x[:, 0] + intercept
    if noise:
        y = y + np.random.default_rng(seed).normal(0.0, noise, n)
    return x, y


def make_blobs(n=200, centers=2, n_features=2, std=1.0, spread=4.0, seed=0):
    """``centers`` Gaussian clouds; the class is the cloud's index."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-spread, spread, (centers, n_features))
    labels = np.arange(n) % centers
    rng.shuffle(labels)
    return means[labels] + rng.normal(0.0, std, (n, n_features)), labels


def make_moons(n=200, noise=0.1, seed=0):
    """Two interleaving half circles (class 0 on top, class 1 below)."""
    rng = np.random.default_rng(seed)
    top = n // 2
    t0 = np.linspace(0, np.pi, top)
    t1 = np.linspace(0, np.pi, n - top)
    x = np.concatenate([np.c_[np.cos(t0), np.sin(t0)],
                        np.c_[1 - np.cos(t1), 0.5 - np.sin(t1)]])
    y = np.r_[np.zeros(top, np.int64), np.ones(n - top, np.int64)]
    x = x + rng.normal(0.0, noise, x.shape)
    order = rng.permutation(n)
    return x[order], y[order]


def load_synthetic(kind="linear", *, splits=(0.8, 0.2, 0.0), seed=0, standardize=False,
                   **options) -> Splits:
    """Build one of the generated datasets and split it.

    Args:
        kind: 'linear' (regression), 'blobs' or 'moons' (classification).
        splits: train/validation/test fractions.
        seed: drives the generator and the split.
        standardize: standardise features with the train split's statistics.
        options: passed to ``make_linear`` / ``make_blobs`` / ``make_moons``.
    """
    makers = {"linear": make_linear, "blobs": make_blobs, "moons": make_moons}
    if kind not in makers:
        raise ValueError(f"unknown synthetic dataset {kind!r}; choose one of {sorted(makers)}")
    x, y = makers[kind](seed=seed, **options)
    if kind == "linear":
        return _split(x, y, "regression", splits, seed, standardize)
    names = [str(c) for c in range(int(y.max()) + 1)]
    return _split(x, y, "classification", splits, seed, standardize, names)
