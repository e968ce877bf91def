"""Training: the :class:`Trainer` loop and the callbacks that make a run.

    from micrograd.training import Trainer, EarlyStopping, ModelCheckpoint, CSVLogger

- ``trainer.py``: the loop (any Module, loss, optimiser, DataLoader), its state
  and its checkpoint form;
- ``callback.py``: the hooks a callback may implement;
- ``callbacks/``: ``checkpoint.py`` (best.npz / checkpoint.npz),
  ``early_stopping.py``, ``csv_logger.py`` (metrics.csv), ``divergence.py``
  (NaN/inf), ``tensorboard.py`` (TensorBoard events, tensorboardX imported lazily);
- ``exceptions.py``: TrainingDiverged, TrainingInterrupted.

``micrograd.train.train(config)`` builds these objects from a config; a Python
user can assemble them by hand for any model.
"""
from .callback import Callback
from .callbacks import (CSVLogger, DivergenceCheck, EarlyStopping, MetricsWriteError, ModelCheckpoint,
                        TensorBoardLogger, TensorBoardMissing)
from .exceptions import TrainingDiverged, TrainingInterrupted
from .trainer import Trainer, TrainState

__all__ = ["Trainer", "TrainState", "Callback", "ModelCheckpoint", "EarlyStopping", "CSVLogger",
           "MetricsWriteError", "DivergenceCheck", "TensorBoardLogger", "TensorBoardMissing",
           "TrainingDiverged", "TrainingInterrupted"]
