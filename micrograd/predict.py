"""Predictions from a checkpoint: raw inputs in, values or class names out.

    from micrograd.predict import Predictor
    p = Predictor("runs/latest-run/best.npz")
    p.predict([11])            # regression: [{"value": 22.0}]
    p.predict_text("11")       # the CLI's --input, parsed for this model's data

The checkpoint's own preprocessing is applied, so inputs are given in the
units and form of the training data (a raw house area, a sentence, a 28x28
image), and regression values come back in the target's original units.

``write_predictions`` writes them as a CSV (``predict --output``), keyed by the
input file's id column when it has one that is not a feature (``Id``,
``PassengerId``, ``row_id``...), else by row number.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from micrograd.checkpoint import write_new_file
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

    def input_ids(self, path, count: int) -> tuple[str, list]:
        """The name and values of the id column of a CSV of inputs: the first column
        that is neither a feature nor the target and is named like an id (``id``,
        ``Id``, ``ID``, ``index``, or ending in ``Id``, ``ID``, ``_id``); else ``("row",
        [1, 2, ...])``. Standard input is read only once, so it always gets row numbers."""
        rows = ("row", list(range(1, count + 1)))
        columns = getattr(self.pipeline, "columns", None)  # only a table's pipeline has them
        if columns is None or source_name(path) == "<stdin>":
            return rows
        from micrograd.data.tabular import read_csv_columns

        header, table, _ = read_csv_columns(path)
        known = set(columns) | {getattr(self.pipeline, "target", None)}
        for name in header:
            if name not in known and _looks_like_id(name) and len(table[name]) == count:
                return name, table[name].tolist()
        return rows

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


def _looks_like_id(name: str) -> bool:
    return name.lower() in ("id", "index") or name.endswith(("Id", "ID", "_id"))


def prediction_table(results: list[dict], id_name: str, ids: list, target=None) -> list[list]:
    """Rows of a predictions CSV, the header first: the id, then the value (regression;
    the column is named after the target when known) or the label and its probability,
    and ``label_k``/``probability_k`` for each further class of ``--top``."""
    if len(ids) != len(results):
        raise ValueError(f"{len(ids)} ids for {len(results)} predictions")
    if results and "value" in results[0]:
        header = [id_name, target or "value"]
        return [header] + [[i, f"{r['value']:.9g}"] for i, r in zip(ids, results)]
    k = max((len(r["top"]) for r in results), default=1)
    header = [id_name, target or "label", "probability"]
    for n in range(2, k + 1):
        header += [f"label_{n}", f"probability_{n}"]
    table = [header]
    for i, r in zip(ids, results):
        row = [i]
        for name, p in r["top"]:
            row += [name, f"{p:.6g}"]
        table.append(row)
    return table


def write_predictions(path, table: list[list], force: bool = False) -> Path:
    """Write ``table`` as a CSV at ``path``, atomically; an existing file is a
    ``FileExistsError`` unless ``force``."""
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(table)
    return write_new_file(path, buf.getvalue().encode("utf-8"), force)


def __getattr__(name):
    # load_image was defined here; its home is the image kind's module now, imported
    # only when asked for (a tabular model's predict does not import the image reader)
    if name == "load_image":
        from micrograd.data.images import load_image

        return load_image
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
