"""Max and average pooling over 2-D windows (NCHW)."""
from __future__ import annotations

from micrograd.engine.conv import conv_output_size

from . import functional as F
from .module import Module
from .registry import LayerPlan, LayerShapeError, check_positive, image_shape, register_layer


class _Pool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        # Validate now, so a bad layer fails where it is built, not on first use.
        F._pool_args(kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    @classmethod
    def plan(cls, in_shape, kernel_size, stride=None, padding=0) -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(C, H_out, W_out)``; nothing held."""
        c, h, w = image_shape(in_shape)
        try:
            kernel, strides, pads = F._pool_args(kernel_size, stride, padding)
        except ValueError as exc:
            raise LayerShapeError(str(exc)) from None
        out = check_positive((c, *(conv_output_size(n, kernel[i], strides[i], pads[i])
                                   for i, n in enumerate((h, w)))), in_shape)
        return LayerPlan(out, 0, lambda: cls(kernel_size, stride=stride, padding=padding))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


@register_layer("maxpool2d")
class MaxPool2d(_Pool2d):
    r"""Maximum over each ``kernel_size`` window, moved by ``stride``.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``kernel_size`` (non-overlapping windows).
        padding: int or (ph, pw), at most half the kernel; padded cells never win.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``.
        - Output: ``(N, C, H_out, W_out)``, ``H_out = (H + 2 * ph - kh) // sh + 1``.

    The gradient goes to the (first) maximum of each window.

    Examples::

        >>> mn.MaxPool2d(2)(mt.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding)


@register_layer("avgpool2d")
class AvgPool2d(_Pool2d):
    r"""Mean over each ``kernel_size`` window, moved by ``stride``.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``kernel_size``.
        padding: int or (ph, pw) zeros, at most half the kernel; they count in
            the mean (PyTorch's default ``count_include_pad=True``).

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``.
        - Output: ``(N, C, H_out, W_out)``, ``H_out = (H + 2 * ph - kh) // sh + 1``.

    Examples::

        >>> mn.AvgPool2d(3, stride=2, padding=1)(mt.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
    """

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding)
