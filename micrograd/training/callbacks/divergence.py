"""DivergenceCheck: stop at the first NaN or infinite loss or gradient, saying where."""
from __future__ import annotations

import math

import numpy as np

from ..callback import Callback
from ..exceptions import TrainingDiverged


class DivergenceCheck(Callback):
    """Raises :class:`TrainingDiverged` when a batch's loss, or any parameter's
    gradient, is NaN or infinite, before the optimiser step can spread it into the
    weights; the message names the epoch, the step and the parameter."""

    def on_after_backward(self, trainer, loss):
        epoch, step = trainer.current_epoch, trainer.state.step
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged at epoch {epoch}, step {step}: the loss is {loss}. "
                f"Lower the learning rate or enable gradient clipping (train.clip_grad_norm).",
                epoch=epoch, step=step)
        for name, p in trainer.model.named_parameters():
            if p.grad is not None and not np.all(np.isfinite(p.grad.data)):
                raise TrainingDiverged(
                    f"training diverged at epoch {epoch}, step {step}: the gradient of "
                    f"parameter '{name}' holds NaN or infinite values. Lower the learning rate "
                    f"or enable gradient clipping (train.clip_grad_norm).",
                    epoch=epoch, step=step, parameter=name)
