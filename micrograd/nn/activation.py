"""Element-wise activations and the (log-)softmax layers."""
from __future__ import annotations

from . import functional as F
from .module import Module


class ReLU(Module):
    r"""max(0, x), element-wise.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.ReLU()(mt.tensor([-1.0, 2.0]))
        tensor([0., 2.])
    """

    def forward(self, input):
        return F.relu(input)


class Sigmoid(Module):
    r"""1 / (1 + exp(-x)), element-wise (computed without overflow).

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Sigmoid()(mt.tensor([0.0]))
        tensor([0.5])
    """

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    r"""tanh(x), element-wise.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Tanh()(mt.tensor([0.0]))
        tensor([0.])
    """

    def forward(self, input):
        return F.tanh(input)


class Softmax(Module):
    r"""exp(x_i) / sum_j exp(x_j) along ``dim``: each slice becomes a probability vector.

    Args:
        dim: the dim to normalise. Leaving it out is deprecated in PyTorch
            and picks dim 0 for 0-D, 1-D and 3-D inputs and dim 1 otherwise, with a warning.

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.Softmax(dim=1)(mt.randn(2, 3)).sum(1)
        tensor([1., 1.])
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    r"""log(softmax(x)) along ``dim``, computed as x - max - log(sum(exp(x - max)))
    so that it stays finite where softmax underflows.

    Args:
        dim: the dim to normalise (see :class:`Softmax` for a missing dim).

    Shape: any input shape; the output has the same shape.

    Examples::

        >>> mn.LogSoftmax(dim=1)(mt.randn(2, 3)).exp().sum(1)
        tensor([1., 1.])
    """

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
