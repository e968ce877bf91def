"""EarlyStopping: end training once the monitored figure stops improving."""
from __future__ import annotations

from typing import Optional

from micrograd.metrics import GOAL, improved

from ..callback import Callback


def monitored(trainer, monitor: str, row: dict) -> Optional[float]:
    """The epoch's figure for ``monitor`` (``val_<monitor>``); without validation data,
    ``loss`` means the training loss. None when validation skipped this epoch."""
    if trainer.has_validation:
        return row.get(f"val_{monitor}")
    return row["train_loss"] if monitor == "loss" else None


class EarlyStopping(Callback):
    """Stops training after ``patience`` epochs without a better ``monitor`` figure.

    ``monitor`` names a validation figure (``loss``, ``mae``, ``accuracy``...);
    its direction comes from :data:`micrograd.metrics.GOAL` (``loss`` and the
    errors go down, ``accuracy``, ``f1_macro`` and ``r2`` go up). Without
    ``patience`` it only keeps count (``since_best``), so that a resumed run
    can be given a patience later.

    Example::

        Trainer(model, loss_fn, opt, loader, epochs=100, validate=val,
                callbacks=[EarlyStopping("mae", patience=5)]).fit()
    """

    state_key = "early_stopping"

    def __init__(self, monitor: str = "loss", patience: Optional[int] = None):
        if monitor not in GOAL:
            raise ValueError(f"unknown metric {monitor!r} (expected one of: {', '.join(GOAL)})")
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be at least 1, got {patience}")
        self.monitor, self.patience = monitor, patience
        self.best_value: Optional[float] = None
        self.since_best = 0

    def on_epoch_end(self, trainer, row):
        current = monitored(trainer, self.monitor, row)
        if current is not None:
            if improved(self.monitor, current, self.best_value):
                self.best_value, self.since_best = current, 0
            else:
                self.since_best += 1
        if self.patience and self.since_best >= self.patience:
            trainer.should_stop = True

    def state_dict(self):
        return {"best_value": self.best_value, "since_best": self.since_best}

    def load_state_dict(self, state):
        best, since = state.get("best_value"), state.get("since_best", 0)
        if not isinstance(best, (int, float, type(None))) or isinstance(best, bool):
            raise ValueError(f"training state 'best_value' is {best!r}")
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise ValueError(f"training state 'since_best' is {since!r}")
        self.best_value, self.since_best = best, since
