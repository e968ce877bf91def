"""What a checkpoint holds of a training run, and putting it back.

``checkpoint_state`` turns a run (model, optimiser, scheduler, random
generator, data loader, the loop's :class:`LoopState`) into checkpoint
metadata and arrays; ``restore_training`` puts a freshly prepared run back
exactly where a checkpoint left it (for resume; ``micrograd.run.restore``
rebuilds a model from a checkpoint alone, for eval and predict). A
checkpoint may come from anyone: whatever does not fit is a CheckpointError
that names the problem, e.g. the parameter whose shape differs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

import micrograd.tensor as mt
from micrograd.checkpoint import CheckpointError, load_checkpoint, pack_state, unpack_state
from micrograd.config.loader import ConfigError, to_plain
from micrograd.config.schema import Config
from micrograd.run import _STATE_ERRORS, load_weights

if TYPE_CHECKING:
    from micrograd.train import Run

#: Config keys that may change when a run is resumed (data paths may move: the
#: data itself is compared through its preprocessing state).
RESUMABLE_CHANGES = ("train.epochs", "train.early_stopping_patience", "train.checkpoint_every",
                     "train.val_every", "output.dir", "data.path", "data.root")


@dataclass
class LoopState:
    """Where training stands; every checkpoint holds it, so a run resumes exactly."""

    epoch: int = 0                 # epochs finished
    step: int = 0                  # optimiser steps taken
    history: list = field(default_factory=list)
    best_value: Optional[float] = None
    best_row: dict = field(default_factory=dict)
    since_best: int = 0
    stopped_early: bool = False
    batch: int = 0                 # batches of the unfinished epoch trained on
    epoch_loss: float = 0.0        # their summed loss (times batch size)
    epoch_seen: int = 0            # and their samples

    def train_state(self) -> dict:
        return {"best_value": self.best_value, "best_row": self.best_row,
                "since_best": self.since_best, "stopped_early": self.stopped_early,
                "batch": self.batch, "epoch_loss": self.epoch_loss,
                "epoch_seen": self.epoch_seen}

    @classmethod
    def from_meta(cls, meta: dict, path) -> "LoopState":
        ts = meta["train_state"]
        kinds = {"best_value": (int, float, type(None)), "best_row": dict, "since_best": int,
                 "stopped_early": bool, "batch": int, "epoch_loss": (int, float),
                 "epoch_seen": int}
        for key, kind in kinds.items():
            value = ts.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise CheckpointError(f"{path}: training state {key!r} is {value!r}")
        if len(meta["history"]) != meta["epoch"]:
            raise CheckpointError(f"{path}: the metrics history holds {len(meta['history'])} "
                                  f"epochs, the checkpoint says {meta['epoch']}")
        return cls(meta["epoch"], meta["step"], meta["history"],
                   **{k: ts[k] for k in kinds})


def checkpoint_state(run: Run, state: LoopState, loader=None) -> tuple[dict, dict]:
    """(metadata, arrays) of the run as it stands, ready for ``save_checkpoint``."""
    arrays = {f"model/{k}": v for k, v in run.model.state_dict().items()}
    pipe_meta, pipe_arrays = run.pipeline.state()
    arrays.update({f"pipeline/{k}": v for k, v in pipe_arrays.items()})
    meta = {
        "config": to_plain(run.config),
        "pipeline": pipe_meta,
        "epoch": state.epoch,
        "step": state.step,
        "rng_state": pack_state(mt.get_rng_state(), arrays, "state/"),
        "optimizer": pack_state(run.optimizer.state_dict(), arrays, "state/"),
        "scheduler": pack_state(run.scheduler.state_dict(), arrays, "state/")
        if run.scheduler is not None else None,
        "loader": loader.state_dict() if loader is not None else None,
        "train_state": {**state.train_state(), "n_train": len(run.splits.y_train)},
        "history": list(state.history),  # a snapshot: the run's list grows on
    }
    return meta, arrays


# ------------------------------------------------------------- resuming


def resume_checkpoint(path) -> Path:
    """The checkpoint ``--resume`` means: a file, or a run folder's checkpoint.npz."""
    path = Path(path)
    if path.is_dir():
        if not (path / "checkpoint.npz").is_file():
            raise CheckpointError(f"{path} holds no checkpoint.npz to resume from (a run saves "
                                  f"one every train.checkpoint_every epochs or 30 s, at its "
                                  f"end and on Ctrl-C)")
        return path / "checkpoint.npz"
    if not path.exists():
        raise CheckpointError(f"cannot resume: {path} does not exist (expected a run folder or "
                              f"a checkpoint .npz)")
    return path


def _flatten(data, prefix="") -> dict:
    if isinstance(data, dict):
        out = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    if isinstance(data, list):
        out = {}
        for i, v in enumerate(data):
            out.update(_flatten(v, f"{prefix}{i}."))
        return out or {prefix[:-1]: []}
    return {prefix[:-1]: data}


def _check_same_config(config: Config, stored: dict, path) -> None:
    now, then = _flatten(to_plain(config)), _flatten(stored)
    differ = [k for k in sorted(set(now) | set(then))
              if now.get(k, "<absent>") != then.get(k, "<absent>")
              and not k.startswith(RESUMABLE_CHANGES)]
    if differ:
        details = "; ".join(f"{k} is {now.get(k, '<absent>')!r} here, "
                            f"{then.get(k, '<absent>')!r} in the checkpoint" for k in differ[:4])
        more = f" (and {len(differ) - 4} more)" if len(differ) > 4 else ""
        raise ConfigError(
            f"cannot resume from {path}: the config differs from the one it was trained with: "
            f"{details}{more}. Resume with the same config (only "
            f"{', '.join(RESUMABLE_CHANGES[:4])} may change), or start a new run.")


def _check_same_data(run: Run, meta: dict, arrays: dict, path) -> None:
    pipe_meta, pipe_arrays = run.pipeline.state()
    same = json.loads(json.dumps(pipe_meta)) == meta["pipeline"]
    stored = {k[len("pipeline/"):]: v for k, v in arrays.items() if k.startswith("pipeline/")}
    same = same and set(stored) == set(pipe_arrays) and all(
        stored[k].shape == np.shape(v) and np.array_equal(stored[k], v, equal_nan=True)
        for k, v in pipe_arrays.items())
    n_train = meta["train_state"].get("n_train")
    if not same or n_train != len(run.splits.y_train):
        raise CheckpointError(
            f"cannot resume from {path}: the data differs from the data it was trained on "
            f"({len(run.splits.y_train)} training samples now, {n_train} then, preprocessing "
            f"{'the same' if same else 'different'}); resuming needs the same data")


def restore_training(run: Run, loader, path) -> LoopState:
    """Put a freshly prepared run back where the checkpoint at ``path`` left it."""
    meta, arrays = load_checkpoint(path)
    needed = ("train_state", "loader", "optimizer", "rng_state")
    if any(meta.get(k) is None for k in needed):
        raise CheckpointError(f"{path}: this checkpoint holds a model but not the training "
                              f"state needed to resume it")
    _check_same_config(run.config, meta["config"], path)
    _check_same_data(run, meta, arrays, path)
    state = LoopState.from_meta(meta, path)
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    load_weights(run.model, weights, path)
    try:
        run.optimizer.load_state_dict(unpack_state(meta["optimizer"], arrays))
        _check_optimizer_state(run, path)
        if run.scheduler is not None:
            saved = unpack_state(meta["scheduler"], arrays)
            if not isinstance(saved, dict) or set(saved) != set(run.scheduler.state_dict()):
                raise CheckpointError(f"{path}: the scheduler state does not fit "
                                      f"{type(run.scheduler).__name__}")
            run.scheduler.load_state_dict(saved)
        mt.set_rng_state(unpack_state(meta["rng_state"], arrays))
        loader.load_state_dict(meta["loader"])
    except CheckpointError:
        raise
    except _STATE_ERRORS as exc:
        raise CheckpointError(f"{path}: cannot resume from it ({type(exc).__name__}: "
                              f"{exc})") from None
    if state.batch != loader.state_dict()["batch"]:
        raise CheckpointError(f"{path}: the data loader and the training state disagree on "
                              f"the batch reached")
    return state


def _check_optimizer_state(run: Run, path) -> None:
    """Moments of the parameters' shapes, numbers for the hyper-parameters."""
    names = {id(p): n for n, p in run.model.named_parameters()}
    for p, s in run.optimizer.state.items():
        for key, value in s.items():
            ok = (value.shape in (p.shape, ()) if isinstance(value, np.ndarray)
                  else isinstance(value, (int, float)))
            if not ok:
                raise CheckpointError(f"{path}: optimiser state {key!r} of parameter "
                                      f"{names.get(id(p), '?')!r} does not fit it")
    for group in run.optimizer.param_groups:
        for key, value in group.items():
            values = value if isinstance(value, (list, tuple)) and key != "params" else [value]
            if key != "params" and not all(isinstance(v, (int, float, type(None)))
                                           for v in values):
                raise CheckpointError(f"{path}: optimiser setting {key!r} is {value!r}")
