"""TensorBoardLogger: the run's figures as TensorBoard events (``train.loggers: [tensorboard]``).

tensorboardX is imported only when a run starts (``pip install
'micrograd-trainer[tensorboard]'``); :func:`require_tensorboard` checks for it
before a run folder is made, so a missing extra fails at once, not mid-training.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..callback import Callback

INSTALL = "pip install 'micrograd-trainer[tensorboard]'"


class TensorBoardMissing(ImportError):
    """train.loggers lists tensorboard but tensorboardX is not installed."""


def require_tensorboard():
    """The ``SummaryWriter`` class, or :class:`TensorBoardMissing` saying what to install."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise TensorBoardMissing(f"train.loggers: tensorboard needs the tensorboardX package: "
                                 f"{INSTALL}") from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Writes TensorBoard events into ``log_dir``.

    - every epoch: each numeric figure of the epoch's row (``train_loss``,
      ``val_loss``, ``val_accuracy``..., ``lr``, ``seconds``) as a scalar at
      global step = epoch;
    - every ``histogram_every`` epochs (0: never): a histogram of each
      parameter (``weights/<name>``) and of its last gradient (``grads/<name>``);
    - at the start of a new run: ``config_text`` (the resolved config) as text.

    A resumed run adds a new event file (``...epoch<E>.step<S>``) to the same folder with
    ``purge_step`` = the first epoch it trains, so TensorBoard hides whatever a
    killed run logged after its last checkpoint and no epoch appears twice.
    """

    def __init__(self, log_dir, config_text: Optional[str] = None, histogram_every: int = 10):
        if histogram_every < 0:
            raise ValueError(f"histogram_every must be >= 0, got {histogram_every}")
        self.log_dir, self.config_text = Path(log_dir), config_text
        self.histogram_every, self.writer = histogram_every, None

    def on_fit_start(self, trainer):
        SummaryWriter = require_tensorboard()
        s = trainer.state
        resumed = s.epoch > 0 or s.step > 0
        # tensorboardX names a file by the second it opened it: the suffix keeps a
        # resume within the same second from overwriting the first file, and sorts after it
        self.writer = SummaryWriter(str(self.log_dir),
                                    purge_step=s.epoch + 1 if resumed else None,
                                    filename_suffix=f".epoch{s.epoch:06d}.step{s.step:09d}")
        if not resumed and self.config_text is not None:
            # markdown code block: TensorBoard's text tab keeps the YAML's indentation
            text = "\n".join("    " + line for line in self.config_text.splitlines())
            self.writer.add_text("config", text, 0)
        self.writer.flush()

    def on_epoch_end(self, trainer, row):
        epoch = int(row["epoch"])
        for name, value in row.items():
            if name != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(name, float(value), epoch)
        if self.histogram_every and epoch % self.histogram_every == 0:
            for name, param in trainer.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", np.asarray(param.data), epoch)
                if param.grad is not None:
                    self.writer.add_histogram(f"grads/{name}", np.asarray(param.grad.data), epoch)
        self.writer.flush()

    def on_fit_end(self, trainer):
        self._close()

    def on_interrupt(self, trainer):
        self._close()

    def on_exception(self, trainer, exc):
        self._close()

    def _close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
