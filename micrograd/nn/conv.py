"""The 2-D convolution layer (NCHW), over the engine's fused Conv2d primitive."""
from __future__ import annotations

import numpy as np

from micrograd.engine.conv import conv_output_size
from micrograd.engine.tensor import DEFAULT_DTYPE

from . import functional as F
from . import init
from .module import Module, Parameter
from .registry import LayerPlan, check_positive, check_size, image_shape, register_layer


@register_layer("conv2d")
class Conv2d(Module):
    r"""2-D cross-correlation over an ``(N, C_in, H, W)`` input:

    .. math::
        y[n, o] = b[o] + \sum_{c} W[o, c] \star x[n, c]

    Args:
        in_channels: channels of the input (C_in).
        out_channels: channels produced (C_out).
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw), default 1.
        padding: int or (ph, pw) zeros added on each side, default 0.
        bias: learn an additive bias per output channel (default True).
        dtype: parameter dtype, float32 by default.

    Shape:
        - Input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        - Output: ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H + 2 * ph - kh) // sh + 1`` (W likewise; ``conv_output_size``
          in engine/conv.py).

    Attributes:
        weight: ``(C_out, C_in, kh, kw)``; weight and bias start from
            U(-1/sqrt(C_in*kh*kw), 1/sqrt(C_in*kh*kw)) as in PyTorch.
        bias: ``(C_out,)``.

    Examples::

        >>> m = mn.Conv2d(3, 8, 3, stride=2, padding=1)
        >>> m(mt.randn(4, 3, 32, 32)).shape
        (4, 8, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, bias: bool = True, dtype=None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride = F._pair(stride, "stride")
        self.padding = F._pair(padding, "padding")
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"Conv2d needs kernel_size and stride >= 1 and padding >= 0, got "
                             f"{self.kernel_size}, {self.stride}, {self.padding}")
        dtype = dtype or DEFAULT_DTYPE
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, out_channels: int, kernel_size, in_channels=None, stride=1,
             padding=0, bias: bool = True) -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(out_channels, H_out, W_out)`` and the weight and
        bias sizes; ``in_channels`` is inferred (see ``registry.py``)."""
        c, h, w = image_shape(in_shape)
        c = check_size("in_channels", in_channels, c)
        kernel = F._pair(kernel_size, "kernel_size")
        stride, padding = F._pair(stride, "stride"), F._pair(padding, "padding")
        out_h, out_w = (conv_output_size(n, kernel[i], stride[i], padding[i])
                        for i, n in enumerate((h, w)))
        out = check_positive((out_channels, out_h, out_w), in_shape)
        values = out_channels * c * kernel[0] * kernel[1] + (out_channels if bias else 0)
        return LayerPlan(out, values, lambda: cls(c, out_channels, kernel, stride=stride,
                                                  padding=padding, bias=bias))

    def reset_parameters(self) -> None:
        # bound = 1/sqrt(fan_in), fan_in = C_in * kh * kw.
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.bias is None:
            s += ", bias=False"
        return s
