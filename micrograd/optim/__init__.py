"""Optimisers, learning-rate schedulers and gradient clipping, as ``torch.optim``.

Files in order of increasing complexity: ``optimizer.py`` (the shared
bookkeeping), ``sgd.py``, ``rmsprop.py``, ``adam.py`` (Adam, AdamW); then
``lr_scheduler.py`` and ``clip_grad.py``.
"""
from . import lr_scheduler  # noqa: F401  (torch-style access: optim.lr_scheduler.StepLR)
from .adam import Adam, AdamW
from .clip_grad import clip_grad_norm_, clip_grad_value_
from .lr_scheduler import CosineAnnealingLR, ExponentialLR, LRScheduler, ReduceLROnPlateau, StepLR
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adam",
    "AdamW",
    "LRScheduler",
    "StepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "ReduceLROnPlateau",
    "clip_grad_norm_",
    "clip_grad_value_",
]
