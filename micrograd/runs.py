"""Listing and comparing run folders: what ``micrograd runs`` and ``runs diff`` show.

:func:`find_runs` walks a folder (``runs/`` by default) two levels deep, so the
folds of a cross-validation and the trials of a search appear beside plain
runs, and reads each run folder into a :class:`RunRecord`. Nothing here
raises on a bad folder: an unreadable ``run.json`` becomes status
``unreadable``, a folder from before run.json is read from its metrics.csv, and
a run.json that says ``running`` whose process is gone on this host becomes
``died``.

    for record in find_runs("runs"):
        print(record.name, record.status, record.monitored())
    diff = diff_runs("runs/a", "runs/b")   # config keys that differ, metrics side by side
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from micrograd.metrics import GOAL
from micrograd.run import _RUN_EVIDENCE, RUN_JSON

# The test figures a table has room for, in order of preference.
TEST_FIGURES = ("accuracy", "f1_macro", "r2", "rmse")


@dataclass
class RunRecord:
    """What one run folder says about its run; fields it cannot tell are None."""
    path: Path
    name: str
    status: str
    started: Optional[str] = None
    ended: Optional[str] = None
    epoch: Optional[int] = None
    monitor: Optional[str] = None  # train.monitor, e.g. "loss"
    best: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    config: Optional[dict] = None
    problems: list = field(default_factory=list)

    @property
    def config_path(self) -> Optional[Path]:
        path = self.path / "config.yaml"
        return path if path.is_file() else None

    def monitored(self) -> Optional[tuple[str, float]]:
        """The best epoch's monitored figure as (key, value), e.g. ("val_loss", 0.012)."""
        if not self.monitor:
            return None
        for key in (f"val_{self.monitor}", f"train_{self.monitor}", self.monitor):
            if isinstance(self.best.get(key), (int, float)):
                return key, float(self.best[key])
        return None

    def test_figures(self) -> dict:
        return {k: self.test[k] for k in TEST_FIGURES if isinstance(self.test.get(k), (int, float))}

    def to_dict(self) -> dict:
        figure = self.monitored()
        return {"path": str(self.path), "name": self.name, "status": self.status,
                "started": self.started, "ended": self.ended, "epoch": self.epoch,
                "monitor": figure[0] if figure else None,
                "best_value": figure[1] if figure else None,
                "best_epoch": self.best.get("epoch"), "best": self.best, "test": self.test,
                "config": str(self.config_path) if self.config_path else None,
                "problems": self.problems}


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in _RUN_EVIDENCE)


def find_runs(folder="runs") -> list[RunRecord]:
    """Every run folder in ``folder`` and one level below, oldest first."""
    folder = Path(folder)
    found = []
    for child in _subfolders(folder):
        if is_run_folder(child):
            found.append(child)
        found.extend(grand for grand in _subfolders(child) if is_run_folder(grand))
    records = [read_run(path) for path in found]
    return sorted(records, key=lambda r: (r.started or _mtime(r.path), str(r.path)))


def read_run(path) -> RunRecord:
    """One run folder as a record; never raises."""
    path = Path(path)
    record = RunRecord(path=path, name=path.name, status="unknown")
    record.config = _read_config(path, record.problems)
    train = (record.config or {}).get("train")
    if isinstance(train, dict) and isinstance(train.get("monitor"), str):
        record.monitor = train["monitor"].removeprefix("val_")
    else:
        record.monitor = "loss"  # the schema's default (and all an old folder can mean)
    info_path = path / RUN_JSON
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            record.status = "unreadable"
            record.problems.append(f"{RUN_JSON}: {exc}")
            _from_metrics(record)
            return record
        _from_info(record, info)
    else:
        _from_metrics(record)
    return record


def _from_info(record: RunRecord, info: dict) -> None:
    text = lambda key: info[key] if isinstance(info.get(key), str) else None  # noqa: E731
    record.name = text("name") or record.name
    record.status = text("status") or "unknown"
    record.started, record.ended = text("started"), text("ended")
    if isinstance(info.get("epoch"), int):
        record.epoch = info["epoch"]
    record.best = info["best"] if isinstance(info.get("best"), dict) else {}
    record.test = info["test"] if isinstance(info.get("test"), dict) else {}
    if record.status == "running" and isinstance(info.get("pid"), int) \
            and not _alive(info["pid"]):
        record.status = "died"
    if record.epoch is None or not record.best:
        _from_metrics(record)


def _from_metrics(record: RunRecord) -> None:
    """What an old run folder (no run.json) or a partial one tells through metrics.csv."""
    rows = _read_metrics(record.path / "metrics.csv", record.problems)
    if not rows:
        return
    if record.epoch is None and isinstance(rows[-1].get("epoch"), (int, float)):
        record.epoch = int(rows[-1]["epoch"])
    if not record.best and record.monitor:
        key = next((k for k in (f"val_{record.monitor}", f"train_{record.monitor}")
                    if any(k in r for r in rows)), None)
        scored = [r for r in rows if isinstance(r.get(key), float)]
        if key and scored:
            pick = max if GOAL.get(record.monitor) == "max" else min
            record.best = pick(scored, key=lambda r: r[key])


def _read_metrics(path: Path, problems: list) -> list[dict]:
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError, csv.Error) as exc:
        problems.append(f"metrics.csv: {exc}")
        return []
    return [{k: _number(v) for k, v in row.items() if k} for row in rows]


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in str(text) else value


def _read_config(path: Path, problems: list) -> Optional[dict]:
    file = path / "config.yaml"
    if not file.is_file():
        return None
    from micrograd.config.loader import read_yaml

    try:
        data, _ = read_yaml(file)
    except Exception as exc:  # a damaged config.yaml leaves the rest of the record readable
        problems.append(f"config.yaml: {exc}")
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OSError:
        return True
    return True


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def _mtime(path: Path) -> str:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    except OSError:
        return ""


# ------------------------------------------------------------------ diff


@dataclass
class RunDiff:
    a: RunRecord
    b: RunRecord
    config: list  # (key path, value in a, value in b) for each key that differs
    best: list    # (figure, a, b) for the best epoch's row
    test: list    # (figure, a, b) for the test metrics


ABSENT = "<absent>"


def diff_runs(a, b) -> RunDiff:
    """The config keys that differ between two run folders and their metrics side by side."""
    from micrograd.resume import _flatten

    ra, rb = read_run(a), read_run(b)
    fa, fb = (_flatten(r.config) if r.config else {} for r in (ra, rb))
    config = [(k, fa.get(k, ABSENT), fb.get(k, ABSENT)) for k in _union(fa, fb)
              if fa.get(k, ABSENT) != fb.get(k, ABSENT)]
    side = lambda x, y: [(k, x.get(k), y.get(k)) for k in _union(x, y)]  # noqa: E731
    return RunDiff(ra, rb, config, side(ra.best, rb.best), side(ra.test, rb.test))


def _union(x: dict, y: dict) -> list:
    """Keys of both, in x's order then y's new ones."""
    return list(x) + [k for k in y if k not in x]
