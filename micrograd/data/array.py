"""Numeric feature vectors: the ``array`` kind, its pipeline and its reader.

Generated datasets (``micrograd.data.synthetic``, the config's ``type:
synthetic``) are of this kind: a model trained on them predicts from plain
numbers (``micrograd predict --input 11``, ``--input 1.5,-2``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .kinds import DataKind, register_kind
from .pipeline import Pipeline, PipelineError, Splits, as_rows

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



@register_kind
class ArrayKind(DataKind):
    """Numbers in: read from generated data at training, typed as ``1.5,-2`` or one
    sample per line for ``predict``. Generated data has no labelled file to read
    for ``eval --data``."""

    name = "array"
    pipeline_class = ArrayPipeline

    @classmethod
    def from_config(cls, section) -> Splits:
        from .synthetic import load_synthetic

        options = {"linear": dict(slope=section.slope, intercept=section.intercept,
                                  noise=section.noise),
                   "blobs": dict(centers=section.centers, std=section.std),
                   "moons": dict(noise=section.noise)}[section.kind]
        if section.n is not None:
            options["n"] = section.n
        return load_synthetic(section.kind, splits=section.splits.fractions(),
                              seed=section.seed, standardize=section.standardize, **options)

    def expects(self) -> str:
        n = self.pipeline.input_shape[0]
        return f"{n} number{'s' if n > 1 else ''}" + (" separated by commas" if n > 1 else "")

    def parse(self, text: str) -> list[float]:
        values = []
        for part in text.split(","):
            try:
                value = float(part)
            except ValueError:
                raise PipelineError(f"expected {self.expects()}, got {text!r}") from None
            if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
                raise PipelineError(f"{part.strip()!r} is not a finite number (the model takes "
                                    f"finite numbers up to {_FLOAT32_MAX:.4g} in magnitude); "
                                    f"expected {self.expects()}")
            values.append(value)
        if len(values) != self.pipeline.input_shape[0]:
            raise PipelineError(f"got {len(values)} number(s), the model expects "
                                f"{self.expects()}")
        return values

    def model_input(self, raw_inputs) -> np.ndarray:
        raw = np.asarray(raw_inputs, dtype=np.float64).reshape(len(raw_inputs), -1)
        return self.pipeline.transform(raw)
