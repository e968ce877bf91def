"""Padding of the H and W axes of an (N, C, H, W) array, as ``torch.nn.functional.pad``:
``'constant'`` (a value), ``'reflect'`` (mirrored about the edge cell, which is
not repeated), ``'replicate'`` (the edge cell repeated) and ``'circular'`` (the
opposite edge wrapped around).

Convolutions with ``padding_mode`` other than ``'zeros'`` pad their input with
this node and then convolve unpadded, as PyTorch does. The output is stored
channels-last (see conv.py), so the convolution that follows gets its
(N, H, W, C) array as a free view.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function
from .windows import _nchw

MODES = ("constant", "reflect", "replicate", "circular")


def source_index(size, before, after, mode):
    """For each of the ``before + size + after`` cells of a padded axis, the input cell
    it copies (-1: the constant); PyTorch's one-line errors for pads a mode cannot take."""
    if mode == "reflect" and (before >= size or after >= size):
        raise ValueError(f"Padding size should be less than the corresponding input "
                         f"dimension, but got: padding ({before}, {after}) at dimension "
                         f"of input size {size}")
    if mode == "circular" and (before > size or after > size):
        raise ValueError("Padding value causes wrapping around more than once.")
    index = np.arange(-before, size + after)
    if mode == "constant":
        return np.where((index >= 0) & (index < size), index, -1)
    if mode == "replicate":
        return np.clip(index, 0, size - 1)
    if mode == "circular":
        return index % size
    period = 2 * (size - 1)  # reflect: ... 2 1 [0 1 2 ... size-1] size-2 ...
    if period == 0:
        return np.zeros_like(index)
    index = np.abs(index) % period
    return np.where(index < size, index, period - index)


class Pad2d(Function):
    """x (N, C, H, W) -> (N, C, top + H + bottom, left + W + right), ``pads`` =
    (left, right, top, bottom) >= 0 as torch's ``pad`` tuple for the last two axes.

    Forward is two gathers (rows, then columns) of the channels-last array; the
    gradient of each padded cell is added back onto the input cell it copies,
    one padded row or column at a time (pads are a few cells wide).
    """

    fresh_grads = True

    def forward(self, x, pads=(0, 0, 0, 0), mode="constant", value=0.0):
        left, right, top, bottom = pads
        n, c, h, w = x.shape
        rows = source_index(h, top, bottom, mode)
        cols = source_index(w, left, right, mode)
        xh = x.transpose(0, 2, 3, 1)  # a free view when x is channels-last
        if mode == "constant":
            out = np.full((n, h + top + bottom, w + left + right, c), value, dtype=x.dtype)
            out[:, top:top + h, left:left + w] = xh
        else:
            out = xh[:, rows][:, :, cols]
        self.rows, self.cols, self.mode, self.shape = rows, cols, mode, (h, w)
        self.pads = pads
        return _nchw(out)

    def backward(self, g):
        left, right, top, bottom = self.pads
        h, w = self.shape
        g = g.transpose(0, 2, 3, 1)  # (N, Hp, Wp, C)
        if self.mode == "constant":
            return (_nchw(np.ascontiguousarray(g[:, top:top + h, left:left + w])),)
        # Columns first: fold the padded columns onto the ones they copy.
        gc = g[:, :, left:left + w].copy()
        for j in (*range(left), *range(left + w, len(self.cols))):
            gc[:, :, self.cols[j]] += g[:, :, j]
        gx = gc[:, top:top + h].copy()
        for i in (*range(top), *range(top + h, len(self.rows))):
            gx[:, self.rows[i]] += gc[:, i]
        return (_nchw(gx),)
