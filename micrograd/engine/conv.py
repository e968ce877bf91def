"""Fused convolution and pooling primitives (NCHW), vectorised with im2col.

These are single graph nodes on purpose: written as compositions of small ops
they would make thousands of nodes per batch. Forward views the padded input as
sliding windows (``as_strided``, no copy), and convolution is then one matrix
multiply. Backward scatters window gradients back with one vectorised add per
kernel position (kh*kw iterations, never a loop over pixels or samples).
"""
from __future__ import annotations

import numpy as np

from .autograd import Function


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _out_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def _windows(x, kh, kw, sh, sw):
    """View (N, C, H, W) as (N, C, OH, OW, kh, kw) windows, without copying."""
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s0, s1, s2, s3 = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, c, oh, ow, kh, kw), (s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False
    )


def _pad(x, ph, pw, value=0.0):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _scatter_windows(gcols, x_shape, kh, kw, sh, sw, ph, pw):
    """Add window gradients (N, C, OH, OW, kh, kw) back onto the input (col2im)."""
    n, c, h, w = x_shape
    oh, ow = gcols.shape[2], gcols.shape[3]
    gx = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gcols.dtype)
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw] += gcols[:, :, :, :, i, j]
    return gx[:, :, ph:ph + h, pw:pw + w]


class Conv2d(Function):
    """y[n, o] = sum_c x[n, c] (*) w[o, c] + b[o]; x (N, C, H, W), w (O, C, kh, kw)."""

    def forward(self, x, w, b=None, stride=1, padding=0):
        sh, sw = _pair(stride)
        ph, pw = _pair(padding)
        o, c, kh, kw = w.shape
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(
                f"conv2d expects input (N, {c}, H, W) for weight {w.shape}, got {x.shape}"
            )
        n = x.shape[0]
        cols = _windows(_pad(x, ph, pw), kh, kw, sh, sw)  # (N, C, OH, OW, kh, kw) view
        oh, ow = cols.shape[2], cols.shape[3]
        # im2col: one (N*OH*OW, C*kh*kw) matrix, then one GEMM with the weights.
        cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
        out = cols @ w.reshape(o, -1).T
        if b is not None:
            out += b
        self.cols, self.w, self.x_shape = cols, w, x.shape
        self.geometry = (kh, kw, sh, sw, ph, pw, oh, ow)
        return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)

    def backward(self, g):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geometry
        n, c = self.x_shape[:2]
        o = self.w.shape[0]
        g2 = g.transpose(0, 2, 3, 1).reshape(n * oh * ow, o)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gcols = (g2 @ self.w.reshape(o, -1)).reshape(n, oh, ow, c, kh, kw)
            gx = _scatter_windows(gcols.transpose(0, 3, 1, 2, 4, 5), self.x_shape,
                                  kh, kw, sh, sw, ph, pw)
        if self.needs_input_grad[1]:
            gw = (g2.T @ self.cols).reshape(self.w.shape)
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = g2.sum(axis=0)
        return (gx, gw, gb) if len(self.needs_input_grad) > 2 else (gx, gw)


class MaxPool2d(Function):
    """Maximum over each kh x kw window; the gradient goes to the (first) maximum."""

    def forward(self, x, kernel_size=2, stride=None, padding=0):
        kh, kw = _pair(kernel_size)
        sh, sw = _pair(stride if stride is not None else kernel_size)
        ph, pw = _pair(padding)
        cols = _windows(_pad(x, ph, pw, value=-np.inf), kh, kw, sh, sw)
        n, c, oh, ow = cols.shape[:4]
        flat = cols.reshape(n, c, oh, ow, kh * kw)
        self.argmax = flat.argmax(axis=-1)
        self.x_shape, self.geometry = x.shape, (kh, kw, sh, sw, ph, pw)
        return np.take_along_axis(flat, self.argmax[..., None], axis=-1)[..., 0]

    def backward(self, g):
        kh, kw, sh, sw, ph, pw = self.geometry
        # One-hot of the winning position in each window, times the gradient.
        hits = self.argmax[..., None] == np.arange(kh * kw)
        gcols = (hits * g[..., None]).reshape(*g.shape, kh, kw).astype(g.dtype, copy=False)
        return (_scatter_windows(gcols, self.x_shape, kh, kw, sh, sw, ph, pw),)


class AvgPool2d(Function):
    """Mean over each kh x kw window (padding counted, as PyTorch's default)."""

    def forward(self, x, kernel_size=2, stride=None, padding=0):
        kh, kw = _pair(kernel_size)
        sh, sw = _pair(stride if stride is not None else kernel_size)
        ph, pw = _pair(padding)
        cols = _windows(_pad(x, ph, pw), kh, kw, sh, sw)
        self.x_shape, self.geometry = x.shape, (kh, kw, sh, sw, ph, pw)
        return cols.mean(axis=(4, 5), dtype=x.dtype)

    def backward(self, g):
        kh, kw, sh, sw, ph, pw = self.geometry
        share = (g / (kh * kw))[..., None, None]
        gcols = np.broadcast_to(share, (*g.shape, kh, kw))
        return (_scatter_windows(gcols, self.x_shape, kh, kw, sh, sw, ph, pw),)
