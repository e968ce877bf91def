"""Predictions from a checkpoint: raw inputs in, values or class names out.

    from micrograd.predict import Predictor
    p = Predictor("runs/latest-run/best.npz")
    p.predict([11])            # regression: [{"value": 22.0}]
    p.predict_text("11")       # the CLI's --input, parsed for this model's data

The checkpoint's own preprocessing is applied, so inputs are given in the
units and form of the training data (a raw house area, a sentence, a 28x28
image), and regression values come back in the target's original units.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from micrograd.data.files import source_name
from micrograd.data.kinds import DataKind, kind_of
from micrograd.data.pipeline import DataError
from micrograd.inference import class_probabilities, predict_outputs
from micrograd.run import restore


class Predictor:
    """A restored model with its preprocessing; reading inputs is its data kind's
    (``micrograd.data.kinds``): tabular, text, image or array."""

    def __init__(self, checkpoint):
        self.checkpoint = Path(checkpoint)
        restored = restore(self.checkpoint)
        self.config, self.pipeline, self.model = restored.config, restored.pipeline, restored.model

    @property
    def kind(self) -> str:
        return self.pipeline.kind

    @property
    def data_kind(self) -> DataKind:
        """The kind around this model's pipeline (and the training config's data section)."""
        return kind_of(self.pipeline, getattr(self.config, "data", None))

    def expects(self) -> str:
        """What an input looks like, in words (for help and error messages)."""
        return self.data_kind.expects()

    # ------------------------------------------------------------ parsing

    def parse(self, text: str):
        """One raw input from its command-line spelling (a ``PipelineError`` if it does
        not fit: the CLI exits 2)."""
        return self.data_kind.parse(text)

    def read_file(self, path) -> list:
        """Many raw inputs from a file, or from standard input when ``path`` is ``-``:
        a CSV with a header for tabular models (read and checked as training reads
        its data: ``TabularPipeline.read_table``), else one input per line.

        Anything wrong with the file - missing, not UTF-8, a missing column, a bad
        value on some line - is a ``DataError`` naming the file and line (exit 1).
        """
        if source_name(path) != "<stdin>":
            path = Path(path)
            if not path.is_file():
                raise DataError(f"input file {path} does not exist"
                                + (" (it is a directory)" if path.is_dir() else ""))
        return self.data_kind.read_inputs(path)

    # --------------------------------------------------------- prediction

    def predict(self, raw_inputs, top: int = 1) -> list[dict]:
        """Predictions for a list of raw inputs: ``{"value": v}`` for regression,
        ``{"label": name, "probability": p, "top": [(name, p), ...]}`` for classes."""
        p = self.pipeline
        x = self.data_kind.model_input(raw_inputs)
        outputs = predict_outputs(self.model, x)
        if p.task != "classification":
            values = p.inverse_target(outputs.reshape(-1).astype(np.float64))
            return [{"value": float(v)} for v in values]
        probs = class_probabilities(outputs, self.config)
        names = list(p.class_names or [])
        names += [str(i) for i in range(len(names), probs.shape[1])]
        results = []
        k = max(1, min(top, probs.shape[1]))  # --top 5 of 2 classes: both, no IndexError
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            ranked = [(names[i], float(row[i])) for i in order]
            results.append({"label": ranked[0][0], "probability": ranked[0][1], "top": ranked})
        return results

    def predict_text(self, text: str, top: int = 1) -> dict:
        return self.predict([self.parse(text)], top=top)[0]


def __getattr__(name):
    # load_image was defined here; its home is the image kind's module now, imported
    # only when asked for (a tabular model's predict does not import the image reader)
    if name == "load_image":
        from micrograd.data.images import load_image

        return load_image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
