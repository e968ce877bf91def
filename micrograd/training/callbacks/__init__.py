"""The callbacks a training run is made of: each owns one behaviour and its state."""
from .checkpoint import ModelCheckpoint
from .csv_logger import CSVLogger, MetricsWriteError
from .divergence import DivergenceCheck
from .early_stopping import EarlyStopping
from .tensorboard import TensorBoardLogger, TensorBoardMissing

__all__ = ["ModelCheckpoint", "CSVLogger", "MetricsWriteError", "DivergenceCheck",
           "EarlyStopping", "TensorBoardLogger", "TensorBoardMissing"]
