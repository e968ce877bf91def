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

#: The config's ``optimizer.type`` -> the class; the section's other keys are its
#: constructor's arguments (``build.build_optimizer``).
OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}
#: The config's ``scheduler.type`` -> the class, likewise (``t_max`` is ``T_max``).
SCHEDULERS = {"step": StepLR, "exponential": ExponentialLR, "cosine": CosineAnnealingLR,
              "plateau": ReduceLROnPlateau}

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
