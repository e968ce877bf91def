"""ModelCheckpoint: best.npz (the best monitored figure) and checkpoint.npz (the latest state)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from micrograd.checkpoint import CheckpointError, CheckpointSaveError, save_checkpoint
from micrograd.metrics import GOAL, improved

from ..callback import Callback
from ..exceptions import TrainingDiverged
from .early_stopping import monitored


class ModelCheckpoint(Callback):
    """Keeps a run's checkpoints in ``folder``; every one of them can be resumed from.

    - ``best.npz``: the state after the epoch with the best ``monitor`` figure
      (its direction from :data:`micrograd.metrics.GOAL`), written when the
      next save happens, so a fast run does not pay two writes per epoch;
    - ``checkpoint.npz``: the latest state, every ``every_n_epochs`` epochs (by
      default every ``every_seconds`` of wall time), after the last epoch, on
      an interrupt, and when an epoch-end write (metrics.csv) fails.

    ``best.npz`` is always written before the ``checkpoint.npz`` that refers to
    it. When training diverges the pending best state is still written (it
    validated well) and the exception learns the folder and the files kept.
    ``metadata`` is extra ``(meta, arrays)`` stored in every file (the config
    and the preprocessing, so that ``micrograd.run.restore`` and the CLI need
    nothing else); without it the files hold an empty config, and the weights
    come back with ``micrograd.checkpoint.load_weights(model, ...)``.

    Example::

        ModelCheckpoint("runs/mine", monitor="accuracy", every_n_epochs=5)
    """

    state_key = "checkpoint"

    def __init__(self, folder, monitor: str = "loss", every_n_epochs: Optional[int] = None,
                 every_seconds: float = 30.0, metadata: Optional[tuple[dict, dict]] = None):
        if monitor not in GOAL:
            raise ValueError(f"unknown metric {monitor!r} (expected one of: {', '.join(GOAL)})")
        self.folder, self.monitor = Path(folder), monitor
        self.every_n_epochs, self.every_seconds = every_n_epochs, every_seconds
        self.metadata = metadata or ({"config": {}, "pipeline": {}}, {})
        self.best_value: Optional[float] = None
        self.best_row: dict = {}
        self.kept: dict[str, int] = {}   # file name -> the epoch it holds
        self.pending_best = None         # a best state not yet written
        self._saved_at = None            # (epoch, batch, step) of the last checkpoint.npz
        self._last_save = time.perf_counter()

    # ------------------------------------------------------------ saving

    def snapshot(self, trainer) -> tuple[dict, dict]:
        meta, arrays = trainer.state_dict()
        return {**self.metadata[0], **meta}, {**self.metadata[1], **arrays}

    def save(self, trainer, checkpoint=None, best=None) -> None:
        """Write best.npz (when given or pending), then checkpoint.npz (when given)."""
        best = best or self.pending_best
        if best is not None:
            save_checkpoint(self.folder / "best.npz", *best)
            self.kept["best.npz"] = best[0]["epoch"]
            self.pending_best = None
        if checkpoint is not None:
            save_checkpoint(self.folder / "checkpoint.npz", *checkpoint)
            self.kept["checkpoint.npz"] = checkpoint[0]["epoch"]
            s = trainer.state
            self._saved_at = (s.epoch, s.batch, s.step)
        self._last_save = time.perf_counter()

    def last_saved(self):
        """(checkpoint.npz, the epoch it holds), or (None, None)."""
        if "checkpoint.npz" in self.kept:
            return self.folder / "checkpoint.npz", self.kept["checkpoint.npz"]
        return None, None

    def _unsaved(self, trainer) -> bool:
        s = trainer.state
        return self._saved_at != (s.epoch, s.batch, s.step)

    # ------------------------------------------------------------ hooks

    def on_fit_start(self, trainer):
        self._last_save = time.perf_counter()

    def on_epoch_end(self, trainer, row):
        current = monitored(trainer, self.monitor, row)
        snapshot = None
        if current is not None and improved(self.monitor, current, self.best_value):
            self.best_value, self.best_row = current, row
            snapshot = self.pending_best = self.snapshot(trainer)
        # Saving costs two fsyncs; a tiny model trains 1,000 epochs in less time
        # than that, so save on a clock (or every N epochs) and always at the end.
        epoch = trainer.state.epoch
        due = (epoch % self.every_n_epochs == 0 if self.every_n_epochs
               else time.perf_counter() - self._last_save >= self.every_seconds)
        if due or trainer.is_last_epoch or trainer.interrupt_pending:
            self.save(trainer, checkpoint=snapshot or self.snapshot(trainer))

    def on_fit_end(self, trainer):
        if not (self.folder / "best.npz").exists():  # nothing validated: the last state
            self.save(trainer, best=self.snapshot(trainer))

    def on_interrupt(self, trainer):
        if self._unsaved(trainer):
            self.save(trainer, checkpoint=self.snapshot(trainer))
        return self.folder / "checkpoint.npz"

    def on_exception(self, trainer, exc):
        if isinstance(exc, TrainingDiverged):
            if self.pending_best is not None:  # a state that validated well: keep it
                try:
                    self.save(trainer)
                except CheckpointError:
                    pass
            exc.run_dir, exc.kept = self.folder, dict(self.kept)
            return None
        if not (trainer.at_epoch_end and isinstance(exc, CheckpointSaveError)):
            return None
        # An epoch-end write (metrics.csv) failed with the state whole: keep that state,
        # so that nothing is lost, unless the disk refuses this too.
        if self._unsaved(trainer):
            try:
                self.save(trainer, checkpoint=self.snapshot(trainer))
            except CheckpointError:
                return None
        return CheckpointSaveError(
            f"{exc}. Training stopped; {self.folder / 'checkpoint.npz'} holds epoch "
            f"{trainer.state.epoch}: free some space and resume with --resume {self.folder} "
            f"(metrics.csv is rewritten from the checkpoint)")

    # ------------------------------------------------------------ state

    def state_dict(self):
        return {"best_value": self.best_value, "best_row": self.best_row}

    def load_state_dict(self, state):
        best, row = state.get("best_value"), state.get("best_row", {})
        if not isinstance(best, (int, float, type(None))) or isinstance(best, bool):
            raise ValueError(f"training state 'best_value' is {best!r}")
        if not isinstance(row, dict):
            raise ValueError(f"training state 'best_row' is {row!r}")
        self.best_value, self.best_row = best, row
