"""Fused batch normalisation (``torch.nn.functional.batch_norm``).

One graph node rather than a composition of about ten (mean, sub, var, sqrt,
div, mul, add and their broadcasts): backward then uses the closed form of the
gradient through the batch statistics.

Normalisation is memory-bound: a few flops per value, so what counts is how
many times the activation crosses memory. When the input's channels are its
innermost axis in memory (BatchNorm1d's (N, C), or a channels-last (N, C, H, W)
from a convolution) the node works on the (M, C) matrix behind it:

- the per-channel sums are GEMVs (``ones @ X``), one read each, on BLAS threads;
- the other passes go over row blocks that fit in cache, so each block's
  several operations cost one read of it from memory;
- forward is y = x * scale + shift with the per-channel scale and shift
  (weight/std, bias - mean*weight/std) folded first: x is kept for backward,
  not a normalised copy, and backward is gx = a*g + b*(x - mean) + c per channel.

Forward then reads x three times (mean, variance, output; twice with numba,
whose one-pass statistics are in micrograd/kernels) and writes y once;
backward reads g and x twice and writes gx once. Any other layout takes the
direct NumPy expressions, which give the same values.

``BatchNormMaxPool2d`` (with numba) goes further for a BatchNorm2d that a
MaxPool2d follows: the normalised activation is never written at all.
"""
from __future__ import annotations

import numpy as np

from micrograd import kernels
from micrograd.kernels import vector_math
from micrograd.kernels.gemm import matmul

from .autograd import Function
from .functions import Sigmoid, Tanh

#: Bytes of a row block processed at a time: its passes then run in a core's L2 cache.
_BLOCK_BYTES = 256 << 10


def channels_last_matrix(x):
    """The (M, C) matrix behind x (N, C, ...) when channels are innermost in memory
    (free: a view), else None."""
    if x.ndim == 2:
        return x if x.flags.c_contiguous else None
    if x.ndim == 4:
        nhwc = x.transpose(0, 2, 3, 1)
        if nhwc.flags.c_contiguous:
            return nhwc.reshape(-1, x.shape[1])
    return None


def _as_input_layout(matrix, x):
    """An (M, C) result viewed in x's logical shape (channels-last for 4-D)."""
    if x.ndim == 2:
        return matrix
    n, c, h, w = x.shape
    return matrix.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _blocks(rows, width, itemsize):
    step = max(1, _BLOCK_BYTES // max(1, width * itemsize))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]


def _normalisation(x, matrix, weight, bias, running_mean, running_var, training, momentum,
                   eps):
    """(mean, 1/std, scale, shift) per channel, in x's dtype, with y = x * scale + shift;
    in training the batch's statistics, the running ones updated in place."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input (N, C, ...), got shape {x.shape}")
    if training:
        count = x.size // x.shape[1]
        if count <= 1:
            raise ValueError("Expected more than 1 value per channel when training, "
                             f"got input size {x.shape}")
        if matrix is not None:
            mean, var = BatchNorm._matrix_moments(matrix)
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            mean, var = x.mean(axis=axes), x.var(axis=axes)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm in evaluation mode needs running_mean and running_var")
        mean, var = running_mean, running_var
    dtype = x.dtype
    invstd = (1.0 / np.sqrt(var + eps)).astype(dtype, copy=False)
    mean = mean.astype(dtype, copy=False)
    scale = (invstd * weight).astype(dtype, copy=False)
    shift = (bias - mean * scale).astype(dtype, copy=False)
    return mean, invstd, scale, shift


def _scale_shift(matrix, scale, shift, out):
    """out = matrix * scale + shift, per column of the (M, C) matrix; out may be matrix."""
    loops = kernels.for_arrays(matrix)
    if loops is not None:
        loops.scale_shift(matrix, scale, shift, out)
        return out
    for rows in _blocks(len(matrix), matrix.shape[1], matrix.itemsize):
        block = out[rows]
        np.multiply(matrix[rows], scale, out=block)
        block += shift
    return out


def normalise_in_place(x, running_mean, running_var, weight, bias, eps, negate=False,
                       layer_bias=None, activation=None):
    """Evaluation's batch_norm of x (N, C, ...) with the running statistics, written
    over x: for an array nothing else holds (a layer's fresh output under
    no_grad), one pass and no new array. ``weight`` and ``bias`` (the affine
    parameters) may be None; ``layer_bias``, the bias of the layer before,
    still to be added to x, goes into the mean. With ``negate`` x holds minus
    the result (exact: the negated scale and shift). ``activation``, the
    engine's ``ReLU``, ``Tanh`` or ``Sigmoid`` (or None), is then written over
    it too: a sigmoid's exponential takes the negated result, and with the
    compiled loops and MKL a tanh or sigmoid runs in the same call, each core
    activating the rows it normalised (``numba_loops.normalise_running_activated``).
    The same values as ``BatchNorm.forward`` on x + layer_bias (and the
    activation after it), bit for bit.

    Example::

        >>> x = np.ones((4, 3), np.float32)
        >>> ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
        >>> normalise_in_place(x, ones, ones, ones, zeros, eps=0.0)[0]
        array([0., 0., 0.], dtype=float32)
    """
    sigmoid = activation is Sigmoid
    negate = negate or sigmoid
    matrix = channels_last_matrix(x)
    loops = kernels.for_arrays(matrix) if matrix is not None else None
    if loops is not None:
        dtype = x.dtype
        none = np.empty(0, dtype)
        vectors = [none if v is None else v
                   for v in (running_mean, running_var, weight, bias, layer_bias)]
        if [v.dtype for v in vectors] == [dtype] * 5:
            # The per-channel arithmetic and the pass in one compiled call.
            constants = dtype.type(eps), dtype.type(1), negate
            vml = (vector_math.for_loops("Exp" if sigmoid else "Tanh", matrix)
                   if sigmoid or activation is Tanh else None)
            if vml is not None:
                loops.normalise_running_activated(loops.THREADS, matrix, *vectors, *constants,
                                                  *vml, sigmoid)
                return x
            loops.normalise_running(matrix, *vectors, *constants)
            return _activated(x, activation)
    mean = running_mean if layer_bias is None else running_mean - layer_bias
    _, _, scale, shift = _normalisation(x, None, 1 if weight is None else weight,
                                        0 if bias is None else bias, mean, running_var,
                                        False, 0.0, eps)
    if negate:
        scale, shift = -scale, -shift
    if matrix is not None:
        _scale_shift(matrix, scale, shift, matrix)
        return _activated(x, activation)
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x *= scale.reshape(shape)
    x += shift.reshape(shape)
    return _activated(x, activation)


def _activated(x, activation):
    """x with ``activation`` (an engine Function class, or None) written over it; a
    Sigmoid's input holds its negation (``normalise_in_place``)."""
    if activation is None:
        return x
    if activation is Sigmoid:
        return activation.values(x, x, negated=True)
    return activation.values(x, x)


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel (axis 1).

    In training the statistics are the batch's own over every axis but 1
    (biased variance), and ``running_mean``/``running_var`` arrays, when given,
    are updated in place with ``momentum`` (unbiased variance), as PyTorch's
    kernel does. Otherwise the running statistics normalise.
    """

    fresh_grads = True

    def forward(self, x, weight, bias, running_mean=None, running_var=None,
                training=False, momentum=0.1, eps=1e-5):
        matrix = channels_last_matrix(x)
        mean, invstd, scale, shift = _normalisation(x, matrix, weight, bias, running_mean,
                                                    running_var, training, momentum, eps)
        if True in self.needs_input_grad:
            self.x, self.mean, self.invstd, self.weight = x, mean, invstd, weight
            self.training, self.axes = training, (0,) + tuple(range(2, x.ndim))
        if matrix is None:
            shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
            return x * scale.reshape(shape) + shift.reshape(shape)
        return _as_input_layout(_scale_shift(matrix, scale, shift, np.empty_like(matrix)), x)

    @staticmethod
    def _matrix_moments(matrix):
        """Per-column mean and biased variance of (M, C), the variance from the
        deviations (two passes: no cancellation when the mean dwarfs the spread);
        with the compiled loops one pass of shifted float64 sums."""
        loops = kernels.for_arrays(matrix)
        if loops is not None:
            mean, var = loops.column_moments(matrix)
            return mean.astype(matrix.dtype), np.maximum(var, 0).astype(matrix.dtype)
        rows = len(matrix)
        ones = np.ones(rows, dtype=matrix.dtype)
        mean = matmul(ones, matrix) / rows
        squares = np.zeros(matrix.shape[1], dtype=matrix.dtype)
        blocks = _blocks(rows, matrix.shape[1], matrix.itemsize)
        scratch = np.empty((blocks[0].stop - blocks[0].start, matrix.shape[1]), dtype=matrix.dtype)
        for block in blocks:
            dev = scratch[:block.stop - block.start]
            np.subtract(matrix[block], mean, out=dev)
            np.multiply(dev, dev, out=dev)
            squares += matmul(ones[:len(dev)], dev)
        return mean, squares / rows

    def backward(self, g):
        x, mean, invstd, weight = self.x, self.mean, self.invstd, self.weight
        matrix = channels_last_matrix(x)
        gmat = None if matrix is None else channels_last_matrix(g)
        if gmat is None:
            return self._backward_direct(g)
        rows, c = matrix.shape
        # With the compiled loops: one pass for both sums, one for gx.
        loops = kernels.for_arrays(matrix, gmat)
        blocks = _blocks(rows, c, matrix.itemsize)
        scratch = np.empty((blocks[0].stop - blocks[0].start, c), dtype=g.dtype)
        if loops is not None:
            sum_g, sum_gdev = (v.astype(g.dtype) for v in loops.batch_norm_sums(matrix, gmat, mean))
        else:
            sum_g, sum_gdev = self._matrix_sums(matrix, gmat, mean, blocks, scratch)
        sum_gxhat = invstd * sum_gdev  # sum(g * xhat)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            # gx = a*g + b*(x - mean) + const per channel. In training the batch
            # mean and variance depend on x: gx = a * (g - mean(g) - xhat *
            # mean(g * xhat)); otherwise b and const are zero.
            a = invstd * weight
            b = -a * invstd * sum_gxhat / rows if self.training else np.zeros_like(a)
            const = -a * sum_g / rows if self.training else np.zeros_like(a)
            a, b, const = (v.astype(g.dtype, copy=False) for v in (a, b, const))
            out = np.empty_like(gmat)
            if loops is not None:
                loops.batch_norm_input_grad(matrix, gmat, mean, a, b, const, self.training, out)
            else:
                for block in blocks:
                    dst = out[block]
                    np.multiply(gmat[block], a, out=dst)
                    if self.training:
                        part = scratch[:block.stop - block.start]
                        np.subtract(matrix[block], mean, out=part)
                        part *= b
                        dst += part
                        dst += const
            gx = _as_input_layout(out, x)
        if self.needs_input_grad[1]:
            gw = sum_gxhat.astype(weight.dtype, copy=False)
        if self.needs_input_grad[2]:
            gb = sum_g.astype(weight.dtype, copy=False)
        return gx, gw, gb

    @staticmethod
    def _matrix_sums(matrix, gmat, mean, blocks, scratch):
        """sum(g) and sum(g * (x - mean)) per column of (M, C), one block at a
        time (the deviation taken first, as PyTorch: x * g - mean * g would
        cancel)."""
        ones = np.ones(len(matrix), dtype=gmat.dtype)
        sum_g = np.zeros(matrix.shape[1], dtype=gmat.dtype)
        sum_gdev = np.zeros(matrix.shape[1], dtype=gmat.dtype)
        for block in blocks:
            g_block, part = gmat[block], scratch[:block.stop - block.start]
            sum_g += matmul(ones[:len(part)], g_block)
            np.subtract(matrix[block], mean, out=part)
            part *= g_block
            sum_gdev += matmul(ones[:len(part)], part)
        return sum_g, sum_gdev

    def _backward_direct(self, g):
        """Any layout: the same formulas as NumPy expressions over the reduced axes."""
        x, axes = self.x, self.axes
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        invstd = self.invstd.reshape(shape)
        xhat = (x - self.mean.reshape(shape)) * invstd
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gxhat = g * self.weight.reshape(shape)
            if self.training:
                gxhat = (gxhat - gxhat.mean(axis=axes, keepdims=True)
                         - xhat * (gxhat * xhat).mean(axis=axes, keepdims=True))
            gx = gxhat * invstd
        if self.needs_input_grad[1]:
            gw = (g * xhat).sum(axis=axes)
        if self.needs_input_grad[2]:
            gb = g.sum(axis=axes)
        return gx, gw, gb


class BatchNormMaxPool2d(Function):
    """max_pool2d(batch_norm(x)) (then relu, with ``relu=True``) as one node, through
    compiled loops (micrograd/kernels): ``mn.fuse`` uses it for a BatchNorm2d
    followed by a MaxPool2d (and a ReLU), on a channels-last x (a convolution's
    output).

    Apart, BatchNorm writes a normalised activation as large as x that pooling
    reads back, and backward writes a gradient as large as x (zero but at each
    window's winner) that BatchNorm reads twice. Here each window's cells are
    normalised as they are read (scale > 0 or not, the maximum is taken after
    the affine map), only the pooled output and the winning offset are
    written; backward takes BatchNorm's two sums straight from the pooled
    gradient and the winners' inputs, then writes the input gradient in one
    pass. Values as the two layers apart; gradients to float rounding (the sums
    accumulate in float64).

    x (N, C, H, W) -> (N, C, OH, OW), OH as MaxPool2d's.
    """

    fresh_grads = True

    def forward(self, x, weight, bias, running_mean=None, running_var=None, training=False,
                momentum=0.1, eps=1e-5, kernel=(2, 2), stride=(2, 2), padding=(0, 0),
                dilation=(1, 1), ceil_mode=False, relu=False, loops=None):
        from .pooling import pool_output_size

        matrix = channels_last_matrix(x)
        mean, invstd, scale, shift = _normalisation(x, matrix, weight, bias, running_mean,
                                                    running_var, training, momentum, eps)
        n, c, h, w = x.shape
        geometry = (*kernel, *stride, *padding, *dilation)
        oh = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
        ow = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
        x4 = matrix.reshape(n, h, w, c)
        out = np.empty((n, oh, ow, c), dtype=x.dtype)
        which = np.empty(out.shape, dtype=np.uint8 if kernel[0] * kernel[1] <= 256 else np.uint16)
        loops.batch_norm_max_pool(x4, scale, shift, out, which, *geometry, relu)
        if True in self.needs_input_grad:
            self.x4, self.which, self.loops, self.geometry = x4, which, loops, geometry
            self.out = out if relu else None
            self.mean, self.invstd, self.weight, self.training = mean, invstd, weight, training
        return out.transpose(0, 3, 1, 2)

    def backward(self, g):
        x4, mean, invstd = self.x4, self.mean, self.invstd
        kh, kw, sh, sw, ph, pw, dh, dw = self.geometry
        g4 = np.ascontiguousarray(g.transpose(0, 2, 3, 1), dtype=x4.dtype)
        if self.out is not None:
            g4 = g4 * (self.out > 0)  # the rectifier's mask, on the pooled cells
        # Windows that tile the input (MaxPool2d(k)): the loops in memory order.
        tiled = ((sh, sw, ph, pw, dh, dw) == (kh, kw, 0, 0, 1, 1)
                 and g4.shape[1] * kh <= x4.shape[1] and g4.shape[2] * kw <= x4.shape[2])
        if tiled:
            sum_g, sum_gdev = self.loops.batch_norm_max_pool_sums_tiled(
                g4, self.which, x4, mean, kh, kw)
        else:
            sum_g, sum_gdev = self.loops.batch_norm_max_pool_sums(
                g4, self.which, x4, mean, kw, sh, sw, ph, pw, dh, dw)
        dtype = x4.dtype
        sum_g = sum_g.astype(dtype)
        sum_gxhat = invstd * sum_gdev.astype(dtype)  # sum(g * xhat)
        rows = x4.size // x4.shape[3]
        a = (invstd * self.weight).astype(dtype)
        if self.training:
            # As BatchNorm.backward: a*g + b*(x - mean) + const per channel.
            b = (-a * invstd * sum_gxhat / rows).astype(dtype)
            const = (-a * sum_g / rows).astype(dtype)
        else:
            b = const = np.zeros_like(a)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx4 = np.empty_like(x4)
            if tiled:
                self.loops.batch_norm_max_pool_input_grad_tiled(g4, self.which, x4, mean, a, b,
                                                                const, gx4, kh, kw)
            else:
                self.loops.batch_norm_max_pool_input_grad(g4, self.which, x4, mean, a, b, const,
                                                          gx4, kw, sh, sw, ph, pw, dh, dw)
            gx = gx4.transpose(0, 3, 1, 2)
        if self.needs_input_grad[1]:
            gw = sum_gxhat.astype(self.weight.dtype, copy=False)
        if self.needs_input_grad[2]:
            gb = sum_g.astype(self.weight.dtype, copy=False)
        return gx, gw, gb
