"""A profile of the data as a config will see it, without training.

``profile(config)`` loads and splits the data exactly as ``train`` does (the
kind's ``from_config``, which ``build_data`` calls: the same cleaning,
splitting and fitted preprocessing) and
returns a JSON-able dict for ``micrograd data``::

    {"data": "text", "kind": "text", "task": "classification",
     "samples": 1983, "input_shape": [4906],
     "rows": {"train": 1586, "val": 198, "test": 199},
     "class_balance": {"train": {"0": 793, "1": 793}, ...},
     "duplicates": {"found": 17, "dropped": 17, "conflicts": 0},
     "features": {"count": 4906, "sample": [".", "the", ...], "ngram_range": [1, 1]},
     "warnings": ["17 line(s) repeat an earlier sentence and label ..."]}

The sections come from the kind's ``Splits.info`` where it gives them:
``rows``, ``duplicates`` ({found, dropped, conflicts}), ``missing`` ({column:
n}), ``outliers`` ({column: {found, action, ...}}), ``class_balance`` ({split:
{class: n}}), ``features`` (names after selection, or a count and sample) and
``selected_out``. ``rows`` and ``class_balance`` are counted from the split
targets for a kind that does not give them (images, generated arrays); the
other sections are left out when the kind has nothing to say.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .pipeline import Splits

#: The ``Splits.info`` sections a profile carries over as they are.
SECTIONS = ("rows", "class_balance", "duplicates", "missing", "outliers", "features",
            "selected_out", "skipped_lines", "dropped_rows")
SPLITS = ("train", "val", "test")


def profile(config) -> dict[str, Any]:
    """Load the data ``config`` describes (as ``train`` would) and describe it.

    Warnings raised while loading (dropped duplicates, skipped lines) are
    listed under ``"warnings"`` and raised again for the caller.
    """
    from .kinds import load_data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_data(config.data)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    report = profile_splits(splits, data_type=getattr(config.data, "type", None))
    report["warnings"] = [str(w.message) for w in caught]
    return report


def profile_splits(splits: Splits, data_type: str | None = None) -> dict[str, Any]:
    """The profile of already built ``Splits`` (see the module docstring)."""
    pipeline = splits.pipeline
    info = splits.info or {}
    targets = {"train": splits.y_train, "val": splits.y_val, "test": splits.y_test}
    task = getattr(pipeline, "task", None)
    report: dict[str, Any] = {
        "data": data_type or pipeline.kind,
        "kind": pipeline.kind,
        "task": task,
        "input_shape": list(getattr(pipeline, "input_shape", ()) or ()),
    }
    rows = info.get("rows") or {name: len(y) for name, y in targets.items()}
    report["samples"] = info.get("samples", sum(rows.values()))
    report["rows"] = rows
    for key in SECTIONS:
        if key in info and key != "rows":
            report[key] = info[key]
    if "class_balance" not in report and task == "classification":
        report["class_balance"] = _class_balance(targets, getattr(pipeline, "class_names", None))
    return _jsonable(report)


def _class_balance(targets, class_names) -> dict[str, dict[str, int]]:
    """{split: {class name: count}} from int class indices."""
    n = max([int(y.max()) + 1 for y in targets.values() if len(y)] + [0])
    names = list(class_names) if class_names else [str(i) for i in range(n)]
    return {split: dict(zip(names, np.bincount(np.asarray(y, dtype=np.int64).ravel(),
                                               minlength=len(names)).tolist()))
            for split, y in targets.items()}


def _jsonable(value):
    """NumPy scalars and arrays, tuples and non-string keys as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
