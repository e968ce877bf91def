"""Max and average pooling primitives, NCHW outside and channels-last inside
(see conv.py's module docstring for the layout).

Pooling reads the kh*kw strided slices of the padded input directly: no
window copy at all. conv.py's fused ReLU + pooling nodes build on ``_Pool2d``.
"""
from __future__ import annotations

import numpy as np

from micrograd import kernels

from .autograd import Function
from .windows import _crop, _nchw, _nhwc, _padded_nhwc, _pair, _window_slices


def pool_output_size(size, kernel, stride, padding=0, dilation=1, ceil_mode=False):
    """Output length of pooling along one axis, PyTorch's rule: with ``ceil_mode`` the
    division rounds up, but the last window must start inside the input or its
    left padding (one fewer output when it would start in the right padding)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


#: Input of a pooling pass handled at a time: its several passes then run in cache.
_CHUNK_BYTES = 512 << 10


def _samples_per_chunk(x, scale=1):
    """How many samples of the (N, ...) array x make a cache-sized chunk (at least one);
    ``scale``: how many times larger the arrays the chunk loop goes over are than x."""
    return max(1, _CHUNK_BYTES // max(1, x[0].nbytes * scale))


class _Pool2d(Function):
    """Shared set-up: the padded channels-last input and the kh*kw window slices."""

    pad_value = 0.0
    fresh_grads = True

    def _setup(self, x, kernel_size, stride, padding, dilation=1, ceil_mode=False):
        kh, kw = _pair(kernel_size)
        sh, sw = _pair(stride if stride is not None else kernel_size)
        ph, pw = _pair(padding)
        dh, dw = _pair(dilation)
        h, w = x.shape[2:]
        oh = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
        ow = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
        if oh < 1 or ow < 1:
            raise ValueError(f"Given input size: ({x.shape[1]}x{h}x{w}). Calculated output "
                             f"size: ({x.shape[1]}x{oh}x{ow}). Output size is too small")
        # Under ceil_mode the last windows may reach past the padded input.
        eh = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + 2 * ph))
        ew = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + 2 * pw))
        xp = _padded_nhwc(x, ph, pw, self.pad_value, (eh, ew))
        self.padded_shape, self.padding, self.extra = xp.shape, (ph, pw), (eh, ew)
        self.kernel, self.stride = (kh, kw), (sh, sw)
        self.slices = _window_slices(kh, kw, sh, sw, oh, ow, dh, dw)
        return xp

    def _input_grad(self, gx):
        """The gradient of the padded input, (N, Hp, Wp, C), cropped to x's (N, C, H, W)."""
        eh, ew = self.extra
        if eh or ew:
            gx = gx[:, :gx.shape[1] - eh, :gx.shape[2] - ew]
        return _crop(gx, *self.padding)


class MaxPool2d(_Pool2d):
    """Maximum over each kh x kw window; the gradient goes to the (first) maximum."""

    pad_value = -np.inf

    def forward(self, x, kernel_size=2, stride=None, padding=0, dilation=1, ceil_mode=False):
        xp = self._setup(x, kernel_size, stride, padding, dilation, ceil_mode)
        # A running maximum over the kh*kw shifted slices (no window copy), a
        # few samples at a time so that each chunk's passes run in cache. For
        # backward, each output cell keeps which window offset won, in one byte
        # (offsets only increase, so max(which, k * better) records the last
        # strict improvement: the first of tied maxima wins, as in PyTorch).
        first, *rest = self.slices
        out = np.empty(xp[(slice(None), *first)].shape, dtype=xp.dtype)
        keep = self.needs_input_grad[0]
        which = np.zeros(out.shape, dtype=np.uint8 if len(self.slices) <= 256 else np.uint16)
        self.dilation = _pair(dilation)
        self.loops = kernels.for_arrays(xp)
        if self.loops is not None:
            # One compiled pass over the windows (micrograd/kernels), the same result.
            self.loops.max_pool(xp, out, which, *self.kernel, *self.stride, *self.dilation)
            if keep:
                self.which = which
            return _nchw(out)
        step = _samples_per_chunk(xp)
        better = np.empty((step,) + out.shape[1:], dtype=bool)
        marks = np.empty(better.shape, dtype=which.dtype)
        for start in range(0, len(xp), step):
            chunk = slice(start, start + step)
            part = out[chunk]
            np.copyto(part, xp[(chunk, *first)])
            won, b, m = which[chunk], better[:len(part)], marks[:len(part)]
            for k, (rows, cols) in enumerate(rest, 1):
                window = xp[chunk, rows, cols]
                if keep:
                    np.greater(window, part, out=b)
                    np.multiply(b, m.dtype.type(k), out=m)
                    np.maximum(won, m, out=won)
                np.maximum(part, window, out=part)
        if keep:
            self.which = which
            self.disjoint = self.stride == self.kernel and _pair(dilation) == (1, 1)
        return _nchw(out)

    def backward(self, g):
        g = _nhwc(g)
        which = self.which
        n, oh, ow = g.shape[:3]
        (kh, kw) = self.kernel
        if self.loops is not None and self.stride == self.kernel and self.dilation == (1, 1):
            gx = np.empty(self.padded_shape, dtype=g.dtype)
            gx[:, oh * kh:] = 0  # the cells no window covers
            gx[:, :oh * kh, ow * kw:] = 0
            self.loops.max_pool_backward_disjoint(g, which, gx, kh, kw)
            return (self._input_grad(gx),)
        if self.loops is not None:
            gx = np.zeros(self.padded_shape, dtype=g.dtype)
            self.loops.max_pool_backward(g, which, gx, kw, *self.stride, *self.dilation)
            return (self._input_grad(gx),)
        if self.disjoint:
            # Each input cell is in one window at most: written once, not added,
            # and only the cells no window reaches are zeroed.
            gx = np.empty(self.padded_shape, dtype=g.dtype)
            gx[:, oh * kh:] = 0
            gx[:, :oh * kh, ow * kw:] = 0
        else:
            gx = np.zeros(self.padded_shape, dtype=g.dtype)
        step = _samples_per_chunk(g, 4)
        hit = np.empty((step,) + g.shape[1:], dtype=bool)
        part = np.empty((step,) + g.shape[1:], dtype=g.dtype)
        for start in range(0, n, step):
            chunk = slice(start, start + step)
            g_chunk, won, gx_chunk = g[chunk], which[chunk], gx[chunk]
            h, p = hit[:len(g_chunk)], part[:len(g_chunk)]
            for k, (rows, cols) in enumerate(self.slices):
                np.equal(won, k, out=h)
                if self.disjoint:
                    np.multiply(g_chunk, h, out=gx_chunk[:, rows, cols])
                else:
                    np.multiply(g_chunk, h, out=p)
                    gx_chunk[:, rows, cols] += p
        return (self._input_grad(gx),)


class AvgPool2d(_Pool2d):
    """Mean over each kh x kw window, PyTorch's divisor rules: by default the
    padding counts (``count_include_pad``) but not the cells ceil_mode's last
    windows reach past it; ``count_include_pad=False`` counts input cells only;
    ``divisor_override`` divides every window's sum by that number instead."""

    def forward(self, x, kernel_size=2, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None):
        xp = self._setup(x, kernel_size, stride, padding, 1, ceil_mode)
        # The sum of the kh*kw shifted slices: strided reads, no window copy.
        first, *rest = self.slices
        out = xp[(slice(None), *first)].copy()
        for rows, cols in rest:
            out += xp[:, rows, cols]
        if not ceil_mode and count_include_pad and divisor_override is None:
            # The default: every window holds kh*kw cells, padding included.
            self.scale = 1.0 / len(self.slices)
        else:
            self.scale = self._scale(x.shape[2:], out.shape[1:3], count_include_pad,
                                     divisor_override, out.dtype)
        out *= self.scale
        return _nchw(out)

    def _scale(self, size, out_size, count_include_pad, divisor_override, dtype):
        """1 / divisor: a number when every window has the same one, else an
        (OH, OW, 1) array."""
        if divisor_override is not None:
            return 1.0 / divisor_override
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        counts = []
        for n, k, s, p, o in zip(size, (kh, kw), (sh, sw), (ph, pw), out_size):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, n + p)  # ceil_mode's overhang never counts
            if not count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            counts.append(end - start)
        if (counts[0] == kh).all() and (counts[1] == kw).all():
            return 1.0 / (kh * kw)
        scale = 1.0 / (counts[0][:, None] * counts[1][None, :])
        return scale[:, :, None].astype(dtype)  # float32 stays float32

    def backward(self, g):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        # order='C': the scaled copy is the channels-last array, whatever g's layout.
        share = np.multiply(g.transpose(0, 2, 3, 1), self.scale, order="C")
        n, oh, ow, c = share.shape
        hp, wp = self.padded_shape[1:3]
        if (sh, sw) == (kh, kw):
            # Non-overlapping windows: each input cell gets one share, written by a
            # single broadcast into the (N, OH, kh, OW, kw, C) blocks of the input
            # (a view: splitting axes never copies). Cells that no window reaches
            # (when kh does not divide the height) keep a zero gradient.
            covered = (hp, wp) == (oh * kh, ow * kw)
            gx = (np.empty if covered else np.zeros)(self.padded_shape, dtype=share.dtype)
            blocks = gx[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
            blocks[...] = share[:, :, None, :, None, :]
        else:
            gx = np.zeros(self.padded_shape, dtype=g.dtype)
            for rows, cols in self.slices:
                gx[:, rows, cols] += share
        return (self._input_grad(gx),)
