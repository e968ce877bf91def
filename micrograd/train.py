"""The training loop, driven from Python or by the CLI.

    from micrograd.config.loader import load_config
    from micrograd.train import train
    result = train(load_config("configs/linear_regression.yaml"))

``train`` builds data, model, loss and optimiser from a config, seeds
everything, runs the epochs, validates, and writes a run folder: the resolved
``config.yaml``, ``metrics.csv`` (one row per epoch), ``checkpoint.npz`` (the
latest epoch) and ``best.npz`` (the best validation figure). Progress goes to
an optional ``reporter`` object, so the loop itself prints nothing.
"""
from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import numpy as np

import micrograd.tensor as mt
from micrograd import metrics as M
from micrograd.build import (build_data, build_loss, build_model, build_optimizer,
                             build_scheduler, check_output)
from micrograd.checkpoint import load_checkpoint, pack_state, save_checkpoint, unpack_state
from micrograd.config.loader import dump_yaml, to_plain, validate
from micrograd.config.schema import Config
from micrograd.data.pipeline import Pipeline, pipeline_from_state

LATEST = Path("runs") / "latest"
#: Without train.checkpoint_every, checkpoint.npz is rewritten at most this often
#: (and always after the last epoch).
AUTOSAVE_SECONDS = 30.0


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


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
    model, rows = build_model(config, splits.pipeline.input_shape)
    check_output(config, rows, splits)
    optimizer = build_optimizer(config, model.parameters())
    return Run(config, splits, model, rows, build_loss(config), optimizer,
               build_scheduler(config, optimizer))


# ------------------------------------------------------------- evaluation


def predict_outputs(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Model outputs for an array of inputs, in batches, without a graph."""
    model.eval()
    outs = []
    with mt.no_grad():
        for i in range(0, len(x), batch_size):
            outs.append(model(mt.from_numpy(x[i:i + batch_size])).data)
    return np.concatenate(outs) if outs else np.empty((0,))


def class_probabilities(outputs: np.ndarray, config: Config) -> np.ndarray:
    """(N, C) probabilities from the model's outputs, whatever the last layer and loss."""
    last = config.model.layers[-1].type
    if outputs.shape[1] == 1:
        p1 = outputs[:, 0]
        if last != "sigmoid" and config.loss.type != "bce" and config.loss.type != "cross_entropy":
            p1 = 1 / (1 + np.exp(-p1))  # a logit (bce_with_logits)
        elif last != "sigmoid" and config.loss.type == "cross_entropy" and (
            p1.min(initial=0) < 0 or p1.max(initial=1) > 1
        ):
            p1 = 1 / (1 + np.exp(-p1))
        return np.stack([1 - p1, p1], axis=1)
    if last == "softmax":
        return outputs
    if last == "log_softmax":
        return np.exp(outputs)
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def evaluate(run_or_model, x, y, config: Config, pipeline: Pipeline, loss_fn=None) -> dict:
    """Loss and task metrics of the model on (x, y); regression in original units."""
    model = getattr(run_or_model, "model", run_or_model)
    if len(x) == 0:
        return {}
    outputs = predict_outputs(model, x)
    result = {}
    if loss_fn is not None:
        with mt.no_grad():
            result["loss"] = float(loss_fn(mt.from_numpy(outputs), mt.from_numpy(y)).item())
    if pipeline.task == "classification":
        pred = class_probabilities(outputs, config).argmax(axis=1)
        n = len(pipeline.class_names or []) or None
        result["accuracy"] = M.accuracy(y, pred)
        result["f1_macro"] = M.f1(y, pred, average="macro", num_classes=n)
    else:
        true = pipeline.inverse_target(np.asarray(y, dtype=np.float64).reshape(-1))
        pred = pipeline.inverse_target(outputs.reshape(-1).astype(np.float64))
        result.update(M.regression_report(true, pred))
    return result


def full_report(model, x, y, config: Config, pipeline: Pipeline) -> dict:
    """Every metric for ``eval``: a flat, JSON-able dict."""
    outputs = predict_outputs(model, x)
    if pipeline.task == "classification":
        pred = class_probabilities(outputs, config).argmax(axis=1)
        return M.classification_report(y, pred, class_names=pipeline.class_names)
    true = pipeline.inverse_target(np.asarray(y, dtype=np.float64).reshape(-1))
    pred = pipeline.inverse_target(outputs.reshape(-1).astype(np.float64))
    return M.regression_report(true, pred)


# ------------------------------------------------------------- checkpoints


def checkpoint_state(run: Run, epoch: int, step: int, history: list[dict]) -> tuple[dict, dict]:
    arrays = {f"model/{k}": v for k, v in run.model.state_dict().items()}
    pipe_meta, pipe_arrays = run.pipeline.state()
    arrays.update({f"pipeline/{k}": v for k, v in pipe_arrays.items()})
    optim_state = pack_state(run.optimizer.state_dict(), arrays, "state/")
    meta = {
        "config": to_plain(run.config),
        "pipeline": pipe_meta,
        "epoch": epoch,
        "step": step,
        "rng_state": pack_state(mt.get_rng_state(), arrays, "state/"),
        "optimizer": optim_state,
        "scheduler": pack_state(run.scheduler.state_dict(), arrays, "state/")
        if run.scheduler is not None else None,
        "history": history,
    }
    return meta, arrays


@dataclass
class Restored:
    config: Config
    pipeline: Pipeline
    model: Any
    rows: list
    meta: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)


def restore(path) -> Restored:
    """Model, config and preprocessing from a checkpoint file alone."""
    from micrograd.checkpoint import CheckpointError

    meta, arrays = load_checkpoint(path)
    try:
        config = validate(meta["config"], source=f"{path} (stored config)")
        pipe_arrays = {k[len("pipeline/"):]: v for k, v in arrays.items()
                       if k.startswith("pipeline/")}
        pipeline = pipeline_from_state(meta["pipeline"], pipe_arrays)
        model, rows = build_model(config, pipeline.input_shape)
        weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        model.load_state_dict(weights)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not describe a usable model ({exc})") from None
    model.eval()
    return Restored(config, pipeline, model, rows, meta, arrays)


# ------------------------------------------------------------- the loop


class Reporter:
    """Receives progress; the CLI's rich bars implement it. All methods optional."""

    def start(self, run: Run, run_dir: Path, epochs: int, batches: int): ...

    def batch(self, epoch: int, done: int, batches: int, loss: float, samples_per_s: float): ...

    def epoch(self, row: dict): ...

    def finish(self, result: TrainResult): ...


def _new_run_dir(config: Config, name: str) -> Path:
    if config.output.dir:
        return Path(config.output.dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{name}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = Path(f"{base}-{n}")
    return path


def _improved(monitor: str, value: float, best: Optional[float]) -> bool:
    if best is None:
        return True
    return value < best if monitor == "loss" else value > best


def _check_finite(loss: float, model, epoch: int, step: int):
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"training diverged at epoch {epoch}, step {step}: the loss is {loss}. "
            f"Lower the learning rate or enable gradient clipping (train.clip_grad_norm)."
        )
    for name, p in model.named_parameters():
        if p.grad is not None and not np.all(np.isfinite(p.grad.data)):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}, step {step}: the gradient of parameter "
                f"'{name}' holds NaN or infinite values. Lower the learning rate or enable "
                f"gradient clipping (train.clip_grad_norm)."
            )


def train(config: Config, *, name: str = "run", reporter: Optional[Reporter] = None,
          run_dir=None) -> TrainResult:
    """Train the model a config describes; returns the run folder, history and test metrics."""
    reporter = reporter or Reporter()
    run = prepare(config)
    cfg = config.train
    splits = run.splits
    run_dir = Path(run_dir) if run_dir else _new_run_dir(config, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")

    loader = mt.DataLoader(mt.TensorDataset(splits.x_train, splits.y_train),
                           batch_size=cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed)
    has_val = len(splits.y_val) > 0
    history, best_value, best_row, since_best, step = [], None, {}, 0, 0
    stopped_early, pending_best, last_save = False, None, time.perf_counter()
    metrics_log = MetricsLog(run_dir / "metrics.csv", _metric_columns(run.pipeline, has_val))
    reporter.start(run, run_dir, cfg.epochs, len(loader))

    for epoch in range(1, cfg.epochs + 1):
        run.model.train()
        start, total, seen = time.perf_counter(), 0.0, 0
        for i, (xb, yb) in enumerate(loader):
            run.optimizer.zero_grad()
            loss = run.loss_fn(run.model(xb), yb)
            loss.backward()
            step += 1
            value = loss.item()
            _check_finite(value, run.model, epoch, step)
            if cfg.clip_grad_norm:
                mt.clip_grad_norm_(run.model.parameters(), cfg.clip_grad_norm)
            if cfg.clip_grad_value:
                mt.clip_grad_value_(run.model.parameters(), cfg.clip_grad_value)
            run.optimizer.step()
            total += value * len(yb)
            seen += len(yb)
            elapsed = time.perf_counter() - start
            reporter.batch(epoch, i + 1, len(loader), total / seen, seen / max(elapsed, 1e-9))

        row = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        validate_now = has_val and (epoch % cfg.val_every == 0 or epoch == cfg.epochs)
        if validate_now:
            val = evaluate(run, splits.x_val, splits.y_val, config, run.pipeline, run.loss_fn)
            row["val_loss"] = val.pop("loss")
            for k, v in val.items():
                row[f"val_{k}"] = v
        row["lr"] = run.optimizer.param_groups[0]["lr"]
        row["seconds"] = round(time.perf_counter() - start, 3)
        history.append(row)

        if run.scheduler is not None:
            if config.scheduler.type == "plateau":
                if "val_loss" in row:
                    run.scheduler.step(row["val_loss"])
            else:
                run.scheduler.step()

        metrics_log.write(row)

        key = "val_loss" if cfg.monitor == "loss" else f"val_{cfg.monitor}"
        current = row.get(key, row["train_loss"] if cfg.monitor == "loss" and not has_val else None)
        meta_arrays = None
        if current is not None:
            if _improved(cfg.monitor, current, best_value):
                best_value, best_row, since_best = current, row, 0
                meta_arrays = checkpoint_state(run, epoch, step, history)
                pending_best = meta_arrays
            else:
                since_best += 1
        stop = bool(cfg.early_stopping_patience and since_best >= cfg.early_stopping_patience)
        # Saving costs two fsyncs; a tiny model trains 1,000 epochs in less time
        # than that, so save on a clock (or every N epochs) and always at the end.
        due = (epoch % cfg.checkpoint_every == 0 if cfg.checkpoint_every
               else time.perf_counter() - last_save >= AUTOSAVE_SECONDS)
        if due or stop or epoch == cfg.epochs:
            meta_arrays = meta_arrays or checkpoint_state(run, epoch, step, history)
            save_checkpoint(run_dir / "checkpoint.npz", *meta_arrays)
            if pending_best is not None:
                save_checkpoint(run_dir / "best.npz", *pending_best)
                pending_best = None
            last_save = time.perf_counter()
        reporter.epoch(row)
        if stop:
            stopped_early = True
            break

    if not (run_dir / "best.npz").exists():
        save_checkpoint(run_dir / "best.npz", *checkpoint_state(run, epoch, step, history))

    test_metrics = {}
    if len(splits.y_test):
        best = restore(run_dir / "best.npz")
        test_metrics = full_report(best.model, splits.x_test, splits.y_test, config,
                                   run.pipeline)
    record_latest(run_dir)
    result = TrainResult(run_dir, history, best_row, test_metrics, stopped_early)
    reporter.finish(result)
    return result


def _metric_columns(pipeline: Pipeline, has_val: bool) -> list[str]:
    columns = ["epoch", "train_loss"]
    if has_val:
        names = (["accuracy", "f1_macro"] if pipeline.task == "classification"
                 else ["mse", "rmse", "mae", "r2"])
        columns += ["val_loss"] + [f"val_{n}" for n in names]
    return columns + ["lr", "seconds"]


class MetricsLog:
    """metrics.csv, one row appended per epoch (empty cells where validation was skipped)."""

    def __init__(self, path: Path, columns: list[str], append: bool = False):
        self.path, self.columns = path, columns
        if not append:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(columns)

    def write(self, row: dict):
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([_cell(row.get(c, "")) for c in self.columns])


def _cell(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def record_latest(run_dir: Path) -> None:
    """Remember the run so that `eval` and `predict` without a path use it."""
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    LATEST.write_text(str(Path(run_dir).resolve()) + "\n", encoding="utf-8")


def latest_checkpoint() -> Optional[Path]:
    if not LATEST.is_file():
        return None
    run_dir = Path(LATEST.read_text(encoding="utf-8").strip())
    for name in ("best.npz", "checkpoint.npz"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None
