"""Evaluate a checkpoint: from the file alone, on its test split or on other data.

The model, its config and its preprocessing come out of the checkpoint. The
test split is rebuilt from the stored config (splits are seeded, so it is the
same split), and other data of the same form is read raw and put through the
stored pipeline, never a refitted one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from micrograd.config.loader import ConfigError
from micrograd.data.pipeline import DataError
from micrograd.inference import full_report
from micrograd.run import restore


def evaluate_checkpoint(path, data=None) -> tuple[dict, str]:
    """(flat JSON-able metrics, a description of what was evaluated)."""
    restored = restore(path)
    config, pipeline = restored.config, restored.pipeline
    if data is None:
        from micrograd.build import build_data

        splits = build_data(config)
        x, y, where = splits.x_test, splits.y_test, "the test split"
        if len(y) == 0:
            x, y, where = splits.x_val, splits.y_val, "the validation split (no test split)"
        if len(y) == 0:
            raise ConfigError(f"{path}: the stored config has no test or validation split to "
                              f"evaluate; pass --data")
    else:
        x, y = read_labelled(Path(data), config, pipeline)
        where = str(data)
    return full_report(restored.model, x, y, config, pipeline), where


def read_labelled(path: Path, config, pipeline) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets of another dataset of the checkpoint's form."""
    kind = config.data.type
    if not path.exists():
        raise DataError(f"evaluation data {path} does not exist")
    if kind == "csv":
        # training's reader and checks: a BOM, a renamed or missing column, a ragged
        # row or an infinite value is an error naming the file, not nan metrics
        rows, targets = pipeline.read_table(path, with_target=True)
        return pipeline.transform(rows), pipeline.transform_target(targets)
    if kind == "text":
        from micrograd.data.text import _read_lines

        d = config.data
        records = _read_lines([path], d.delimiter, d.has_header, 0, 1)
        names = pipeline.class_names
        bad = [r for r in records if r[4] is not None or r[3] not in names]
        if bad and not d.skip_bad_lines:
            p, line, _, label, problem = bad[0]
            raise DataError(f"{p}, line {line}: expected sentence<TAB>label with a label "
                            f"in {names} ({problem or f'label {label!r}'})")
        good = [r for r in records if r not in bad]
        return (pipeline.transform([r[2] for r in good]),
                np.array([names.index(r[3]) for r in good], dtype=np.int64))
    if kind in ("mnist", "fashion_mnist"):
        from micrograd.data.images import read_split

        images, labels = read_split(path, "test", kind)
        return pipeline.transform(images), labels
    raise ConfigError(f"--data is not available for {kind} datasets (they are generated)")
