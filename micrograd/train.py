"""The training loop, driven from Python or by the CLI.

    from micrograd.config.loader import load_config
    from micrograd.train import train
    result = train(load_config("configs/linear_regression.yaml"))
    train(load_config("configs/linear_regression.yaml"), resume=result.run_dir)

``train`` builds data, model, loss and optimiser from a config, seeds
everything, runs the epochs, validates, and writes a run folder: the resolved
``config.yaml``, ``metrics.csv`` (one row per epoch), ``checkpoint.npz`` (the
latest saved state) and ``best.npz`` (the best validation figure). Progress
goes to an optional ``reporter`` object, so the loop itself prints nothing.

Every checkpoint holds what resuming needs (weights, optimiser and scheduler
state, the random generator, the data loader's place in its shuffled epochs,
the best-so-far bookkeeping and the metrics history), so ``resume=`` continues
a run exactly: N epochs straight and N/2 then resume give the same weights
bit for bit. The first SIGINT or SIGTERM finishes the current step, saves, and
raises :class:`TrainingInterrupted`; a NaN or infinite loss or gradient raises
:class:`TrainingDiverged` and keeps the last good checkpoints.
"""
from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

import micrograd.tensor as mt
from micrograd import metrics as M
from micrograd.build import (build_data, build_loss, build_model, build_optimizer,
                             build_scheduler, check_output)
from micrograd.checkpoint import (CheckpointError, CheckpointSaveError, atomic_write_bytes,
                                  save_checkpoint, write_failure)
from micrograd.config.loader import ConfigError, dump_yaml
from micrograd.config.schema import Config
from micrograd.data.pipeline import Pipeline
from micrograd.interrupts import deferred_signals
from micrograd.inference import evaluate, full_report
from micrograd.resume import LoopState, checkpoint_state, restore_training, resume_checkpoint
from micrograd.run import RunFolder, record_latest, restore
#: Without train.checkpoint_every, checkpoint.npz is rewritten at most this often
#: (and always after the last epoch, and on an interrupt).
AUTOSAVE_SECONDS = 30.0


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite.

    ``epoch`` and ``step`` say where, ``parameter`` names the parameter whose
    gradient went bad (None for the loss); once ``train`` has handled it,
    ``run_dir`` is the run folder and ``kept`` maps each checkpoint file left
    there to the epoch it holds.
    """

    def __init__(self, message: str, *, epoch: int, step: int, parameter: Optional[str] = None):
        super().__init__(message)
        self.epoch, self.step, self.parameter = epoch, step, parameter
        self.run_dir: Optional[Path] = None
        self.kept: dict[str, int] = {}


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM.

    ``checkpoint`` resumes it (``train(config, resume=run_dir)``); it is None
    when nothing had been saved yet. ``saved`` says whether the state at the
    moment of the interrupt was written (False after a second signal, which
    stops at once: then ``checkpoint`` is the last regular save, if any).
    """

    def __init__(self, message: str, *, run_dir: Path, checkpoint: Optional[Path], epoch: int,
                 step: int, signal_name: str, saved: bool):
        super().__init__(message)
        self.run_dir, self.checkpoint, self.epoch, self.step = run_dir, checkpoint, epoch, step
        self.signal_name, self.saved = signal_name, saved

    def __str__(self):
        return self.args[0]


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict]
    best: dict
    test_metrics: dict
    stopped_early: bool = False


@dataclass
class Run:
    """Everything built from one config."""

    config: Config
    splits: Any
    model: Any
    rows: list
    loss_fn: Any
    optimizer: Any
    scheduler: Any

    @property
    def pipeline(self) -> Pipeline:
        return self.splits.pipeline


def prepare(config: Config, splits=None) -> Run:
    """Seed, then build data, model, loss, optimiser and scheduler."""
    mt.manual_seed(config.train.seed)
    splits = splits if splits is not None else build_data(config)
    check_monitor(config, splits.pipeline.task)
    model, rows = build_model(config, splits.pipeline.input_shape)
    check_output(config, rows, splits)
    optimizer = build_optimizer(config, model.parameters())
    return Run(config, splits, model, rows, build_loss(config), optimizer,
               build_scheduler(config, optimizer))


def check_monitor(config: Config, task: str) -> None:
    """``train.monitor`` must be a figure that validation computes for this task."""
    monitor = config.train.monitor
    if monitor != "loss" and monitor not in M.VALIDATION_METRICS[task]:
        choices = ", ".join(("loss",) + M.VALIDATION_METRICS[task])
        raise ConfigError(f"train.monitor: {monitor!r} is not computed for a {task} target; "
                          f"expected one of: {choices}")


# ------------------------------------------------------------- the loop


class Reporter:
    """Receives progress; the CLI's rich bars implement it. All methods optional."""

    def start(self, run: Run, run_dir: Path, epochs: int, batches: int): ...

    def resumed(self, checkpoint: Path, epoch: int, batch: int, step: int): ...

    def batch(self, epoch: int, done: int, batches: int, loss: float, samples_per_s: float): ...

    def epoch(self, row: dict): ...

    def finish(self, result: TrainResult): ...

    def close(self):
        """Training stopped early by an exception: release the display."""


def _check_finite(loss: float, model, epoch: int, step: int):
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}, step {step}: the loss is {loss}. "
            f"Lower the learning rate or enable gradient clipping (train.clip_grad_norm).",
            epoch=epoch, step=step)
    for name, p in model.named_parameters():
        if p.grad is not None and not np.all(np.isfinite(p.grad.data)):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}, step {step}: the gradient of parameter "
                f"'{name}' holds NaN or infinite values. Lower the learning rate or enable "
                f"gradient clipping (train.clip_grad_norm).",
                epoch=epoch, step=step, parameter=name)


def train(config: Config, *, name: str = "run", reporter: Optional[Reporter] = None,
          run_dir=None, resume=None, force: bool = False) -> TrainResult:
    """Train the model a config describes; returns the run folder, history and test metrics.

    The run folder is ``run_dir``, else ``config.output.dir``, else a new
    ``runs/<name>-<time>``. It must be new or empty: one that holds an earlier
    run is refused unless ``force`` (which removes that run's files), and one
    holding other files is refused always. It is locked while the run writes.

    ``resume``: a run folder or checkpoint to continue from; training then goes
    on from the saved epoch (mid-epoch after an interrupt) in that checkpoint's
    folder, and ``run_dir`` is ignored. Raises :class:`TrainingInterrupted` on
    SIGINT/SIGTERM (after saving) and :class:`TrainingDiverged` on NaN/inf.
    """
    reporter = reporter or Reporter()
    run = prepare(config)
    cfg = config.train
    loader = mt.DataLoader(mt.TensorDataset(run.splits.x_train, run.splits.y_train),
                           batch_size=cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed)
    state, kept = LoopState(), {}
    if resume is not None:
        checkpoint = resume_checkpoint(resume)
        folder = RunFolder.resume(checkpoint.parent)
    elif run_dir or config.output.dir:
        folder = RunFolder.create(run_dir or config.output.dir, force=force)
    else:
        folder = RunFolder.auto(name)
    run_dir = folder.path
    try:
        if resume is not None:
            state = restore_training(run, loader, checkpoint)
            if state.stopped_early or state.epoch >= cfg.epochs:
                why = ("stopped early" if state.stopped_early
                       else f"trained all {state.epoch} epochs")
                raise ConfigError(f"nothing to resume: {checkpoint} {why}; to train on, raise "
                                  f"train.epochs (--set train.epochs=N) and resume again")
            kept = {checkpoint.name: state.epoch}
            if (run_dir / "best.npz").is_file() and state.best_row:
                kept.setdefault("best.npz", state.best_row["epoch"])
            folder.resumed()
        else:
            folder.start(name)
        result = _train_in(folder, run, loader, state, kept, reporter,
                           checkpoint if resume is not None else None)
    finally:
        folder.release()
    record_latest(run_dir)
    reporter.finish(result)
    return result


def _train_in(folder: RunFolder, run: Run, loader, state, kept, reporter, resumed_from):
    """The epochs, the final best.npz and the test metrics, in a claimed run folder."""
    run_dir, config = folder.path, run.config
    try:
        atomic_write_bytes(run_dir / "config.yaml", dump_yaml(config).encode("utf-8"))
        has_val = len(run.splits.y_val) > 0
        metrics_log = MetricsLog(run_dir / "metrics.csv", _metric_columns(run.pipeline, has_val),
                                 state.history)
        loop = _Loop(run, loader, run_dir, reporter, state, metrics_log, kept)
        reporter.start(run, run_dir, config.train.epochs, len(loader))
        if resumed_from is not None:
            reporter.resumed(resumed_from, state.epoch, state.batch, state.step)
        try:
            loop.execute()
        except BaseException:
            reporter.close()
            raise
        if not (run_dir / "best.npz").exists():
            loop.save(best=checkpoint_state(run, state, loader), checkpoint=None)

        test_metrics = {}
        if len(run.splits.y_test):
            best = restore(run_dir / "best.npz")
            test_metrics = full_report(best.model, run.splits.x_test, run.splits.y_test, config,
                                       run.pipeline)
    except TrainingDiverged as exc:
        folder.finish("diverged", epoch=exc.epoch, step=exc.step)
        raise
    except KeyboardInterrupt:
        folder.finish("interrupted", epoch=state.epoch, step=state.step)
        raise
    except BaseException as exc:
        folder.finish("failed", epoch=state.epoch, error=str(exc)[:500])
        raise
    result = TrainResult(run_dir, state.history, state.best_row, test_metrics,
                         state.stopped_early)
    folder.finish("finished", epoch=state.epoch, stopped_early=state.stopped_early,
                  best=state.best_row,
                  test={k: v for k, v in test_metrics.items() if isinstance(v, (int, float))})
    return result


class _Loop:
    """The epochs of one ``train`` call, with its saving, interrupt and divergence handling."""

    def __init__(self, run, loader, run_dir, reporter, state, metrics_log, kept):
        self.run, self.loader, self.run_dir, self.reporter = run, loader, run_dir, reporter
        self.state, self.metrics_log = state, metrics_log
        self.kept = kept               # checkpoint file name -> epoch it holds
        self.pending_best = None       # best state not yet written (see save)
        self.last_save = time.perf_counter()

    def save(self, checkpoint, best=None):
        """Write best.npz (when given or pending) then checkpoint.npz; best goes first so
        that checkpoint.npz never refers to a best state that is not on disk."""
        best = best or self.pending_best
        if best is not None:
            save_checkpoint(self.run_dir / "best.npz", *best)
            self.kept["best.npz"] = best[0]["epoch"]
            self.pending_best = None
        if checkpoint is not None:
            save_checkpoint(self.run_dir / "checkpoint.npz", *checkpoint)
            self.kept["checkpoint.npz"] = checkpoint[0]["epoch"]
        self.last_save = time.perf_counter()

    def execute(self):
        try:
            with deferred_signals() as caught:
                self._epochs(caught)
        except TrainingDiverged as exc:
            if self.pending_best is not None:  # a state that validated well: keep it
                try:
                    self.save(checkpoint=None)
                except CheckpointError:
                    pass
            exc.run_dir, exc.kept = self.run_dir, dict(self.kept)
            raise
        except KeyboardInterrupt as exc:
            if isinstance(exc, TrainingInterrupted):
                raise
            # A second signal: stop at once, with whatever was saved before.
            path = self.run_dir / "checkpoint.npz"
            where = (f"{path} holds epoch {self.kept[path.name]}" if path.name in self.kept
                     else "no checkpoint was saved")
            raise TrainingInterrupted(
                f"stopped at once by a second interrupt at {self._where()}; {where}",
                run_dir=self.run_dir,
                checkpoint=path if path.name in self.kept else None,
                epoch=self.state.epoch, step=self.state.step, signal_name="", saved=False,
            ) from None

    def _interrupt(self, caught, saved=False):
        """Save the state as it is now (unless just saved) and stop."""
        s = self.state
        if not saved:
            self.save(checkpoint_state(self.run, s, self.loader))
        raise TrainingInterrupted(
            f"interrupted by {caught.name} at {self._where()}; saved "
            f"{self.run_dir / 'checkpoint.npz'}", run_dir=self.run_dir,
            checkpoint=self.run_dir / "checkpoint.npz", epoch=s.epoch, step=s.step,
            signal_name=caught.name, saved=True)

    def _log(self, row: dict, saved: bool):
        """Append the epoch to metrics.csv; if that fails (a full disk), save the state
        so that nothing is lost, and stop with an error that names the file."""
        try:
            self.metrics_log.write(row)
        except CheckpointSaveError as exc:
            if not saved:
                self.save(checkpoint_state(self.run, self.state, self.loader))
            raise CheckpointSaveError(
                f"{exc}. Training stopped; {self.run_dir / 'checkpoint.npz'} holds epoch "
                f"{row['epoch']}: free some space and resume with --resume {self.run_dir} "
                f"(metrics.csv is rewritten from the checkpoint)") from exc

    def _where(self) -> str:
        s = self.state
        if s.batch:
            return f"epoch {s.epoch + 1}, batch {s.batch} of {len(self.loader)} (step {s.step})"
        return f"the end of epoch {s.epoch} (step {s.step})"

    def _epochs(self, caught):
        run, loader, s, reporter = self.run, self.loader, self.state, self.reporter
        config, cfg, splits = run.config, run.config.train, run.splits
        has_val = len(splits.y_val) > 0
        for epoch in range(s.epoch + 1, cfg.epochs + 1):
            run.model.train()
            start, seen_here = time.perf_counter(), 0
            if s.batch == 0:
                s.epoch_loss, s.epoch_seen = 0.0, 0
            for i, (xb, yb) in enumerate(loader, start=s.batch):
                run.optimizer.zero_grad()
                loss = run.loss_fn(run.model(xb), yb)
                loss.backward()
                s.step += 1
                value = loss.item()
                _check_finite(value, run.model, epoch, s.step)
                if cfg.clip_grad_norm:
                    mt.clip_grad_norm_(run.model.parameters(), cfg.clip_grad_norm)
                if cfg.clip_grad_value:
                    mt.clip_grad_value_(run.model.parameters(), cfg.clip_grad_value)
                run.optimizer.step()
                s.batch = i + 1
                s.epoch_loss += value * len(yb)
                s.epoch_seen += len(yb)
                seen_here += len(yb)
                elapsed = time.perf_counter() - start
                reporter.batch(epoch, i + 1, len(loader), s.epoch_loss / s.epoch_seen,
                               seen_here / max(elapsed, 1e-9))
                # After the last batch the loader has moved to the next epoch: let
                # this one finish, and stop at its end instead.
                if caught and s.batch < len(loader):
                    self._interrupt(caught)

            row = {"epoch": epoch, "train_loss": s.epoch_loss / max(s.epoch_seen, 1)}
            if has_val and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
                val = evaluate(run, splits.x_val, splits.y_val, config, run.pipeline,
                               run.loss_fn)
                row["val_loss"] = val.pop("loss")
                for k, v in val.items():
                    row[f"val_{k}"] = v
            row["lr"] = run.optimizer.param_groups[0]["lr"]
            row["seconds"] = round(time.perf_counter() - start, 3)
            s.history.append(row)
            s.epoch, s.batch, s.epoch_loss, s.epoch_seen = epoch, 0, 0.0, 0

            if run.scheduler is not None:
                if config.scheduler.type == "plateau":
                    if "val_loss" in row:
                        run.scheduler.step(row["val_loss"])
                else:
                    run.scheduler.step()

            key = "val_loss" if cfg.monitor == "loss" else f"val_{cfg.monitor}"
            current = row.get(key, row["train_loss"] if cfg.monitor == "loss" and not has_val
                              else None)
            snapshot = None
            if current is not None:
                if M.improved(cfg.monitor, current, s.best_value):
                    s.best_value, s.best_row, s.since_best = current, row, 0
                    snapshot = self.pending_best = checkpoint_state(run, s, loader)
                else:
                    s.since_best += 1
            s.stopped_early = bool(cfg.early_stopping_patience
                                   and s.since_best >= cfg.early_stopping_patience)
            last = s.stopped_early or epoch == cfg.epochs
            # Saving costs two fsyncs; a tiny model trains 1,000 epochs in less time
            # than that, so save on a clock (or every N epochs) and always at the end.
            due = (epoch % cfg.checkpoint_every == 0 if cfg.checkpoint_every
                   else time.perf_counter() - self.last_save >= AUTOSAVE_SECONDS)
            saved = bool(due or last or caught)
            if saved:
                self.save(snapshot or checkpoint_state(run, s, loader))
            self._log(row, saved)
            reporter.epoch(row)
            if last:
                break
            if caught:
                # A signal that came after the decision above (while saving best.npz,
                # or reporting) has not been saved for yet.
                self._interrupt(caught, saved=saved)


def _metric_columns(pipeline: Pipeline, has_val: bool) -> list[str]:
    columns = ["epoch", "train_loss"]
    if has_val:
        names = (["accuracy", "f1_macro"] if pipeline.task == "classification"
                 else ["mse", "rmse", "mae", "r2"])
        columns += ["val_loss"] + [f"val_{n}" for n in names]
    return columns + ["lr", "seconds"]


class MetricsLog:
    """metrics.csv, one row appended per epoch (empty cells where validation was skipped).

    It starts as the header and the rows of ``history`` (a resumed run's epochs so
    far, from its checkpoint: rows the killed run wrote after that are dropped).
    """

    def __init__(self, path: Path, columns: list[str], history=()):
        self.path, self.columns = path, columns
        buf = io.StringIO(newline="")
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in history:
            writer.writerow(self._cells(row))
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))

    def _cells(self, row: dict) -> list:
        return [_cell(row.get(c, "")) for c in self.columns]

    def write(self, row: dict):
        """Append one row; CheckpointSaveError names the file when that fails."""
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self._cells(row))
        except OSError as exc:
            raise CheckpointSaveError(f"could not append epoch {row.get('epoch')} to "
                                      f"{self.path}: {write_failure(exc, self.path.parent)}"
                                      ) from exc


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v
