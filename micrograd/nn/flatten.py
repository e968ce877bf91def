"""Flatten, the bridge from convolution feature maps to Linear layers."""
from __future__ import annotations

import math

from . import functional as F
from .module import Module
from .registry import LayerPlan, LayerShapeError, fmt, register_layer


@register_layer("flatten")
class Flatten(Module):
    r"""Merge dims ``start_dim`` to ``end_dim`` into one (by default all but the batch dim).

    Args:
        start_dim: first dim to merge (default 1).
        end_dim: last dim to merge (default -1).

    Shape:
        - Input: ``(*, S_start, ..., S_end, *)``.
        - Output: ``(*, S_start * ... * S_end, *)``.

    Examples::

        >>> mn.Flatten()(mt.randn(32, 1, 5, 5)).shape
        (32, 25)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    @classmethod
    def plan(cls, in_shape, start_dim: int = 1, end_dim: int = -1) -> LayerPlan:
        """The sample shape with its dims merged (``start_dim`` counts the batch axis,
        as the layer does); nothing held."""
        full = (None, *in_shape)  # the batch axis, unknown here
        start, end = start_dim % len(full), end_dim % len(full)
        if start == 0 or end < start:
            raise LayerShapeError(f"flattening dims {start_dim} to {end_dim} of a batch of "
                                  f"{fmt(in_shape)} samples keeps no batch axis")
        out = (*full[1:start], math.prod(full[start:end + 1]), *full[end + 1:])
        return LayerPlan(out, 0, lambda: cls(start_dim, end_dim))

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
