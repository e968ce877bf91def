"""The 2-D convolution layer (NCHW), over the engine's fused Conv2d primitive."""
from __future__ import annotations

import numpy as np

from micrograd.engine.pad import source_index
from micrograd.engine.windows import conv_output_size
from micrograd.engine.tensor import DEFAULT_DTYPE

from . import functional as F
from . import init
from .module import Module, Parameter
from .registry import (LayerPlan, LayerShapeError, check_positive, check_size, image_shape,
                       register_layer)


@register_layer("conv2d")
class Conv2d(Module):
    r"""2-D cross-correlation over an ``(N, C_in, H, W)`` input:

    .. math::
        y[n, o] = b[o] + \sum_{c \in \mathrm{group}(o)} W[o, c] \star x[n, c]

    Args:
        in_channels: channels of the input (C_in).
        out_channels: channels produced (C_out).
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw), default 1.
        padding: int or (ph, pw) cells added on each side, default 0; or
            ``'valid'`` (none) or ``'same'`` (the output keeps H x W; stride 1
            only; an even dilated kernel gets its odd cell at the bottom and right).
        dilation: int or (dh, dw), the spacing of the kernel taps, default 1
            (a 3 x 3 kernel with dilation 2 spans 5 x 5 cells).
        groups: split the channels into that many independent convolutions,
            each from C_in/groups input to C_out/groups output channels; both
            must divide. ``groups=C_in`` is a depthwise convolution.
        bias: learn an additive bias per output channel (default True).
        padding_mode: what the padding cells hold: ``'zeros'`` (default),
            ``'reflect'``, ``'replicate'`` or ``'circular'`` (see ``F.pad``).
        dtype: parameter dtype, float32 by default.

    Shape:
        - Input: ``(N, C_in, H, W)`` or ``(C_in, H, W)``.
        - Output: ``(N, C_out, H_out, W_out)`` with
          ``H_out = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1`` (W likewise;
          ``conv_output_size`` in engine/windows.py); ``H_out = H`` for 'same'.

    Attributes:
        weight: ``(C_out, C_in / groups, kh, kw)``; weight and bias start from
            U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in / groups * kh * kw,
            as in PyTorch.
        bias: ``(C_out,)``.

    Examples::

        >>> m = mn.Conv2d(3, 8, 3, stride=2, padding=1)
        >>> m(mt.randn(4, 3, 32, 32)).shape
        (4, 8, 16, 16)
        >>> depthwise = mn.Conv2d(8, 8, 3, padding='same', dilation=2, groups=8,
        ...                       padding_mode='reflect')
        >>> depthwise(mt.randn(4, 8, 16, 16)).shape
        (4, 8, 16, 16)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1,
                 padding=0, dilation=1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype=None):
        super().__init__()
        (self.kernel_size, self.stride, self.dilation, self.groups,
         self._pads) = self._checked_args(in_channels, out_channels, kernel_size, stride,
                                          padding, dilation, groups, padding_mode)
        self.padding = padding if isinstance(padding, str) else self._pads[::2]
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.padding_mode = padding_mode
        dtype = dtype or DEFAULT_DTYPE
        shape = (out_channels, in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty(out_channels, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @classmethod
    def plan(cls, in_shape, out_channels: int, kernel_size, in_channels=None, stride=1,
             padding=0, dilation=1, groups: int = 1, bias: bool = True,
             padding_mode: str = "zeros") -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(out_channels, H_out, W_out)`` and the weight and
        bias sizes; ``in_channels`` is inferred (see ``registry.py``)."""
        c, h, w = image_shape(in_shape)
        c = check_size("in_channels", in_channels, c)
        try:
            kernel, stride, dilation, groups, pads = cls._checked_args(
                c, out_channels, kernel_size, stride, padding, dilation, groups, padding_mode)
            if padding_mode != "zeros":  # reflect and circular pads are limited by the input
                source_index(h, *pads[:2], F.PADDING_MODES[padding_mode])
                source_index(w, *pads[2:], F.PADDING_MODES[padding_mode])
        except ValueError as exc:
            raise LayerShapeError(str(exc)) from None
        out_h, out_w = (conv_output_size(n + pads[2 * i] + pads[2 * i + 1], kernel[i],
                                         stride[i], 0, dilation[i])
                        for i, n in enumerate((h, w)))
        out = check_positive((out_channels, out_h, out_w), in_shape)
        values = (out_channels * (c // groups) * kernel[0] * kernel[1]
                  + (out_channels if bias else 0))
        return LayerPlan(out, values, lambda: cls(
            c, out_channels, kernel, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=bias, padding_mode=padding_mode))

    @staticmethod
    def _checked_args(in_channels, out_channels, kernel_size, stride, padding, dilation,
                      groups, padding_mode):
        """The layer's own checks, without building it: (kernel, stride, dilation,
        groups, (top, bottom, left, right) padding)."""
        kernel = F._pair(kernel_size, "kernel_size")
        if min(kernel) < 1:
            raise ValueError(f"kernel_size should be greater than zero, got {kernel}")
        stride, dilation, groups = F.conv_args(stride, dilation, groups, padding_mode)
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        return kernel, stride, dilation, groups, F.conv_padding(padding, kernel, dilation,
                                                                stride)

    def reset_parameters(self) -> None:
        # bound = 1/sqrt(fan_in), fan_in = C_in / groups * kh * kw (the weight's shape).
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        """This layer's convolution with other weights (``mn.fuse`` passes ones with
        a BatchNorm folded in), as PyTorch's method of the same name."""
        if self.padding_mode == "zeros":
            return F.conv2d(input, weight, bias, self.stride, self.padding,
                            self.dilation, self.groups)
        # As PyTorch: pad with the mode, then convolve unpadded.
        top, bottom, left, right = self._pads
        x = F.pad(input, (left, right, top, bottom), mode=F.PADDING_MODES[self.padding_mode])
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        # ConvReLUAvgPool2d (fuse.py) reuses this repr; it fuses only convolutions
        # with the default dilation, groups and padding_mode, and holds none of them.
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if isinstance(self.padding, str):
            s += f", padding={self.padding}"
        elif self.padding != (0, 0):
            s += f", padding={self.padding}"
        if getattr(self, "dilation", (1, 1)) != (1, 1):
            s += f", dilation={self.dilation}"
        if getattr(self, "groups", 1) != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if getattr(self, "padding_mode", "zeros") != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s
