"""A validation figure's course as one line of block characters, for a terminal.

Pure Python (no matplotlib, no NumPy): ``train`` prints it under its result and
``micrograd runs`` shows it as a column.

    sparkline([0.9, 0.5, 0.3, 0.25])          # '█▄▂▁'
    sparkline(values, width=20)               # at most 20 characters
    monitored_series("runs/mnist", "accuracy")  # val_accuracy per epoch, from metrics.csv
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values, width: int | None = None, log: bool | None = None) -> str:
    """One character per value (or per group of values when there are more than
    ``width``), low to high; a missing or non-finite value is a space. A constant
    series is a flat line at mid height. ``log`` scales logarithmically; by default
    (None) when every value is positive and they span a factor of 100 or more, as a
    loss falling over orders of magnitude does (linearly it is one tall bar, then flat)."""
    values = [_finite(v) for v in values]
    if width is not None and width > 0 and len(values) > width:
        values = _shrink(values, width)
    seen = [v for v in values if v is not None]
    if not seen:
        return " " * len(values)
    if log is None:
        log = min(seen) > 0 and max(seen) >= 100 * min(seen)
    if log and min(seen) > 0:
        values = [None if v is None else math.log10(v) for v in values]
        seen = [v for v in values if v is not None]
    low, high = min(seen), max(seen)
    top = len(BARS) - 1
    if high == low:
        return "".join(" " if v is None else BARS[top // 2] for v in values)
    return "".join(" " if v is None else BARS[round((v - low) / (high - low) * top)]
                   for v in values)


def _finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _shrink(values: list, width: int) -> list:
    """``width`` groups of consecutive values, each its mean (None if it has none)."""
    out = []
    for i in range(width):
        group = [v for v in values[i * len(values) // width:(i + 1) * len(values) // width]
                 if v is not None]
        out.append(sum(group) / len(group) if group else None)
    return out


def monitored_series(run_dir, monitor: str) -> tuple[str, list]:
    """(column, values per epoch) of the monitored figure in a run's metrics.csv:
    ``val_<monitor>``, else ``train_<monitor>``; ("", []) when there is none."""
    path = Path(run_dir) / "metrics.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error):
        return "", []
    monitor = monitor.removeprefix("val_")
    for key in (f"val_{monitor}", f"train_{monitor}", monitor):
        if rows and key in rows[0]:
            return key, [_finite(r.get(key)) for r in rows]
    return "", []
