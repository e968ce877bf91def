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
from pathlib import Path

import numpy as np

from micrograd.data.pipeline import PipelineError
from micrograd.train import class_probabilities, predict_outputs, restore


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
        """One raw input from its command-line spelling."""
        p = self.pipeline
        if p.kind == "text":
            return text
        if p.kind == "image":
            return load_image(text, p.input_shape)
        if p.kind == "tabular":
            if "=" in text:
                row = {}
                for part in _csv_fields(text):
                    if "=" not in part:
                        raise PipelineError(f"expected key=value, got {part!r}; the model expects "
                                            f"{self.expects()}")
                    key, value = part.split("=", 1)
                    row[key.strip()] = value.strip()
                unknown = [k for k in row if k not in p.columns and k != p.target]
                if unknown:
                    raise PipelineError(f"unknown column(s) {', '.join(unknown)}; the model "
                                        f"expects {self.expects()}")
                return row
            values = _csv_fields(text)
            if len(values) != len(p.columns):
                raise PipelineError(f"got {len(values)} value(s), the model expects "
                                    f"{len(p.columns)}: {self.expects()}")
            return dict(zip(p.columns, values))
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise PipelineError(f"expected {self.expects()}, got {text!r}") from None
        if len(values) != p.input_shape[0]:
            raise PipelineError(f"got {len(values)} number(s), the model expects "
                                f"{self.expects()}")
        return values

    def read_file(self, path) -> list:
        """Many raw inputs: a CSV with a header (tabular), else one input per line."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input file {path} does not exist")
        try:
            text = path.read_text(encoding="utf-8")
            if self.pipeline.kind == "tabular":
                return list(csv.DictReader(io.StringIO(text)))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise PipelineError(f"{path}: expected UTF-8 text, one input per line (a CSV with "
                                f"a header for tabular models) ({exc})") from None
        return [self.parse(line) for line in text.splitlines() if line.strip()]

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
        names = p.class_names or [str(i) for i in range(probs.shape[1])]
        results = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:max(1, top)]
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
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise PipelineError(f"{path}: not a plain numeric .npy array ({exc})") from None
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
