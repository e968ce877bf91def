"""Preprocessing state that travels with a model, and what dataset builders return.

A ``Pipeline`` holds everything learned from the training split (imputation
values, scaler statistics, category lists, vocabulary, class names, input
shape). It turns raw inputs - a number, a CSV row, a sentence, an image array -
into the model's input, and serialises to JSON metadata plus plain NumPy
arrays (never pickle) so that a checkpoint can carry it and ``eval`` /
``predict`` apply exactly the transform that training used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class PipelineError(ValueError):
    """Raw input that does not fit a pipeline; the message says what was expected."""


class DataError(PipelineError):
    """A data or input file that is missing, unreadable or holds unusable values.

    The message names the file (and the line and column where there is one). The
    CLI exits 1 for it, as for an unreadable checkpoint; a ``PipelineError``
    about a value typed on the command line exits 2.
    """


class Pipeline:
    """Base class of fitted preprocessing pipelines.

    Subclasses set ``kind`` (the name stored in checkpoints, and the name of
    the ``DataKind`` in ``micrograd.data.kinds`` that owns the pipeline: loads
    its data, fits it and reads raw inputs for it), fill ``task``
    ('regression' or 'classification'), ``class_names`` and ``input_shape``,
    and implement ``transform``, ``get_state`` and ``from_state``.
    """

    kind: ClassVar[str] = ""
    task: str = "regression"
    class_names: list[str] | None = None
    input_shape: tuple[int, ...] = ()
    #: How many token ids the inputs use, for data that gives token ids (an
    #: embedding's num_embeddings); None otherwise.
    num_tokens: int | None = None

    def transform(self, raw) -> np.ndarray:
        """Raw inputs (a batch in the pipeline's natural form) -> the model's input.

        Every kind gives float32 today; the dtype is the kind's to choose (token
        ids for an embedding would be int64), nothing downstream casts it."""
        raise NotImplementedError

    def inverse_target(self, y: np.ndarray) -> np.ndarray:
        """Model outputs back to the target's original units (regression)."""
        return y

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, named numeric arrays) describing the fitted state."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Pipeline":
        raise NotImplementedError

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``get_state`` with the kind recorded, ready to store."""
        meta, arrays = self.get_state()
        return {"kind": self.kind, **meta}, arrays


def as_rows(x: np.ndarray, n_features: int) -> np.ndarray:
    """Raw numbers as (N, n_features): a scalar is one sample of one feature; a 1-D
    input is one sample when it has n_features values, else N samples of one
    feature. The caller checks the result's width."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1) if x.size == n_features else x.reshape(-1, 1)
    return x


def pipeline_from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Pipeline:
    """Rebuild whichever pipeline ``meta['kind']`` names ('array', 'tabular', 'text',
    'image'), importing only the module of that kind."""
    from .kinds import kind_named

    return kind_named(meta.get("kind")).from_state(meta, arrays)


@dataclass
class Splits:
    """What a dataset builder returns: arrays for each split and the fitted pipeline.

    ``x_*`` are model inputs, already transformed, in the dtype the pipeline's
    ``transform`` gives (float32 features, or int64 token ids; nothing here
    casts them): NumPy arrays, or a ``micrograd.data.sparse.CSRMatrix`` for
    bag-of-words text (the DataLoader densifies one batch at a time); ``y_*`` are int64
    class indices for classification or float32 targets (in the pipeline's
    scaled units) for regression. ``val`` and ``test`` may be empty arrays.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pipeline: Pipeline
    info: dict[str, Any] = field(default_factory=dict)
