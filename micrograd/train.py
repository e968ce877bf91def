"""Training from a config: build the objects, hand them to a Trainer, keep a run folder.

    from micrograd.config.loader import load_config
    from micrograd.train import train
    result = train(load_config("configs/linear_regression.yaml"))
    train(load_config("configs/linear_regression.yaml"), resume=result.run_dir)

``train`` builds data, model, loss, optimiser and scheduler from a config
(:func:`prepare`), seeds everything, and runs a
:class:`~micrograd.training.Trainer` with the callbacks a run folder needs
(:func:`callbacks_for`): ``best.npz`` / ``checkpoint.npz``, early stopping,
``metrics.csv``, the divergence check, and progress for an optional
``reporter``. The folder (:class:`~micrograd.run.RunFolder`) also holds the
resolved ``config.yaml`` and ``run.json``.

``resume=`` continues a run exactly: N epochs straight and N/2 then resume
give the same weights bit for bit. The first SIGINT or SIGTERM finishes the
current step, saves, and raises :class:`TrainingInterrupted`; a NaN or
infinite loss or gradient raises :class:`TrainingDiverged` and keeps the last
good checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import micrograd.tensor as mt
from micrograd import metrics as M
from micrograd.build import (build_data, build_loss, build_model, build_optimizer,
                             build_scheduler, check_output, implied_by)
from micrograd.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint
from micrograd.config.loader import ConfigError, dump_yaml, to_plain
from micrograd.config.schema import Config
from micrograd.data.pipeline import Pipeline
from micrograd.inference import evaluate, full_report
from micrograd.resume import check_resumable
from micrograd.run import RunFolder, record_latest, restore, resume_checkpoint
from micrograd.training import (Callback, CSVLogger, DivergenceCheck, EarlyStopping,
                                ModelCheckpoint, TensorBoardLogger, TensorBoardMissing, Trainer,
                                TrainingDiverged, TrainingInterrupted)
from micrograd.training.callbacks.tensorboard import require_tensorboard

__all__ = ["train", "prepare", "Run", "TrainResult", "Reporter", "TrainingDiverged",
           "TrainingInterrupted", "AUTOSAVE_SECONDS"]

#: Without train.checkpoint_every, checkpoint.npz is rewritten at most this often
#: (and always after the last epoch, and on an interrupt).
AUTOSAVE_SECONDS = 30.0


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
    model, rows = build_model(config, splits.pipeline.input_shape,
                              implied=implied_by(splits.pipeline))
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


def check_loggers(config: Config) -> None:
    """A logger's package must be installed before a run folder is made (ConfigError)."""
    if "tensorboard" in config.train.loggers:
        try:
            require_tensorboard()
        except TensorBoardMissing as exc:
            raise ConfigError(str(exc)) from None


def init_weights(model, path) -> None:
    """``train.init_from``: copy the weights of a checkpoint ``.npz`` or a ``.safetensors``
    file into ``model`` (not the optimiser's state). A missing file is a ConfigError;
    a parameter missing, extra or of another shape is a CheckpointError naming it."""
    from micrograd.checkpoint import load_weights

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"train.init_from: {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.numpy import load_file
        except ImportError:
            raise ConfigError(f"train.init_from: {path} needs the safetensors package: "
                              f"pip install 'micrograd-trainer[export]'") from None
        try:
            weights = load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    else:
        _, arrays = load_checkpoint(path)
        weights = {k.removeprefix("model/"): v for k, v in arrays.items()
                   if k.startswith("model/")}
    own = model.state_dict()
    # safetensors holds float32 (PyTorch's): cast each array to the model's own dtype
    weights = {k: (v.astype(own[k].dtype) if k in own and v.dtype.kind == own[k].dtype.kind
                   else v) for k, v in weights.items()}
    load_weights(model, weights, path)


# ------------------------------------------------------------- progress


class Reporter:
    """Receives progress; the CLI's rich bars implement it. All methods optional."""

    def start(self, run: Run, run_dir: Path, epochs: int, batches: int): ...

    def resumed(self, checkpoint: Path, epoch: int, batch: int, step: int): ...

    def batch(self, epoch: int, done: int, batches: int, loss: float, samples_per_s: float): ...

    def epoch(self, row: dict): ...

    def finish(self, result: TrainResult): ...

    def close(self):
        """Training stopped early by an exception: release the display."""


class _Progress(Callback):
    """Hands the trainer's progress to a :class:`Reporter`."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter

    def on_batch_end(self, trainer, loss):
        s = trainer.state
        self.reporter.batch(trainer.current_epoch, s.batch, len(trainer.train_loader),
                            s.epoch_loss / s.epoch_seen, trainer.samples_per_s)

    def on_epoch_end(self, trainer, row):
        self.reporter.epoch(row)

    def on_exception(self, trainer, exc):
        self.reporter.close()


# ------------------------------------------------------------- a run


def callbacks_for(run: Run, folder: Path, reporter: Optional[Reporter] = None) -> list[Callback]:
    """The callbacks of a config's run writing into ``folder``, in the order they act:
    divergence check, early stopping, checkpoints, metrics.csv, TensorBoard events
    (``train.loggers``), progress."""
    cfg = run.config.train
    pipe_meta, pipe_arrays = run.pipeline.state()
    metadata = ({"config": to_plain(run.config), "pipeline": pipe_meta},
                {f"pipeline/{k}": v for k, v in pipe_arrays.items()})
    has_val = len(run.splits.y_val) > 0
    callbacks = [
        DivergenceCheck(),
        EarlyStopping(cfg.monitor, patience=cfg.early_stopping_patience),
        ModelCheckpoint(folder, monitor=cfg.monitor, every_n_epochs=cfg.checkpoint_every,
                        every_seconds=AUTOSAVE_SECONDS, metadata=metadata),
        CSVLogger(folder / "metrics.csv", _metric_columns(run.pipeline, has_val)),
    ]
    if "tensorboard" in cfg.loggers:
        callbacks.append(TensorBoardLogger(folder / "tensorboard", dump_yaml(run.config),
                                           histogram_every=cfg.histogram_every))
    if reporter is not None:
        callbacks.append(_Progress(reporter))
    return callbacks


def trainer_for(run: Run, loader, callbacks) -> Trainer:
    """The Trainer of a config's run."""
    cfg, splits = run.config.train, run.splits
    def validate(model):
        return evaluate(model, splits.x_val, splits.y_val, run.config, run.pipeline, run.loss_fn)

    return Trainer(run.model, run.loss_fn, run.optimizer, loader, epochs=cfg.epochs,
                   scheduler=run.scheduler, validate=validate if len(splits.y_val) else None,
                   val_every=cfg.val_every,
                   clip_grad_norm=cfg.clip_grad_norm, clip_grad_value=cfg.clip_grad_value,
                   callbacks=callbacks)


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
    check_loggers(config)
    run = prepare(config)
    if config.train.init_from and resume is None:
        init_weights(run.model, config.train.init_from)
    cfg = config.train
    loader = mt.DataLoader(mt.TensorDataset(run.splits.x_train, run.splits.y_train),
                           batch_size=cfg.batch_size, shuffle=cfg.shuffle, seed=cfg.seed)
    if resume is not None:
        checkpoint = resume_checkpoint(resume)
        folder = RunFolder.resume(checkpoint.parent)
    elif run_dir or config.output.dir:
        folder = RunFolder.create(run_dir or config.output.dir, force=force)
    else:
        folder = RunFolder.auto(name)
    try:
        callbacks = callbacks_for(run, folder.path, reporter)
        trainer = trainer_for(run, loader, callbacks)
        if resume is not None:
            _resume(trainer, run, checkpoint)
            folder.resumed()
        else:
            folder.start(name)
        result = _train_in(folder, run, trainer, reporter,
                           checkpoint if resume is not None else None)
    finally:
        folder.release()
    record_latest(folder.path)
    reporter.finish(result)
    return result


def _resume(trainer: Trainer, run: Run, checkpoint: Path) -> None:
    """Put the trainer back where ``checkpoint`` left it, after checking that the config
    and the data are the ones it was trained with."""
    meta, arrays = load_checkpoint(checkpoint)
    check_resumable(run.config, run.pipeline, len(run.splits.y_train), meta, arrays, checkpoint)
    trainer.load_state_dict(meta, arrays, checkpoint)
    s = trainer.state
    if s.stopped_early or s.epoch >= run.config.train.epochs:
        why = "stopped early" if s.stopped_early else f"trained all {s.epoch} epochs"
        raise ConfigError(f"nothing to resume: {checkpoint} {why}; to train on, raise "
                          f"train.epochs (--set train.epochs=N) and resume again")
    checkpointer = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint))
    checkpointer.kept = {checkpoint.name: s.epoch}
    if (checkpoint.parent / "best.npz").is_file() and checkpointer.best_row:
        checkpointer.kept.setdefault("best.npz", checkpointer.best_row["epoch"])


def _train_in(folder: RunFolder, run: Run, trainer: Trainer, reporter: Reporter, resumed_from):
    """The epochs and the test metrics of the best state, in a claimed run folder."""
    run_dir, config, s = folder.path, run.config, trainer.state
    try:
        atomic_write_bytes(run_dir / "config.yaml", dump_yaml(config).encode("utf-8"))
        reporter.start(run, run_dir, config.train.epochs, len(trainer.train_loader))
        if resumed_from is not None:
            reporter.resumed(resumed_from, s.epoch, s.batch, s.step)
        trainer.fit()
        s = trainer.state
        test_metrics = {}
        if len(run.splits.y_test):
            best = restore(run_dir / "best.npz")
            test_metrics = full_report(best.model, run.splits.x_test, run.splits.y_test, config,
                                       run.pipeline)
    except TrainingDiverged as exc:
        folder.finish("diverged", epoch=exc.epoch, step=exc.step)
        raise
    except KeyboardInterrupt:
        folder.finish("interrupted", epoch=trainer.state.epoch, step=trainer.state.step)
        raise
    except BaseException as exc:
        folder.finish("failed", epoch=trainer.state.epoch, error=str(exc)[:500])
        raise
    best_row = next(c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)).best_row
    folder.finish("finished", epoch=s.epoch, stopped_early=s.stopped_early, best=best_row,
                  test={k: v for k, v in test_metrics.items() if isinstance(v, (int, float))})
    return TrainResult(run_dir, s.history, best_row, test_metrics, s.stopped_early)


def _metric_columns(pipeline: Pipeline, has_val: bool) -> list[str]:
    columns = ["epoch", "train_loss"]
    if has_val:
        columns += ["val_loss"] + [f"val_{n}" for n in M.VALIDATION_METRICS[pipeline.task]]
    return columns + ["lr", "seconds"]
