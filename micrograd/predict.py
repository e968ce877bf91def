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

import csv
import io
import math
from pathlib import Path

import numpy as np

from micrograd.data.pipeline import DataError, PipelineError
from micrograd.data.tabular import FLOAT32_MAX, _suggest, read_text, source_name
from micrograd.inference import class_probabilities, predict_outputs
from micrograd.run import restore


class Predictor:
    """A restored model with its preprocessing."""

    def __init__(self, checkpoint):
        self.checkpoint = Path(checkpoint)
        restored = restore(self.checkpoint)
        self.config, self.pipeline, self.model = restored.config, restored.pipeline, restored.model

    @property
    def kind(self) -> str:
        return self.pipeline.kind

    def expects(self) -> str:
        """What an input looks like, in words (for help and error messages)."""
        p = self.pipeline
        if p.kind == "array":
            n = p.input_shape[0]
            return f"{n} number{'s' if n > 1 else ''}" + (" separated by commas" if n > 1 else "")
        if p.kind == "tabular":
            return ("key=value pairs separated by commas (columns: " + ", ".join(p.columns[:8])
                    + (", ..." if len(p.columns) > 8 else "") + "), or a CSV row in that order")
        if p.kind == "text":
            return "a sentence"
        c, h, w = p.input_shape
        return f"a .npy array or PNG/JPEG image of {h}x{w} pixels"

    # ------------------------------------------------------------ parsing

    def parse(self, text: str):
        """One raw input from its command-line spelling (a ``PipelineError`` if it does
        not fit: the CLI exits 2)."""
        p = self.pipeline
        if p.kind == "text":
            return text
        if p.kind == "image":
            return load_image(text, p.input_shape)
        if p.kind == "tabular":
            if "=" in text:
                return self._parse_pairs(text)
            values = _csv_fields(text)
            if len(values) != len(p.columns):
                raise PipelineError(f"got {len(values)} value(s), the model expects "
                                    f"{len(p.columns)}: {self.expects()}")
            return dict(zip(p.columns, values))
        values = []
        for part in text.split(","):
            try:
                value = float(part)
            except ValueError:
                raise PipelineError(f"expected {self.expects()}, got {text!r}") from None
            if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                raise PipelineError(f"{part.strip()!r} is not a finite number (the model takes "
                                    f"finite numbers up to {FLOAT32_MAX:.4g} in magnitude); "
                                    f"expected {self.expects()}")
            values.append(value)
        if len(values) != p.input_shape[0]:
            raise PipelineError(f"got {len(values)} number(s), the model expects "
                                f"{self.expects()}")
        return values

    def _parse_pairs(self, text: str) -> dict:
        """``col=value,...``: every feature column named once; ``col=`` (empty) is
        imputed as a missing cell, a column left out is an error."""
        p = self.pipeline
        row = {}
        for part in _csv_fields(text):
            if "=" not in part:
                raise PipelineError(f"expected key=value, got {part!r}; the model expects "
                                    f"{self.expects()}")
            key, value = (s.strip() for s in part.split("=", 1))
            if key in row:
                raise PipelineError(f"column {key!r} is given twice; the model expects "
                                    f"{self.expects()}")
            row[key] = value
        known = set(p.columns) | {p.target}
        unknown = [k for k in row if k not in known]
        missing = [c for c in p.columns if c not in row]
        if not unknown and not missing:
            return row
        problems = []
        if unknown:
            spelled = []
            for key in unknown:
                hint = _suggest(key, missing)
                spelled.append(key + (f" (did you mean {hint!r}?)" if hint else ""))
            problems.append(f"unknown column(s) {', '.join(spelled)}")
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)} (write 'column=' with "
                            f"no value to have a value imputed as in training)")
        raise PipelineError("; ".join(problems) + f"; the model expects {self.expects()}")

    def read_file(self, path) -> list:
        """Many raw inputs from a file, or from standard input when ``path`` is ``-``:
        a CSV with a header for tabular models (read and checked as training reads
        its data: ``TabularPipeline.read_table``), else one input per line.

        Anything wrong with the file - missing, not UTF-8, a missing column, a bad
        value on some line - is a ``DataError`` naming the file and line (exit 1).
        """
        name = source_name(path)
        if name != "<stdin>":
            path = Path(path)
            if not path.is_file():
                raise DataError(f"input file {path} does not exist"
                                + (" (it is a directory)" if path.is_dir() else ""))
        if self.pipeline.kind == "tabular":
            return self.pipeline.read_table(path)[0]
        inputs = []
        text = read_text(path, "input file").replace("\r\n", "\n").replace("\r", "\n")
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

    # --------------------------------------------------------- prediction

    def predict(self, raw_inputs, top: int = 1) -> list[dict]:
        """Predictions for a list of raw inputs: ``{"value": v}`` for regression,
        ``{"label": name, "probability": p, "top": [(name, p), ...]}`` for classes."""
        p = self.pipeline
        if p.kind == "image":
            x = p.transform(np.stack([np.asarray(r) for r in raw_inputs]))
        elif p.kind == "array":
            x = p.transform(np.asarray(raw_inputs, dtype=np.float64).reshape(len(raw_inputs), -1))
        else:
            x = p.transform(list(raw_inputs))
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


def _csv_fields(text: str) -> list[str]:
    """The values of one comma-separated line."""
    try:
        return next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise PipelineError(f"expected one line of comma-separated values, got {text!r} "
                            f"({exc})") from None


def load_image(path_text: str, input_shape) -> np.ndarray:
    """An image input: a .npy array, or PNG/JPEG when Pillow is installed."""
    path = Path(path_text)
    if not path.is_file():
        raise PipelineError(f"image input {path} does not exist (expected a .npy array or a "
                            f"PNG/JPEG file)")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise PipelineError(f"{path}: not a plain numeric .npy array ({exc})") from None
        if array.dtype.kind in "fc":
            bad = ~np.isfinite(array)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise PipelineError(f"{path}: {int(bad.sum())} pixel value(s) are not finite "
                                    f"numbers (NaN or infinite; the first at index {where}); "
                                    f"expected an image of finite pixel values")
        return array
    try:
        from PIL import Image
    except ImportError:
        raise PipelineError(
            f"{path}: reading {path.suffix or 'image'} files needs Pillow "
            f"(pip install 'micrograd-trainer[vision]'); a .npy array works without it"
        ) from None
    try:
        img = Image.open(path).convert("L")
    except OSError as exc:
        raise PipelineError(f"{path}: not a readable image ({exc})") from None
    _, h, w = input_shape
    if img.size != (w, h):
        raise PipelineError(f"{path}: image is {img.size[0]}x{img.size[1]} pixels, the model "
                            f"expects {w}x{h}")
    return np.asarray(img, dtype=np.uint8)
