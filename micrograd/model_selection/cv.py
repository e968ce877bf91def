"""K-fold cross-validation of a config, each fold a normal training run.

    from micrograd.config.loader import load_config
    from micrograd.model_selection import cross_validate
    result = cross_validate(load_config("configs/house_prices.yaml"), folds=5, workers=5)
    print(result.mean["val_r2"], result.std["val_r2"], result.score)

A fold is the config with ``data.splits.folds``, ``fold`` and ``repeat`` set
(:class:`~micrograd.config.schema.SplitConfig`), trained by
:func:`micrograd.train.train` into ``<out_dir>/fold-<repeat>-<fold>``. The data
kind then splits as usual: the test split is the plain run's, the train+val
samples are cut into folds, and every fitted step (imputation, scaling,
vocabulary, outlier bounds, feature selection) sees only the fold's train
part. The folder ``out_dir`` is claimed like a run folder (``run.json``) and
gets ``cv.csv``: one row per fold, then a mean and a std row.

Folds run in worker processes (spawned; ``workers=1`` trains them one after
the other in this process). Each fold is seeded by its config alone, so the
figures are the same whatever the number of workers.
"""
from __future__ import annotations

import copy
import csv
import io
import multiprocessing
import os
import signal
import threading
import traceback
import warnings
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from micrograd.checkpoint import CheckpointError, atomic_write_bytes
from micrograd.config.loader import ConfigError, to_plain, validate
from micrograd.config.schema import Config
from micrograd.data.pipeline import DataError, PipelineError
from micrograd.metrics import GOAL
from micrograd.run import LATEST, RunFolder, RunFolderError, latest_run, record_latest
from micrograd.train import TrainingDiverged, train

__all__ = ["cross_validate", "run_cv", "fold_config", "CVResult", "FoldResult", "CVInterrupted", "CV_CSV"]

CV_CSV = "cv.csv"


@dataclass
class FoldResult:
    """One fold's run: the validation figures of its best epoch (``val_loss`` and each
    ``val_*`` the task computes) and the test figures of that best model."""

    repeat: int
    fold: int
    run_dir: Path
    epoch: int
    metrics: dict
    test: dict = field(default_factory=dict)
    stopped_early: bool = False

    @property
    def name(self) -> str:
        return f"fold-{self.repeat}-{self.fold}"


@dataclass
class CVResult:
    """Every fold's best validation figures, and their mean and standard deviation
    (sample std, ddof=1) per figure. ``monitor`` is the figure ``train.monitor``
    names (``val_r2``), ``goal`` its direction ('max' or 'min'), ``score`` its mean."""

    out_dir: Path
    folds: list
    monitor: str
    goal: str
    mean: dict
    std: dict

    @property
    def score(self) -> float:
        return self.mean[self.monitor]

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return {"out_dir": str(self.out_dir), "monitor": self.monitor, "goal": self.goal,
                "score": self.score, "mean": self.mean, "std": self.std,
                "folds": [{**asdict(f), "name": f.name, "run_dir": str(f.run_dir)}
                          for f in self.folds]}


class CVInterrupted(KeyboardInterrupt):
    """Cross-validation stopped by SIGINT/SIGTERM; the running folds saved their
    checkpoints (each resumable with ``micrograd train --resume``)."""

    def __init__(self, message: str, *, out_dir: Path, done: list):
        super().__init__(message)
        self.out_dir, self.done = out_dir, done

    def __str__(self):
        return self.args[0]


# ----------------------------------------------------------------- one fold


def fold_config(config: Config, folds: int, fold: int, repeat: int = 0) -> Config:
    """``config`` with its data split set to one fold."""
    plain = copy.deepcopy(to_plain(config))
    plain["data"]["splits"].update(folds=folds, fold=fold, repeat=repeat)
    plain["output"]["dir"] = None  # the fold's folder is given to train()
    return validate(plain, source="cross-validation fold")


def _train_fold(task: dict) -> dict:
    """Train one fold; its result and the warnings it raised, as picklable plain data."""
    config = fold_config(validate(task["config"], source="cross-validation"), task["folds"],
                         task["fold"], task["repeat"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, name=f"{task['name']}-fold-{task['repeat']}-{task['fold']}",
                       run_dir=task["run_dir"], force=task["force"])
    best = result.best or {}
    return {"result": FoldResult(
        repeat=task["repeat"], fold=task["fold"], run_dir=Path(result.run_dir),
        epoch=int(best.get("epoch", 0)),
        metrics={k: float(v) for k, v in best.items() if k.startswith("val_")},
        test={k: v for k, v in result.test_metrics.items() if isinstance(v, (int, float))},
        stopped_early=result.stopped_early),
        "warnings": [str(w.message) for w in caught]}


# Error classes a fold's failure keeps (the CLI's exit code depends on them), most
# specific first; anything else comes back as a RuntimeError.
_KEPT = (TrainingDiverged, RunFolderError, ConfigError, DataError, PipelineError, CheckpointError,
         FileNotFoundError, PermissionError, OSError, ValueError)


def _failure(exc: BaseException) -> dict:
    cls = next((c for c in _KEPT if isinstance(exc, c)), RuntimeError)
    extra = ({"epoch": exc.epoch, "step": exc.step, "parameter": exc.parameter,
              "run_dir": exc.run_dir, "kept": exc.kept} if isinstance(exc, TrainingDiverged)
             else {})
    return {"error": cls, "message": str(exc) or type(exc).__name__, "extra": extra,
            "traceback": "".join(traceback.format_exception(exc))}


def _fold_error(task: dict, record: dict) -> Exception:
    """The exception a failed fold raises here: its own class, the fold named first."""
    where = f"fold {task['fold']} of {task['folds']} (repeat {task['repeat']}, {task['run_dir']})"
    message = f"{where}: {record['message']}"
    cls, extra = record["error"], dict(record["extra"])
    if cls is TrainingDiverged:
        exc = TrainingDiverged(message, epoch=extra["epoch"], step=extra["step"],
                               parameter=extra["parameter"])
        exc.run_dir, exc.kept = extra["run_dir"], extra["kept"]
    else:
        exc = cls(message)
    exc.fold, exc.repeat = task["fold"], task["repeat"]
    return exc


def _in_worker(task: dict) -> dict:
    """A fold in a worker process: SIGINT stops it (the trainer saves first); every
    failure comes back as a record, since not every exception survives pickling."""
    if _stopping is not None and _stopping.is_set():
        return {"skipped": True}  # queued before the stop, too late to cancel
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return _train_fold(task)
    except KeyboardInterrupt as exc:
        return {"interrupted": str(exc) or "interrupted"}
    except Exception as exc:
        return _failure(exc)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_stopping = None  # in a worker: the parent's Event, set when the folds must stop


def _worker_start(stopping) -> None:
    """Workers leave the terminal's process group, so a Ctrl-C reaches only the parent,
    which hands each running fold exactly one SIGINT; idle, they ignore it."""
    global _stopping
    _stopping = stopping
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ----------------------------------------------------------------- all folds


def cross_validate(config: Config, folds: int = 5, *, repeats: int = 1, workers: int = 1,
                   out_dir=None, name: str = "run", force: bool = False,
                   on_fold: Optional[Callable[[FoldResult], None]] = None) -> CVResult:
    """Cross-validate ``config``: ``repeats`` x ``folds`` training runs, one per fold.

    Args:
        config: a validated config; its test split is kept out of every fold.
        folds: K >= 2 folds of the train+val samples; each validates once.
        repeats: R >= 1 rounds, each with other folds (seeded by data seed + r).
        workers: folds trained at once in worker processes; 1 trains them here.
        out_dir: the cross-validation folder; default ``config.output.dir``, else
            a new ``runs/<name>-cv-<time>``. Claimed as a run folder (new or
            empty, or an earlier run's with ``force``); fold r, i trains into
            ``out_dir/fold-<r>-<i>``.
        on_fold: called with each :class:`FoldResult` as its fold finishes.

    Returns:
        :class:`CVResult` (folds ordered by repeat, then fold). ``cv.csv`` in
        ``out_dir`` holds the same figures. ``runs/latest`` is left as it was.

    Raises:
        The failing fold's own error class (ConfigError, DataError,
        TrainingDiverged, ...) with the fold named first in its message and
        ``fold``/``repeat`` attributes; the other folds are stopped.
        :class:`CVInterrupted` on SIGINT/SIGTERM, after the running folds saved.
    """
    for label, value, low in (("folds", folds, 2), ("repeats", repeats, 1), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"cross-validation: {label} must be an integer >= {low}, got {value!r}")
    target = out_dir or config.output.dir
    try:
        folder = (RunFolder.create(target, force=force) if target
                  else RunFolder.auto(f"{name}-cv"))
    except RunFolderError as exc:  # a cross-validation is not resumed: only replaced
        raise RunFolderError(str(exc).replace(f"Resume it (--resume {target}), replace it",
                                              "Replace it")) from None
    plain = to_plain(config)
    tasks = [{"config": plain, "folds": folds, "fold": i, "repeat": r, "name": name,
              "run_dir": str(folder.path / f"fold-{r}-{i}"), "force": force}
             for r in range(repeats) for i in range(folds)]
    before = latest_run()
    done = _Done()
    try:
        folder.start(f"{name}-cv")
        runner = _sequential if workers == 1 or len(tasks) == 1 else _parallel
        try:
            with _sigterm_interrupts():
                runner(tasks, min(workers, len(tasks)), done, on_fold, folder.path)
        except CVInterrupted:
            folder.finish("interrupted", folds_done=sorted(done))
            raise
        except BaseException as exc:
            folder.finish("failed", folds_done=sorted(done), error=str(exc)[:500])
            raise
        results = [done[(t["repeat"], t["fold"])] for t in tasks]
        result = _summarise(folder.path, results, config.train.monitor)
        _write_csv(folder.path / CV_CSV, result)
        folder.finish("finished", folds=folds, repeats=repeats, monitor=result.monitor,
                      mean=result.mean, std=result.std)
    finally:
        folder.release()
        _put_back_latest(before, folder.path)
    return result


@contextmanager
def _sigterm_interrupts():
    """SIGTERM (a batch scheduler's stop) stops the folds as Ctrl-C does, instead of
    killing this process and leaving its workers behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: The name the tuner calls it by.
run_cv = cross_validate


def _sequential(tasks, workers, done, on_fold, out_dir):
    for task in tasks:
        try:
            record = _train_fold(task)
        except KeyboardInterrupt as exc:
            raise _interrupted(out_dir, done, [(task, str(exc))]) from None
        except Exception as exc:
            raise _fold_error(task, _failure(exc)) from exc
        _collect(task, record, done, on_fold)


def _parallel(tasks, workers, done, on_fold, out_dir):
    context = multiprocessing.get_context("spawn")
    stopping = context.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_worker_start, initargs=(stopping,))
    futures = {}
    try:
        futures = {pool.submit(_in_worker, task): task for task in tasks}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: tasks.index(futures[f])):
                task, record = futures[future], _record(future)
                if "error" in record:
                    _stop(pool, futures, stopping)
                    remote = _RemoteTraceback(record["traceback"])
                    raise _fold_error(task, record) from remote
                if "interrupted" in record:  # a signal reached the worker, not us
                    raise KeyboardInterrupt
                _collect(task, record, done, on_fold)
    except KeyboardInterrupt:
        stopped = _stop(pool, futures, stopping)
        raise _interrupted(out_dir, done, stopped) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(pool, futures, stopping) -> list:
    """Cancel the folds not started; one SIGINT to each worker makes a running fold save
    and stop. Waits for them; returns (task, why) of the folds that stopped."""
    stopping.set()  # a fold already queued to a worker returns without training
    for future in futures:
        future.cancel()
    _signal_workers(pool)
    stopped, running = [], [f for f in futures if not f.cancelled()]
    while True:
        try:
            wait(running)
            break
        except KeyboardInterrupt:  # a second Ctrl-C: the folds stop at once
            _signal_workers(pool)
    for future in running:
        record = _record(future)
        if "interrupted" in record:
            stopped.append((futures[future], record["interrupted"]))
    return stopped


def _record(future) -> dict:
    """A fold's record; a worker that died, or whose SIGINT landed outside the fold
    (the executor then hands the KeyboardInterrupt back as the future's exception, and
    result() would raise it here, in the parent), counts as interrupted."""
    try:
        return future.result()
    except BaseException as exc:  # noqa: B036 - KeyboardInterrupt is a worker's here
        return {"interrupted": str(exc) or type(exc).__name__}


def _signal_workers(pool) -> None:
    # The executor keeps its worker processes by pid; there is no public accessor.
    for pid in list(getattr(pool, "_processes", {}) or {}):
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass


class _RemoteTraceback(Exception):
    """A worker's traceback, chained under the error it raised (shown with --debug)."""

    def __str__(self):
        return "\n" + self.args[0]


def _collect(task, record, done, on_fold):
    """Keep a finished fold's result; its warnings are shown once per cross-validation
    (every fold reads the same data and would repeat them)."""
    warned = done.warned
    for message in record["warnings"]:
        if message not in warned:
            warned.add(message)
            warnings.warn(message, stacklevel=3)
    result = record["result"]
    done[(task["repeat"], task["fold"])] = result
    if on_fold is not None:
        on_fold(result)


class _Done(dict):
    """(repeat, fold) -> FoldResult, and the warnings shown so far."""

    def __init__(self):
        super().__init__()
        self.warned = set()


def _interrupted(out_dir, done, stopped) -> CVInterrupted:
    finished = ", ".join(f"fold-{r}-{i}" for r, i in sorted(done)) or "none"
    cut = ", ".join(Path(t["run_dir"]).name for t, _ in stopped) or "none"
    return CVInterrupted(f"cross-validation interrupted ({out_dir}): folds finished: "
                         f"{finished}; stopped after saving: {cut} (each resumes alone: "
                         f"micrograd train FOLD/config.yaml --resume FOLD)", out_dir=Path(out_dir),
                         done=[done[k] for k in sorted(done)])


def _summarise(out_dir: Path, results: list, monitor: str) -> CVResult:
    names = list(dict.fromkeys(k for r in results for k in r.metrics))
    mean, std = {}, {}
    for key in names:
        values = np.array([r.metrics.get(key, np.nan) for r in results], dtype=np.float64)
        mean[key] = float(values.mean())
        std[key] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return CVResult(Path(out_dir), results, f"val_{monitor}", GOAL[monitor], mean, std)


def _write_csv(path: Path, result: CVResult) -> None:
    names = list(result.mean)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["repeat", "fold", "epoch", *names, "run_dir"])
    for r in result.folds:
        writer.writerow([r.repeat, r.fold, r.epoch, *(repr(r.metrics.get(k)) for k in names),
                         r.name])
    writer.writerow(["", "mean", "", *(repr(result.mean[k]) for k in names), ""])
    writer.writerow(["", "std", "", *(repr(result.std[k]) for k in names), ""])
    atomic_write_bytes(path, out.getvalue().encode("utf-8"))


def _put_back_latest(before: Optional[Path], out_dir: Path) -> None:
    """Each fold's train() records itself as runs/latest; a cross-validation is no model
    to predict with, so the latest run goes back to what it was."""
    if before is not None:
        record_latest(before)
        return
    now = latest_run()
    if now is not None and Path(out_dir).resolve() in now.resolve().parents:
        try:
            LATEST.unlink()
        except OSError:
            pass
