"""Window geometry shared by convolution (conv.py, grouped_conv.py) and pooling
(pooling.py): the channels-last layout conversions, padding, output sizes and
the strided slices a kernel offset reads.

Its own module so that conv.py's fused conv + pooling nodes can build on
pooling.py's classes, and pooling.py on these helpers, without an import cycle.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _nhwc(x):
    """The (N, H, W, C) array behind an (N, C, H, W) one: free when it is channels-last."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _nchw(x):
    """The (N, C, H, W) view of a channels-last (N, H, W, C) array (no copy)."""
    return x.transpose(0, 3, 1, 2)


def _padded_nhwc(x, ph, pw, value=0.0, extra=(0, 0)):
    """x (N, C, H, W) as a channels-last array padded with ``value``: (ph, pw) on
    each side, plus ``extra`` (eh, ew) more at the bottom and right (the cells
    ceil_mode's last windows reach past the padded input). One copy, straight
    from x's layout (an NCHW batch is not made channels-last first), and only
    the border written besides; none when there is no padding and x is
    channels-last already."""
    eh, ew = extra
    if not (ph or pw or eh or ew):
        return _nhwc(x)
    n, c, h, w = x.shape
    out = np.empty((n, h + 2 * ph + eh, w + 2 * pw + ew, c), dtype=x.dtype)
    bottom, right = ph + h, pw + w
    out[:, :ph] = value
    out[:, bottom:] = value
    out[:, ph:bottom, :pw] = value
    out[:, ph:bottom, right:] = value
    out[:, ph:bottom, pw:right] = x.transpose(0, 2, 3, 1)
    return out


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length of a convolution (or pooling) along one axis of ``size``; a
    dilated kernel spans dilation * (kernel - 1) + 1 cells."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def check_kernel_fits(hp, wp, kh, kw):
    """PyTorch's error for a convolution kernel larger than its padded input."""
    if hp < kh or wp < kw:
        raise ValueError(f"Calculated padded input size per channel: ({hp} x {wp}). Kernel "
                         f"size: ({kh} x {kw}). Kernel size can't be greater than actual "
                         f"input size")


def _window_slices(kh, kw, sh, sw, oh, ow, dh=1, dw=1):
    """For each kernel offset (i, j), the slice of the padded input it reads at every
    output position: x[:, dh*i + sh*oh', dw*j + sw*ow'] for all oh' < oh, ow' < ow."""
    return [(slice(dh * i, dh * i + sh * (oh - 1) + 1, sh),
             slice(dw * j, dw * j + sw * (ow - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def _crop(gx, ph, pw):
    """Remove the padding of (N, Hp, Wp, C) and view the result as (N, C, H, W)."""
    if ph or pw:
        gx = gx[:, ph:gx.shape[1] - ph, pw:gx.shape[2] - pw]
    return _nchw(gx)
