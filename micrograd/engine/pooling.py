"""Max and average pooling primitives, NCHW outside and channels-last inside
(see conv.py's module docstring for the layout).

Pooling reads the kh*kw strided slices of the padded input directly: no
window copy at all. conv.py's fused ReLU + pooling nodes build on ``_Pool2d``.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function
from .windows import _crop, _nchw, _nhwc, _pad, _pair, _window_slices


class _Pool2d(Function):
    """Shared set-up: the padded channels-last input and the kh*kw window slices."""

    pad_value = 0.0
    fresh_grads = True

    def _setup(self, x, kernel_size, stride, padding):
        kh, kw = _pair(kernel_size)
        sh, sw = _pair(stride if stride is not None else kernel_size)
        ph, pw = _pair(padding)
        xp = _pad(_nhwc(x), ph, pw, self.pad_value)
        oh, ow = (xp.shape[1] - kh) // sh + 1, (xp.shape[2] - kw) // sw + 1
        self.padded_shape, self.padding = xp.shape, (ph, pw)
        self.kernel, self.stride = (kh, kw), (sh, sw)
        self.slices = _window_slices(kh, kw, sh, sw, oh, ow)
        return xp


class MaxPool2d(_Pool2d):
    """Maximum over each kh x kw window; the gradient goes to the (first) maximum."""

    pad_value = -np.inf

    def forward(self, x, kernel_size=2, stride=None, padding=0):
        xp = self._setup(x, kernel_size, stride, padding)
        # A running maximum over the kh*kw shifted slices: kh*kw passes over the
        # output, no (N, OH, OW, kh*kw, C) window copy.
        out = xp[(slice(None), *self.slices[0])].copy()
        for rows, cols in self.slices[1:]:
            np.maximum(out, xp[:, rows, cols], out=out)
        if self.needs_input_grad[0]:
            self.xp, self.out = xp, out
        return _nchw(out)

    def backward(self, g):
        xp, out = self.xp, self.out
        g = _nhwc(g)
        gx = np.zeros(self.padded_shape, dtype=g.dtype)
        # Visit the window positions in order; the first one equal to the maximum
        # takes the gradient, the later ties get none (PyTorch's rule).
        taken = np.zeros(out.shape, dtype=bool)
        for rows, cols in self.slices:
            hit = xp[:, rows, cols] == out
            hit &= ~taken
            taken |= hit
            gx[:, rows, cols] += g * hit
        return (_crop(gx, *self.padding),)


class AvgPool2d(_Pool2d):
    """Mean over each kh x kw window (padding counted, as PyTorch's default)."""

    def forward(self, x, kernel_size=2, stride=None, padding=0):
        xp = self._setup(x, kernel_size, stride, padding)
        # The sum of the kh*kw shifted slices: strided reads, no window copy.
        first, *rest = self.slices
        out = xp[(slice(None), *first)].copy()
        for rows, cols in rest:
            out += xp[:, rows, cols]
        out *= 1.0 / len(self.slices)
        return _nchw(out)

    def backward(self, g):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        # order='C': the scaled copy is the channels-last array, whatever g's layout.
        share = np.multiply(g.transpose(0, 2, 3, 1), 1.0 / (kh * kw), order="C")
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
        return (_crop(gx, *self.padding),)
