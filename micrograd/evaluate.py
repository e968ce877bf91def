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
from micrograd.data.kinds import kind_of
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
    """Inputs and targets of another dataset of the checkpoint's form, read by the
    pipeline's data kind (with the stored config's data section) and put through the
    stored pipeline."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"evaluation data {path} does not exist")
    return kind_of(pipeline, getattr(config, "data", None)).read_labelled(path)
