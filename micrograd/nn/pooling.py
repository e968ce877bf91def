"""Max and average pooling over 2-D windows (NCHW)."""
from __future__ import annotations

from micrograd.engine.pooling import pool_output_size

from . import functional as F
from .module import Module
from .registry import LayerPlan, LayerShapeError, check_positive, image_shape, register_layer


class _Pool2d(Module):
    #: The options beyond kernel_size, stride and padding, with their defaults:
    #: extra_repr shows those set to something else.
    options: dict = {}

    def __init__(self, kernel_size, stride=None, padding=0, **options):
        super().__init__()
        # Validate now, so a bad layer fails where it is built, not on first use.
        self._check(kernel_size, stride, padding, **options)
        # A config's [h, w] lists read as PyTorch's tuples.
        as_given = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
        self.kernel_size = as_given(kernel_size)
        self.stride = as_given(stride if stride is not None else kernel_size)
        self.padding = as_given(padding)
        for name, value in options.items():
            setattr(self, name, as_given(value))

    @classmethod
    def _plan(cls, in_shape, kernel_size, stride, padding, **options) -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(C, H_out, W_out)``; nothing held."""
        c, h, w = image_shape(in_shape)
        try:
            kernel, strides, pads = cls._check(kernel_size, stride, padding, **options)
        except ValueError as exc:
            raise LayerShapeError(str(exc)) from None
        dilation = F._pair(options.get("dilation", 1), "dilation")
        ceil_mode = options.get("ceil_mode", False)
        out = check_positive((c, *(pool_output_size(n, kernel[i], strides[i], pads[i],
                                                    dilation[i], ceil_mode)
                                   for i, n in enumerate((h, w)))), in_shape)
        return LayerPlan(out, 0, lambda: cls(kernel_size, stride=stride, padding=padding,
                                             **options))

    @classmethod
    def _check(cls, kernel_size, stride, padding, **options):
        return F._pool_args(kernel_size, stride, padding, options.get("dilation", 1))

    def _options(self) -> dict:
        return {name: getattr(self, name) for name in self.options}

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        for name, default in self.options.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


@register_layer("maxpool2d")
class MaxPool2d(_Pool2d):
    r"""Maximum over each ``kernel_size`` window, moved by ``stride``.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``kernel_size`` (non-overlapping windows).
        padding: int or (ph, pw), at most half the dilated kernel; padded cells never win.
        dilation: int or (dh, dw), the spacing of the window's cells, default 1.
        return_indices: not supported (there is no ``max_unpool2d`` to take them):
            True is a ValueError.
        ceil_mode: round the output size up rather than down (the last window
            must still start inside the input or its left padding), default False.

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``.
        - Output: ``(N, C, H_out, W_out)``,
          ``H_out = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1`` (rounded up under
          ``ceil_mode``; ``pool_output_size`` in engine/pooling.py).

    The gradient goes to the (first) maximum of each window.

    Examples::

        >>> mn.MaxPool2d(2)(mt.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
        >>> mn.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True)(mt.randn(1, 3, 8, 8)).shape
        (1, 3, 3, 3)
    """

    options = {"dilation": 1, "ceil_mode": False}

    @classmethod
    def plan(cls, in_shape, kernel_size, stride=None, padding=0, dilation=1,
             ceil_mode: bool = False) -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(C, H_out, W_out)``; nothing held."""
        return cls._plan(in_shape, kernel_size, stride, padding, dilation=dilation,
                         ceil_mode=ceil_mode)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        if return_indices:
            raise ValueError("MaxPool2d(return_indices=True) is not supported: micrograd has "
                             "no max_unpool2d to take the indices")
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding,
                            **self._options())


@register_layer("avgpool2d")
class AvgPool2d(_Pool2d):
    r"""Mean over each ``kernel_size`` window, moved by ``stride``.

    Args:
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw); defaults to ``kernel_size``.
        padding: int or (ph, pw) zeros, at most half the kernel.
        ceil_mode: round the output size up rather than down (the last window
            must still start inside the input or its left padding), default False.
        count_include_pad: count the zero padding in each mean (default True);
            cells that ceil_mode's last windows reach past the padding never count.
        divisor_override: divide each window's sum by this number instead
            (default None: the count above).

    Shape:
        - Input: ``(N, C, H, W)`` or ``(C, H, W)``.
        - Output: ``(N, C, H_out, W_out)``, ``H_out = (H + 2 * ph - kh) // sh + 1``
          (rounded up under ``ceil_mode``).

    Examples::

        >>> mn.AvgPool2d(3, stride=2, padding=1)(mt.randn(1, 3, 8, 8)).shape
        (1, 3, 4, 4)
        >>> mn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)(mt.randn(1, 3, 7, 7)).shape
        (1, 3, 4, 4)
    """

    options = {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}

    @classmethod
    def plan(cls, in_shape, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override=None) -> LayerPlan:
        """For a ``(C, H, W)`` sample: ``(C, H_out, W_out)``; nothing held."""
        return cls._plan(in_shape, kernel_size, stride, padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad,
                         divisor_override=divisor_override)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad,
                         divisor_override=divisor_override)

    @classmethod
    def _check(cls, kernel_size, stride, padding, **options):
        divisor = options.get("divisor_override")
        if divisor is not None and (isinstance(divisor, bool) or not isinstance(divisor, int)
                                    or divisor == 0):
            raise ValueError(f"divisor must be not zero, got divisor_override={divisor!r}")
        return F._pool_args(kernel_size, stride, padding)

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                            **self._options())
