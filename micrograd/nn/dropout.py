"""Dropout, the regulariser that is on only in training mode."""
from __future__ import annotations

from . import functional as F
from .module import Module
from .registry import LayerPlan, register_layer


@register_layer("dropout")
class Dropout(Module):
    r"""In training, zero each element with probability ``p`` and multiply the
    others by 1/(1-p) (inverted dropout); in evaluation, the identity.

    The mask comes from micrograd's global generator, so ``manual_seed`` fixes it.

    Args:
        p: probability of zeroing an element, in [0, 1] (default 0.5).

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> m = mn.Dropout(p=0.2)
        >>> x = mt.randn(20, 16)
        >>> y = m(x)           # about 20% zeros, the rest scaled by 1.25
        >>> m.eval()(x) is x
        True
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p

    @classmethod
    def plan(cls, in_shape, p: float = 0.5) -> LayerPlan:
        """Shape kept, nothing held."""
        return LayerPlan(tuple(in_shape), 0, lambda: cls(p))

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
