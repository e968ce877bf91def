"""Data kinds: one class per kind of data, owning its whole life.

A kind (``tabular``, ``text``, ``image``, ``array``) loads its data from the
config's ``data`` section and fits its ``Pipeline`` on the train split
(``from_config``), and, around a fitted pipeline, reads what ``predict`` and
``eval`` are given: one input typed on the command line (``parse``), a file of
inputs (``read_inputs``), a labelled file (``read_labelled``), and says what an
input looks like (``expects``). ``build``, ``eval`` and ``predict`` ask the kind
and never branch on it (STYLE.md point 14: scikit-learn's fit/transform,
Ludwig's ``features/*_feature.py``).

One vocabulary: the kind's name is the pipeline kind stored in checkpoints.
The config's ``data.type`` values (what users write) map to kinds through
``CONFIG_TYPES``; ``MODULES`` says where each kind is defined, so that only the
kind in use is imported (loading a checkpoint does not import every reader)::

    splits = kind_for(config.data).from_config(config.data)  # build: Splits, fitted
    x, y = kind_of(pipeline, config.data).read_labelled(path)  # eval --data

A new kind subclasses ``DataKind`` in its module, decorates it with
``@register_kind``, and gets one line in ``MODULES`` and one per config type
in ``CONFIG_TYPES``.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .pipeline import DataError, Pipeline, PipelineError, Splits

# The config's data.type (what users write) -> the kind that reads it.
CONFIG_TYPES: dict[str, str] = {
    "synthetic": "array",
    "csv": "tabular",
    "text": "text",
    "mnist": "image",
    "fashion_mnist": "image",
}

# Each kind (the name stored in checkpoints) -> the module defining it and its
# pipeline, imported on first use.
MODULES: dict[str, str] = {
    "array": "micrograd.data.array",
    "tabular": "micrograd.data.tabular",
    "text": "micrograd.data.text",
    "image": "micrograd.data.images",
}

_KINDS: dict[str, type["DataKind"]] = {}


def register_kind(cls: type["DataKind"]) -> type["DataKind"]:
    """Class decorator: make ``cls`` the kind named ``cls.name`` (and the reader of
    pipelines of that kind stored in checkpoints)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a data kind needs a name")
    if cls.pipeline_class is None or cls.pipeline_class.kind != cls.name:
        raise ValueError(f"{cls.__name__}: pipeline_class must be a Pipeline whose kind is "
                         f"{cls.name!r}")
    _KINDS[cls.name] = cls
    return cls


def kind_named(name: str) -> type["DataKind"]:
    """The kind class called ``name`` (a checkpoint's ``pipeline.kind``), imported on demand."""
    if name not in _KINDS and name in MODULES:
        importlib.import_module(MODULES[name])
    if name not in _KINDS:
        known = sorted(set(MODULES) | set(_KINDS))
        raise PipelineError(f"unknown preprocessing kind {name!r}; known kinds: "
                            f"{', '.join(known)}")
    return _KINDS[name]


def kind_for(section) -> type["DataKind"]:
    """The kind class that reads a config ``data`` section (by its ``type``)."""
    data_type = getattr(section, "type", section)
    if data_type not in CONFIG_TYPES:
        raise PipelineError(f"unknown data type {data_type!r}; known types: "
                            f"{', '.join(sorted(CONFIG_TYPES))}")
    return kind_named(CONFIG_TYPES[data_type])


def kind_of(pipeline: Pipeline, section=None) -> "DataKind":
    """The kind of a fitted pipeline, around it: what ``predict`` and ``eval`` ask.

    ``section`` is the config's ``data`` section when known (a text kind reads
    ``eval --data`` files with the training file's delimiter and header).
    """
    return kind_named(pipeline.kind)(pipeline, section)


def load_data(section) -> Splits:
    """Load, split and fit the data a config ``data`` section describes."""
    return kind_for(section).from_config(section)


class DataKind:
    """Base class of data kinds; a subclass is decorated with ``@register_kind``.

    The class side trains: ``from_config(section)`` reads the data, splits it
    and returns ``Splits`` with the pipeline fitted on the train split. An
    instance wraps a fitted pipeline (from training or a checkpoint) and the
    config's ``data`` section when known, and reads raw inputs for it.

    Subclasses set ``name`` and ``pipeline_class`` and implement
    ``from_config``, ``expects`` and ``parse``; the others have defaults:
    ``read_inputs`` parses one input per line, ``model_input`` is the
    pipeline's ``transform`` of the list, and ``read_labelled`` refuses (data
    that is generated, not read).
    """

    name: ClassVar[str] = ""
    pipeline_class: ClassVar[type[Pipeline] | None] = None

    def __init__(self, pipeline: Pipeline, section=None):
        self.pipeline = pipeline
        self.section = section

    def __repr__(self):
        return f"{type(self).__name__}({self.pipeline!r})"

    # ------------------------------------------------------------ training

    @classmethod
    def from_config(cls, section) -> Splits:
        """Read the data ``section`` describes, split it, fit the pipeline on train."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Pipeline:
        """The kind's pipeline rebuilt from a checkpoint's state."""
        return cls.pipeline_class.from_state(meta, arrays)

    # ----------------------------------------------------------- inference

    def expects(self) -> str:
        """What one input looks like, in words (for help and error messages)."""
        raise NotImplementedError

    def parse(self, text: str):
        """One raw input from its command-line spelling; a ``PipelineError`` (exit 2)
        when it does not fit."""
        raise NotImplementedError

    def read_inputs(self, source) -> list:
        """Raw inputs from a file, or standard input when ``source`` is ``-``: one
        input per line, each read by ``parse``; a bad line is a ``DataError``
        naming the file and line (exit 1)."""
        from .files import read_text, source_name

        name = source_name(source)
        text = read_text(source, "input file").replace("\r\n", "\n").replace("\r", "\n")
        inputs = []
        for number, line in enumerate(text.split("\n"), 1):  # not at form feeds, U+2028
            if not line.strip():
                continue
            try:
                inputs.append(self.parse(line))
            except DataError:
                raise
            except PipelineError as exc:
                raise DataError(f"{name}, line {number}: {exc}") from None
        return inputs

    def model_input(self, raw_inputs) -> np.ndarray:
        """A list of raw inputs (as ``parse`` and ``read_inputs`` give them) -> the
        model's input batch."""
        return self.pipeline.transform(list(raw_inputs))

    def read_labelled(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(model inputs, targets in model units) of a labelled file of this kind's
        form, through the stored pipeline (``eval --data``)."""
        data_type = getattr(self.section, "type", None) or self.name
        raise PipelineError(f"--data is not available for {data_type} datasets (they are "
                            f"generated)")
