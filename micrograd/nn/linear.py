"""The fully connected layer."""
from __future__ import annotations

import numpy as np

from micrograd.engine import functions
from micrograd.engine.autograd import is_grad_enabled
from micrograd.engine.tensor import DEFAULT_DTYPE, Tensor

from . import functional as F
from . import init
from .module import Module, Parameter
from .registry import LayerPlan, check_size, flat_features, register_layer


@register_layer("linear")
class Linear(Module):
    r"""Applies an affine map to the last dim: :math:`y = x W^T + b`.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: learn an additive bias (default True).
        dtype: parameter dtype, float32 by default.

    Shape:
        - Input: ``(*, in_features)``, any number of leading dims.
        - Output: ``(*, out_features)``.

    Attributes:
        weight: ``(out_features, in_features)``, initialised from
            U(-1/sqrt(in_features), 1/sqrt(in_features)) as in PyTorch.
        bias: ``(out_features,)``, same distribution.

    Examples::

        >>> m = mn.Linear(20, 30)
        >>> m(mt.randn(128, 20)).shape
        (128, 30)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        dtype = dtype or DEFAULT_DTYPE
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, out_features: int, in_features=None, bias: bool = True) -> LayerPlan:
        """For a flat sample of ``in_shape``: ``(out_features,)`` and the weight and bias
        sizes; ``in_features`` is inferred (see ``registry.py``)."""
        n_in = check_size("in_features", in_features, flat_features(in_shape, "a linear layer"))
        return LayerPlan((out_features,), out_features * n_in + (out_features if bias else 0),
                         lambda: cls(n_in, out_features, bias=bias))

    def reset_parameters(self) -> None:
        # kaiming_uniform_ with a=sqrt(5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, input):
        if not is_grad_enabled() and isinstance(input, Tensor) and input.dtype.kind == "f":
            # No graph to record: the product straight from the registry's arrays
            # (between large products each attribute lookup is a cache miss).
            params = self._parameters
            bias = params["bias"]
            return Tensor._wrap(functions.Linear.values(
                input.data, params["weight"].data, None if bias is None else bias.data))
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    r"""Returns its input: a placeholder (``mn.fuse`` leaves one where a layer was
    folded into the fused module before it, so the others keep their index).

    Shape: any input shape; the output is the input.
    """

    def forward(self, input):
        return input
