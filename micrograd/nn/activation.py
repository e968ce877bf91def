"""Element-wise activations and the (log-)softmax layers."""
from __future__ import annotations

from . import functional as F
from .module import Module
from .registry import LayerPlan, LayerShapeError, fmt, register_layer, same_shape


@register_layer("relu")
class ReLU(Module):
    r"""max(0, x), element-wise.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.ReLU()(mt.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    plan = classmethod(same_shape)

    def forward(self, input):
        return F.relu(input)


@register_layer("sigmoid")
class Sigmoid(Module):
    r"""1 / (1 + exp(-x)), element-wise (computed without overflow).

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Sigmoid()(mt.tensor([0.0]))
        tensor([0.5])
    """

    plan = classmethod(same_shape)

    def forward(self, input):
        return F.sigmoid(input)


@register_layer("tanh")
class Tanh(Module):
    r"""tanh(x), element-wise.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Tanh()(mt.tensor([0.0]))
        tensor([0.])
    """

    plan = classmethod(same_shape)

    def forward(self, input):
        return F.tanh(input)


class _SoftmaxBase(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    @classmethod
    def plan(cls, in_shape, dim: int = -1) -> LayerPlan:
        """Shape kept, nothing held. ``dim`` counts from the sample, as a config
        never writes the batch axis: 0 is the layer's dim 1, -1 stays -1."""
        # -len(in_shape) is the first sample dim: one further would be the batch.
        if not -len(in_shape) <= dim < len(in_shape):
            raise LayerShapeError(
                f"dim {dim} is out of range for the input arriving there, of shape "
                f"{fmt(in_shape)}; use 0 to {len(in_shape) - 1} or -1 to -{len(in_shape)} "
                "(dims count from the sample, without the batch axis)")
        return LayerPlan(tuple(in_shape), 0, lambda: cls(dim=dim if dim < 0 else dim + 1))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register_layer("softmax")
class Softmax(_SoftmaxBase):
    r"""exp(x_i) / sum_j exp(x_j) along ``dim``: each slice becomes a probability vector.

    Args:
        dim: the dim to normalise. Leaving it out is deprecated in PyTorch
            and picks dim 0 for 0-D, 1-D and 3-D inputs and dim 1 otherwise, with a warning.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Softmax(dim=1)(mt.randn(2, 3)).sum(1)
        tensor([1., 1.])
    """

    def forward(self, input):
        return F.softmax(input, self.dim)


@register_layer("log_softmax")
class LogSoftmax(_SoftmaxBase):
    r"""log(softmax(x)) along ``dim``, computed as x - max - log(sum(exp(x - max)))
    so that it stays finite where softmax underflows.

    Args:
        dim: the dim to normalise (see :class:`Softmax` for a missing dim).

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.LogSoftmax(dim=1)(mt.randn(2, 3)).exp().sum(1)
        tensor([1., 1.])
    """

    def forward(self, input):
        return F.log_softmax(input, self.dim)
