"""The training loop: any model, loss, optimiser and data loader; behaviour in callbacks.

    trainer = Trainer(model, loss_fn, optimizer, loader, epochs=10,
                      validate=lambda model: {"loss": ..., "accuracy": ...},
                      callbacks=[EarlyStopping("loss", patience=3),
                                 ModelCheckpoint("runs/mine", monitor="loss"),
                                 CSVLogger("runs/mine/metrics.csv")])
    state = trainer.fit()

The loop itself only trains: for each batch zero_grad, forward, loss,
backward, clip, step; after each epoch it validates, steps the scheduler and
hands the epoch's row to the callbacks, which decide everything else - saving
(:class:`ModelCheckpoint`), stopping (:class:`EarlyStopping`), logging
(:class:`CSVLogger`), refusing NaN (:class:`DivergenceCheck`).

The first SIGINT or SIGTERM finishes the current step; the callbacks save
(``on_interrupt``) and :class:`TrainingInterrupted` is raised. A second one
stops at once. ``state_dict()`` / ``load_state_dict()`` hold everything a run
needs to continue bit for bit: weights, optimiser and scheduler state, the
random generator, the loader's place in its shuffled epoch, the loop's counters,
the metrics history and every callback's state.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

import micrograd.tensor as mt
from micrograd.checkpoint import (STATE_ERRORS, CheckpointError, load_weights, pack_state,
                                  unpack_state)
from micrograd.interrupts import deferred_signals
from micrograd.optim.lr_scheduler import ReduceLROnPlateau

from .callback import Callback
from .exceptions import TrainingInterrupted



@dataclass
class TrainState:
    """Where training stands."""

    epoch: int = 0              # epochs finished
    step: int = 0               # optimiser steps taken
    batch: int = 0              # batches of the unfinished epoch trained on
    epoch_loss: float = 0.0     # their summed loss (times batch size)
    epoch_seen: int = 0         # and their samples
    stopped_early: bool = False
    history: list = field(default_factory=list)


class Trainer:
    """Trains ``model`` on ``train_loader`` for ``epochs``; callbacks add the rest.

    Args:
        model, loss_fn, optimizer: a Module, a loss ``loss_fn(output, target)``
            and an optimiser over the model's parameters.
        train_loader: a :class:`~micrograd.data.DataLoader` (its ``state_dict``
            makes mid-epoch resume exact).
        epochs: the epoch to stop after (a resumed run counts from its own).
        scheduler: stepped once per epoch; ``ReduceLROnPlateau`` with the
            validation loss.
        validate: ``validate(model) -> {"loss": ..., metric: ...}`` on held-out
            data, called every ``val_every`` epochs and after the last; its
            figures enter the epoch's row as ``val_<name>``.
        clip_grad_norm, clip_grad_value: gradient clipping before each step.
        callbacks: :class:`Callback` objects, called in this order.

    Each epoch's row: ``epoch``, ``train_loss``, ``val_*``, ``lr``, ``seconds``.
    """

    def __init__(self, model, loss_fn, optimizer, train_loader, *, epochs: int,
                 scheduler=None, validate: Optional[Callable[..., dict]] = None,
                 val_every: int = 1, clip_grad_norm: Optional[float] = None,
                 clip_grad_value: Optional[float] = None, callbacks: Sequence[Callback] = ()):
        if epochs < 1 or val_every < 1:
            raise ValueError(f"epochs and val_every must be at least 1, got {epochs}, {val_every}")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_loader, self.scheduler, self.validate = train_loader, scheduler, validate
        self.epochs, self.val_every = epochs, val_every
        self.clip_grad_norm, self.clip_grad_value = clip_grad_norm, clip_grad_value
        self.callbacks = list(callbacks)
        keys = [c.key for c in self.callbacks]
        if len(keys) != len(set(keys)):
            raise ValueError(f"two callbacks share a state_key: {keys}")
        self.state = TrainState()
        self.should_stop = False       # a callback ends training after this epoch
        self.at_epoch_end = False      # in the epoch-end hooks: the state is whole
        self.interrupt_pending = None  # the signal caught, while fit() runs
        self.samples_per_s = 0.0       # of the current epoch so far

    # ------------------------------------------------------------ properties

    @property
    def current_epoch(self) -> int:
        """The epoch being trained, 1-based (in the batch hooks)."""
        return self.state.epoch + 1

    @property
    def has_validation(self) -> bool:
        return self.validate is not None

    @property
    def is_last_epoch(self) -> bool:
        """Whether the epoch just finished is the last one (at ``on_epoch_end``)."""
        return self.should_stop or self.state.epoch >= self.epochs

    # ------------------------------------------------------------ the loop

    def fit(self) -> TrainState:
        """Train to ``epochs`` (or until a callback stops it); returns the state."""
        self._call("on_fit_start")
        try:
            with deferred_signals() as caught:
                self.interrupt_pending = caught
                self._epochs(caught)
        except BaseException as exc:
            first = exc
            if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, TrainingInterrupted):
                first = self._stopped_at_once()  # a second signal
            raised = first
            for callback in self.callbacks:
                raised = callback.on_exception(self, raised) or raised
            if raised is exc:
                raise
            if raised is first:
                raise first from None
            raise raised from exc
        finally:
            self.interrupt_pending = None
        self.at_epoch_end = False
        self._call("on_fit_end")
        return self.state

    def _epochs(self, caught):
        s, loader = self.state, self.train_loader
        for epoch in range(s.epoch + 1, self.epochs + 1):
            self.at_epoch_end = False
            self.model.train()
            start, seen_here = time.perf_counter(), 0
            if s.batch == 0:
                s.epoch_loss, s.epoch_seen = 0.0, 0
            for i, (xb, yb) in enumerate(loader, start=s.batch):
                self.optimizer.zero_grad()
                loss = self.loss_fn(self.model(xb), yb)
                loss.backward()
                s.step += 1
                value = loss.item()
                self._call("on_after_backward", value)
                if self.clip_grad_norm:
                    mt.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
                if self.clip_grad_value:
                    mt.clip_grad_value_(self.model.parameters(), self.clip_grad_value)
                self.optimizer.step()
                s.batch = i + 1
                s.epoch_loss += value * len(yb)
                s.epoch_seen += len(yb)
                seen_here += len(yb)
                self.samples_per_s = seen_here / max(time.perf_counter() - start, 1e-9)
                self._call("on_batch_end", value)
                # After the last batch the loader has moved to the next epoch: let
                # this one finish, and stop at its end instead.
                if caught and s.batch < len(loader):
                    self._interrupt(caught)

            row = {"epoch": epoch, "train_loss": s.epoch_loss / max(s.epoch_seen, 1)}
            if self.validate is not None and (epoch % self.val_every == 0
                                              or epoch == self.epochs):
                figures = dict(self.validate(self.model))
                row["val_loss"] = figures.pop("loss")
                row.update({f"val_{k}": v for k, v in figures.items()})
            row["lr"] = self.optimizer.param_groups[0]["lr"]
            row["seconds"] = round(time.perf_counter() - start, 3)
            s.history.append(row)
            s.epoch, s.batch, s.epoch_loss, s.epoch_seen = epoch, 0, 0.0, 0
            if self.scheduler is not None:
                if isinstance(self.scheduler, ReduceLROnPlateau):
                    if "val_loss" in row:
                        self.scheduler.step(row["val_loss"])
                else:
                    self.scheduler.step()
            self.at_epoch_end = True
            self._call("on_epoch_end", row)
            s.stopped_early = self.should_stop
            if self.is_last_epoch:
                break
            if caught:
                # A signal that came during the epoch-end hooks (while saving, or
                # reporting): save for it now.
                self._interrupt(caught)

    def _call(self, hook: str, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    # ------------------------------------------------------------ interrupts

    def _where(self) -> str:
        s = self.state
        if s.batch:
            return (f"epoch {s.epoch + 1}, batch {s.batch} of {len(self.train_loader)} "
                    f"(step {s.step})")
        return f"the end of epoch {s.epoch} (step {s.step})"

    def _interrupt(self, caught):
        """The state is consistent: let the callbacks save, then stop."""
        saved = [c.on_interrupt(self) for c in self.callbacks]
        path = next((p for p in saved if p is not None), None)
        s = self.state
        raise TrainingInterrupted(
            f"interrupted by {caught.name} at {self._where()}; "
            + (f"saved {path}" if path is not None else "nothing was saved (no checkpoint "
               "callback)"),
            run_dir=getattr(path, "parent", None), checkpoint=path, epoch=s.epoch, step=s.step,
            signal_name=caught.name, saved=path is not None)

    def _stopped_at_once(self) -> TrainingInterrupted:
        """A second signal: stop with whatever the callbacks saved before."""
        kept = [c.last_saved() for c in self.callbacks if hasattr(c, "last_saved")]
        path, epoch = next(((p, e) for p, e in kept if p is not None), (None, None))
        where = (f"{path} holds epoch {epoch}" if path is not None
                 else "no checkpoint was saved")
        return TrainingInterrupted(
            f"stopped at once by a second interrupt at {self._where()}; {where}",
            run_dir=getattr(path, "parent", None), checkpoint=path, epoch=self.state.epoch,
            step=self.state.step, signal_name="", saved=False)

    # ------------------------------------------------------------ state

    def state_dict(self) -> tuple[dict, dict]:
        """(metadata, arrays) of everything resuming needs, for ``save_checkpoint``."""
        s = self.state
        arrays = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        meta = {
            "epoch": s.epoch,
            "step": s.step,
            "rng_state": pack_state(mt.get_rng_state(), arrays, "state/"),
            "optimizer": pack_state(self.optimizer.state_dict(), arrays, "state/"),
            "scheduler": (pack_state(self.scheduler.state_dict(), arrays, "state/")
                          if self.scheduler is not None else None),
            "loader": self.train_loader.state_dict(),
            "train_state": {
                "batch": s.batch, "epoch_loss": s.epoch_loss, "epoch_seen": s.epoch_seen,
                # (at the epoch end, the callbacks' decision for this epoch)
                "stopped_early": self.should_stop,
                "n_train": len(self.train_loader.dataset),
                "callbacks": {c.key: c.state_dict() for c in self.callbacks},
            },
            "history": list(s.history),  # a snapshot: the run's list grows on
        }
        return meta, arrays

    def load_state_dict(self, meta: dict, arrays: dict, where="checkpoint") -> None:
        """Put the run back where a checkpoint (``load_checkpoint``'s meta, arrays) left it.

        Anything that does not fit is a CheckpointError naming ``where``.
        """
        needed = ("train_state", "loader", "optimizer", "rng_state")
        if any(meta.get(k) is None for k in needed):
            raise CheckpointError(f"{where}: this checkpoint holds a model but not the training "
                                  f"state needed to resume it")
        ts = meta["train_state"]
        kinds = {"batch": int, "epoch_loss": (int, float), "epoch_seen": int,
                 "stopped_early": bool}
        for key, kind in kinds.items():
            value = ts.get(key)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise CheckpointError(f"{where}: training state {key!r} is {value!r}")
        if len(meta["history"]) != meta["epoch"]:
            raise CheckpointError(f"{where}: the metrics history holds {len(meta['history'])} "
                                  f"epochs, the checkpoint says {meta['epoch']}")
        weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
        load_weights(self.model, weights, where)
        try:
            self.optimizer.load_state_dict(unpack_state(meta["optimizer"], arrays))
            _check_optimizer_state(self.model, self.optimizer, where)
            if self.scheduler is not None:
                saved = unpack_state(meta["scheduler"], arrays)
                if not isinstance(saved, dict) or set(saved) != set(self.scheduler.state_dict()):
                    raise CheckpointError(f"{where}: the scheduler state does not fit "
                                          f"{type(self.scheduler).__name__}")
                self.scheduler.load_state_dict(saved)
            mt.set_rng_state(unpack_state(meta["rng_state"], arrays))
            self.train_loader.load_state_dict(meta["loader"])
        except CheckpointError:
            raise
        except STATE_ERRORS as exc:
            raise CheckpointError(f"{where}: cannot resume from it ({type(exc).__name__}: "
                                  f"{exc})") from None
        # Format 1 kept the callbacks' figures flat in train_state; each takes its keys.
        states = ts.get("callbacks")
        if not isinstance(states, dict):
            states = {c.key: ts for c in self.callbacks}
        for callback in self.callbacks:
            try:
                callback.load_state_dict(states.get(callback.key) or {})
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: {exc}") from None
        if ts["batch"] != self.train_loader.state_dict()["batch"]:
            raise CheckpointError(f"{where}: the data loader and the training state disagree on "
                                  f"the batch reached")
        self.state = TrainState(meta["epoch"], meta["step"], ts["batch"], ts["epoch_loss"],
                                ts["epoch_seen"], ts["stopped_early"], list(meta["history"]))
        self.should_stop = ts["stopped_early"]


def _check_optimizer_state(model, optimizer, where) -> None:
    """Moments of the parameters' shapes, numbers for the hyper-parameters."""
    names = {id(p): n for n, p in model.named_parameters()}
    for p, s in optimizer.state.items():
        for key, value in s.items():
            ok = (value.shape in (p.shape, ()) if isinstance(value, np.ndarray)
                  else isinstance(value, (int, float)))
            if not ok:
                raise CheckpointError(f"{where}: optimiser state {key!r} of parameter "
                                      f"{names.get(id(p), '?')!r} does not fit it")
    for group in optimizer.param_groups:
        for key, value in group.items():
            values = value if isinstance(value, (list, tuple)) and key != "params" else [value]
            if key != "params" and not all(isinstance(v, (int, float, type(None)))
                                           for v in values):
                raise CheckpointError(f"{where}: optimiser setting {key!r} is {value!r}")
