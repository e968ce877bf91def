"""Generated datasets: the offline defaults behind the README's first commands.

- ``linear``: y = a*x + b + noise (the design document's toy: x = 1..10, y = 2x),
- ``blobs``: Gaussian clouds, one per class,
- ``moons``: two interleaving half circles.

Each builder returns ``Splits`` with an ``ArrayPipeline``, so a model trained
on them predicts from plain numbers (``micrograd predict --input 11``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .pipeline import Pipeline, PipelineError, Splits, as_rows
from .splits import split_indices

_FLOAT32_MAX = float(np.finfo(np.float32).max)  # beyond it a float32 model computes inf


class ArrayPipeline(Pipeline):
    """Numeric feature vectors in, optionally standardised with train statistics.

    ``transform`` accepts a number (one feature), a sequence of numbers (one
    sample), or a 2-D array (N, features). NaN, an infinity or a number beyond
    float32's range is a ``PipelineError``: these models have no imputation.

    Example::

        >>> p = ArrayPipeline.fit(np.array([[1.0], [3.0]]), task="regression")
        >>> p.transform(11).shape
        (1, 1)
    """

    kind = "array"

    def __init__(self, n_features, task="regression", class_names=None, mean=None, std=None,
                 feature_names=None):
        self.task = task
        self.class_names = class_names
        self.input_shape = (int(n_features),)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.std = None if std is None else np.asarray(std, dtype=np.float64)
        self.feature_names = feature_names or [f"x{i}" for i in range(n_features)]

    @classmethod
    def fit(cls, x_train, task="regression", class_names=None, standardize=False):
        x_train = np.asarray(x_train, dtype=np.float64)
        mean = std = None
        if standardize:
            mean = x_train.mean(axis=0)
            std = x_train.std(axis=0)
            std[std == 0] = 1.0  # a constant feature stays centred, not divided by zero
        return cls(x_train.shape[1], task, class_names, mean, std)

    def transform(self, raw) -> np.ndarray:
        try:
            x = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise PipelineError(
                f"expected numbers ({self.input_shape[0]} feature(s) per sample), got {raw!r}"
            ) from None
        n = self.input_shape[0]
        x = as_rows(x, n)
        if x.ndim != 2 or x.shape[1] != n:
            raise PipelineError(
                f"expected {n} feature(s) per sample, got input of shape {np.shape(raw)}"
            )
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > _FLOAT32_MAX)
        if bad.any():
            row, col = (int(i) for i in np.argwhere(bad)[0])
            raise PipelineError(
                f"feature {col} of sample {row} is {float(x[row, col])!r}, which is not a finite "
                f"number (the model takes finite numbers up to {_FLOAT32_MAX:.4g} in magnitude)"
            )
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x.astype(np.float32)

    def get_state(self):
        meta: dict[str, Any] = {
            "n_features": self.input_shape[0],
            "task": self.task,
            "class_names": self.class_names,
            "feature_names": self.feature_names,
        }
        arrays = {}
        if self.mean is not None:
            arrays = {"mean": self.mean, "std": self.std}
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays):
        return cls(meta["n_features"], meta["task"], meta.get("class_names"),
                   arrays.get("mean"), arrays.get("std"), meta.get("feature_names"))


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
