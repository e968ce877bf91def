"""Layers and models: ``import micrograd.nn as mn``.

``Module`` and ``Parameter`` (module.py) are the base; each layer family has
its own file; ``functional`` holds the same computations as functions and
``init`` the weight initialisers. Names and shapes are PyTorch's, so
``mn.Linear(3, 2).weight`` is ``(2, 3)`` and state dicts move between the two.
``registry`` maps a config's layer ``type`` to its class (``mn.LAYERS``), and
``fuse`` is the pass that computes runs of layers together (``mn.fuse``).
"""
from . import functional, init  # noqa: F401
from .activation import LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .conv import Conv2d
from .dropout import Dropout
from .embedding import Embedding, EmbeddingBag
from .flatten import Flatten
from .fuse import (
    BatchNormMaxPool2d, ConvBatchNorm2d, ConvReLUAvgPool2d, FlattenLinear, FoldedBatchNorm1d,
    FoldedBatchNorm2d, LinearBatchNorm1d, ReLUAvgPool2d, fuse,
)
from .linear import Identity, Linear
from .module import Module, Parameter
from .pooling import AvgPool2d, MaxPool2d
from .registry import LAYERS, LayerPlan, LayerShapeError, layer_class, register_layer
from .sequential import Sequential

__all__ = [
    "Module", "Parameter", "Sequential",
    "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten",
    "ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
    "Dropout", "BatchNorm1d", "BatchNorm2d", "Identity",
    "fuse", "ConvReLUAvgPool2d", "ReLUAvgPool2d", "ConvBatchNorm2d", "LinearBatchNorm1d",
    "FoldedBatchNorm2d", "FoldedBatchNorm1d", "BatchNormMaxPool2d", "FlattenLinear",
    "LAYERS", "LayerPlan", "LayerShapeError", "layer_class", "register_layer",
    "Embedding", "EmbeddingBag",
    "functional", "init",
]
