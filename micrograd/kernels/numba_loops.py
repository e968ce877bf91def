"""Compiled loops (numba), in the order of their callers: the optimiser updates
(optim/), the convolution's im2col and col2im (engine/conv.py), max pooling
and ReLU + average pooling (engine/pooling.py, engine/conv.py), Tanh's and
Sigmoid's backward (engine/functions.py), BatchNorm's statistics and
BatchNorm + MaxPool2d (engine/batchnorm.py), and the loops that call MKL's
vector math on each of their threads (kernels/vector_math.py: evaluation's
BatchNorm + tanh or sigmoid, the sigmoid). Image arrays are channels-last
(N, H, W, C) unless a loop says otherwise.

Each optimiser loop mirrors, operation for operation, the NumPy code of its
optimiser in ``micrograd/optim``, whose docstrings give the formulas; the
scalars arrive in the arrays' dtype, as NumPy casts a Python float when it
multiplies a float32 array.

``error_model="numpy"``: no Python-style zero-division checks, which would
keep LLVM from vectorising the loops. No ``fastmath``: the float operations
stay in the written order, so the bits match the NumPy passes.
"""
import functools
import os
import types

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

_jit = numba.njit(cache=True, error_model="numpy", nogil=True)
if not {"NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"} & set(os.environ):
    # OpenMP's threads first: beside MKL's own OpenMP workers they ran the
    # parallel loops fastest (TBB, which the mkl wheel brings, 3% slower;
    # numba's own workqueue 20%: bench/README.md).
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
_parallel_jit = numba.njit(cache=True, error_model="numpy", nogil=True, parallel=True)

#: Bytes of a loop's largest array from which a per-sample loop spreads its
#: samples over the cores (the loops' own threshold, kernels.MIN_BYTES, as
#: well: in the suite's steps 256 kB to 4 MB was the fastest choice on every
#: network, bench/README.md). Tests set it to 0 to run the parallel code.
PARALLEL_MIN_BYTES = 256 << 10
#: Threads the parallel loops run on (numba's default: the cores).
THREADS = numba.config.NUMBA_NUM_THREADS


#: A reduction loop over a matrix's rows keeps the sums of at most this many
#: blocks of rows apart (``_in_order``), each at least 64 rows: enough blocks
#: to share out even for a 256-row batch; the split depends on the row count
#: only, never on the threads.
_BLOCKS = 64


@_jit
def _row_blocks(rows):
    """(rows per block, blocks) for a reduction over ``rows`` rows."""
    size = max(64, (rows + _BLOCKS - 1) // _BLOCKS)
    return size, (rows + size - 1) // size


@_jit
def _in_order(parts):
    """Column sums of (blocks, C) partial sums, block after block: the same bits
    whether the blocks were summed on one core or several (a sum over the whole
    batch, accumulated by one thread in the threads' order, would not be)."""
    total = np.zeros(parts.shape[1], dtype=np.float64)
    for b in range(parts.shape[0]):
        for k in range(parts.shape[1]):
            total[k] += parts[b, k]
    return total


class _PerSample:
    """A loop whose outermost ``numba.prange`` runs over samples (or row blocks),
    compiled twice: as a plain loop, and with its samples spread over the cores
    (numba's ``parallel=True``) for arrays of ``PARALLEL_MIN_BYTES`` or more,
    where a memory-bound pass over a large activation runs about twice as fast
    on two cores. Each sample's outputs are written by one thread only, in the
    same order, so both give the same bits (tests/test_kernels.py)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        # A copy under its own name: numba's disk cache is keyed by the function's
        # name, and the two compilations must not load each other's code.
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel")
        twin.__qualname__ = fn.__qualname__ + "_parallel"
        self.serial, self.parallel = _jit(fn), _parallel_jit(twin)

    def __call__(self, *args):
        for a in args:  # a plain loop: called between large products, each us shows
            if type(a) is np.ndarray and a.nbytes >= PARALLEL_MIN_BYTES:
                return self.parallel(*args)
        return self.serial(*args)


class _Elementwise:
    """An optimiser's update, one elementwise loop over flat arrays, compiled as
    is, and for a parameter of ``PARALLEL_MIN_BYTES`` or more run by
    ``pieces(threads, ...)``: the same loop on one contiguous piece of the arrays
    per thread, at once. (A ``prange`` written around the loop's own body kept
    LLVM from vectorising it; called on slices, the plain loop stays
    vectorised.) Each value is updated by the same operations either way: the
    same bits."""

    def __init__(self, serial, pieces):
        functools.update_wrapper(self, serial.py_func)
        self.serial, self.parallel = serial, pieces

    def __call__(self, param, *args):
        if param.nbytes >= PARALLEL_MIN_BYTES:
            return self.parallel(numba.get_num_threads(), param, *args)
        return self.serial(param, *args)


@_jit
def _piece(k, pieces, size):
    """(start, stop) of the k-th of ``pieces`` contiguous pieces of ``size`` values."""
    return k * size // pieces, (k + 1) * size // pieces


@_jit
def _adam(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, amsgrad, one_minus_beta1, beta2,
         sqrt_one_minus_beta2, eps, step_size):
    """``max_exp_avg_sq`` is read and kept only with ``amsgrad``."""
    p, g, m, v = param.ravel(), grad.ravel(), exp_avg.ravel(), exp_avg_sq.ravel()
    vmax = max_exp_avg_sq.ravel()
    for i in range(p.size):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_beta1
        m[i] = mi
        t = gi * sqrt_one_minus_beta2
        vi = v[i] * beta2 + t * t
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        p[i] -= mi / (np.sqrt(vi) + eps) * step_size


@_jit
def _sgd(param, grad, buf, lr, weight_decay, momentum, damp, nesterov, first):
    """``buf`` is ignored when momentum is 0; ``first``: the step that starts it."""
    p, g, b = param.ravel(), grad.ravel(), buf.ravel()
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        if momentum != 0:
            if first:
                bi = gi
            else:
                bi = b[i] * momentum + damp * gi
            b[i] = bi
            gi = gi + momentum * bi if nesterov else bi
        p[i] -= lr * gi


@_jit
def _rmsprop(param, grad, square_avg, alpha, one_minus_alpha, lr, eps, weight_decay):
    """Not centred, no momentum (the other variants take the NumPy code)."""
    p, g, s = param.ravel(), grad.ravel(), square_avg.ravel()
    for i in range(p.size):
        gi = g[i]
        if weight_decay != 0:
            gi = gi + weight_decay * p[i]
        si = s[i] * alpha + one_minus_alpha * gi * gi
        s[i] = si
        p[i] -= lr * gi / (np.sqrt(si) + eps)


@_parallel_jit
def _adam_pieces(pieces, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, amsgrad,
                 one_minus_beta1, beta2, sqrt_one_minus_beta2, eps, step_size):
    p, g, m, v = param.ravel(), grad.ravel(), exp_avg.ravel(), exp_avg_sq.ravel()
    vmax = max_exp_avg_sq.ravel()
    for k in numba.prange(pieces):
        lo, hi = _piece(k, pieces, p.size)
        _adam(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], vmax[lo:hi], amsgrad,
              one_minus_beta1, beta2, sqrt_one_minus_beta2, eps, step_size)


@_parallel_jit
def _sgd_pieces(pieces, param, grad, buf, lr, weight_decay, momentum, damp, nesterov, first):
    p, g, b = param.ravel(), grad.ravel(), buf.ravel()
    for k in numba.prange(pieces):
        lo, hi = _piece(k, pieces, p.size)
        _sgd(p[lo:hi], g[lo:hi], b[lo:hi], lr, weight_decay, momentum, damp, nesterov, first)


@_parallel_jit
def _rmsprop_pieces(pieces, param, grad, square_avg, alpha, one_minus_alpha, lr, eps,
                    weight_decay):
    p, g, s = param.ravel(), grad.ravel(), square_avg.ravel()
    for k in numba.prange(pieces):
        lo, hi = _piece(k, pieces, p.size)
        _rmsprop(p[lo:hi], g[lo:hi], s[lo:hi], alpha, one_minus_alpha, lr, eps, weight_decay)


adam = _Elementwise(_adam, _adam_pieces)
sgd = _Elementwise(_sgd, _sgd_pieces)
rmsprop = _Elementwise(_rmsprop, _rmsprop_pieces)


@_PerSample
def im2col(x, cols, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, bias):
    """The im2col matrix of the unpadded channels-last ``x`` (N, H, W, C) into
    ``cols`` (N*OH*OW, kh*kw*C [+ 1]): rows (n, oh, ow), columns (i, j, c), zero
    where a window reads the padding (so no padded copy of x is made), and a
    last column of ones with ``bias``."""
    n, h, w, c = x.shape
    zero = cols.dtype.type(0)
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                r = (s * out_h + oh) * out_w + ow
                col = 0
                for i in range(kh):
                    y = oh * sh - ph + i * dh
                    for j in range(kw):
                        xx = ow * sw - pw + j * dw
                        if 0 <= y < h and 0 <= xx < w:
                            for k in range(c):
                                cols[r, col + k] = x[s, y, xx, k]
                        else:
                            for k in range(c):
                                cols[r, col + k] = zero
                        col += c
                if bias:
                    cols[r, col] = 1


@_jit
def _inside(size, stride, offset, bound):
    """(lo, hi): the outputs o in [0, size) whose input o * stride + offset lies in
    [0, bound) (a window tap that reads the image rather than its padding)."""
    lo = 0 if offset >= 0 else min(size, (-offset + stride - 1) // stride)
    hi = 0 if bound - offset <= 0 else min(size, (bound - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


@_PerSample
def nchw_im2col(x, cols_t, kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w, bias):
    """The transposed im2col matrix of the unpadded NCHW-contiguous ``x``
    (N, C, H, W) into ``cols_t`` (C*kh*kw [+ 1], N*OH*OW): rows (c, i, j), columns
    (n, oh, ow), zero where a window reads the padding (so no padded copy of
    x is made), and a last row of ones with ``bias``. Each row's run of OW
    values reads every ``sw``-th input value of one image row: an input with
    one to four channels (a batch of images), whose channels-last runs would
    be C values long."""
    n, c, h, w = x.shape
    zero, one = cols_t.dtype.type(0), cols_t.dtype.type(1)
    per_sample = out_h * out_w
    for s in numba.prange(n):
        first = s * per_sample
        for k in range(c):
            for i in range(kh):
                ylo, yhi = _inside(out_h, sh, i * dh - ph, h)
                for j in range(kw):
                    row = cols_t[(k * kh + i) * kw + j, first:first + per_sample]
                    xlo, xhi = _inside(out_w, sw, j * dw - pw, w)
                    for oy in range(out_h):
                        run = row[oy * out_w:(oy + 1) * out_w]
                        if oy < ylo or oy >= yhi:
                            for ox in range(out_w):
                                run[ox] = zero
                            continue
                        image_row = x[s, k, oy * sh + i * dh - ph]
                        for ox in range(xlo):
                            run[ox] = zero
                        for ox in range(xlo, xhi):
                            run[ox] = image_row[ox * sw + j * dw - pw]
                        for ox in range(xhi, out_w):
                            run[ox] = zero
        if bias:
            ones = cols_t[c * kh * kw, first:first + per_sample]
            for t in range(per_sample):
                ones[t] = one


@_PerSample
def col2im_add(parts, gx, out_h, out_w, kh, kw, sh, sw, dh, dw):
    """Add the im2col-shaped gradient ``parts`` (rows (n, oh, ow), columns (i, j, c))
    onto the padded channels-last input gradient ``gx`` (N, Hp, Wp, C): each
    row's kh*kw blocks go to the input cells its window read."""
    n, c = gx.shape[0], gx.shape[3]
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                row = (s * out_h + oh) * out_w + ow
                for i in range(kh):
                    y = oh * sh + i * dh
                    for j in range(kw):
                        x = ow * sw + j * dw
                        base = (i * kw + j) * c
                        for k in range(c):
                            gx[s, y, x, k] += parts[row, base + k]


@_PerSample
def max_pool(xp, out, which, kh, kw, sh, sw, dh, dw):
    """Max pooling of the padded channels-last ``xp`` (N, Hp, Wp, C) into ``out``
    (N, OH, OW, C), with ``which`` window offset (i * kw + j) won: the first of
    tied maxima, as MaxPool2d's NumPy passes record it (NaN propagates)."""
    n, out_h, out_w, c = out.shape
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                y0, x0 = oh * sh, ow * sw
                for k in range(c):
                    out[s, oh, ow, k] = xp[s, y0, x0, k]
                    which[s, oh, ow, k] = 0
                for i in range(kh):
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        y, x, offset = y0 + i * dh, x0 + j * dw, i * kw + j
                        for k in range(c):
                            v = xp[s, y, x, k]
                            if v > out[s, oh, ow, k]:
                                out[s, oh, ow, k] = v
                                which[s, oh, ow, k] = offset
                            elif v != v:
                                out[s, oh, ow, k] = v


@_PerSample
def max_pool_backward(g, which, gx, kw, sh, sw, dh, dw):
    """Add each output cell's gradient ``g`` onto the input cell that won its
    window in ``gx`` (N, Hp, Wp, C), zeroed by the caller."""
    n, out_h, out_w, c = g.shape
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for k in range(c):
                    offset = which[s, oh, ow, k]
                    i, j = offset // kw, offset % kw
                    gx[s, oh * sh + i * dh, ow * sw + j * dw, k] += g[s, oh, ow, k]


@_PerSample
def max_pool_backward_disjoint(g, which, gx, kh, kw):
    """``max_pool_backward`` for windows that tile the input (stride = kernel, no
    dilation): every covered cell of ``gx`` is written once, in memory order,
    with its window's gradient or 0; the caller zeroes only the cells no window
    covers."""
    n, out_h, out_w, c = g.shape
    for s in numba.prange(n):
        for oh in range(out_h):
            for i in range(kh):
                y = oh * kh + i
                for ow in range(out_w):
                    for j in range(kw):
                        x, offset = ow * kw + j, i * kw + j
                        for k in range(c):
                            gx[s, y, x, k] = g[s, oh, ow, k] if which[s, oh, ow, k] == offset else 0


@_PerSample
def relu_avg_pool(xp, out, kh, kw, sh, sw, scale):
    """avg_pool2d(relu(x)) of the padded channels-last ``xp`` into ``out``: each
    window's rectified values summed in ReLUAvgPool2d's offset order, then scaled."""
    n, out_h, out_w, c = out.shape
    zero = out.dtype.type(0)
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                y0, x0 = oh * sh, ow * sw
                for k in range(c):
                    v = xp[s, y0, x0, k]
                    out[s, oh, ow, k] = v if not v <= 0 else zero
                for i in range(kh):
                    for j in range(kw):
                        if i == 0 and j == 0:
                            continue
                        for k in range(c):
                            v = xp[s, y0 + i, x0 + j, k]
                            if not v <= 0:
                                out[s, oh, ow, k] += v
                for k in range(c):
                    out[s, oh, ow, k] *= scale


@_PerSample
def relu_avg_pool_backward(g, xp, gx, kh, kw, sh, sw, scale):
    """Each output cell's share ``g * scale`` added onto its window's cells of
    ``gx`` (zeroed by the caller), then kept only where the input was positive.
    A sample's shares are added offset by offset, as the NumPy passes add them,
    so each cell sums its shares in the same order: the same bits."""
    n, out_h, out_w, c = g.shape
    zero = gx.dtype.type(0)
    for s in numba.prange(n):
        for i in range(kh):
            for j in range(kw):
                for oh in range(out_h):
                    for ow in range(out_w):
                        y, x = oh * sh + i, ow * sw + j
                        for k in range(c):
                            gx[s, y, x, k] += g[s, oh, ow, k] * scale
        for y in range(gx.shape[1]):
            for x in range(gx.shape[2]):
                for k in range(c):
                    if not xp[s, y, x, k] > 0:
                        gx[s, y, x, k] = zero


@_PerSample
def activation_backward(g, out, gx, sigmoid):
    """gx = g * (1 - out * out) (tanh), or g * (out * (1 - out)) with ``sigmoid``,
    over 4-D arrays of any strides (a convolution's cropped gradient included)
    visited in C order. Callers pass channels-last views with adjacent axes
    merged where the strides allow (``kernels.merged``): the longer the last
    axis, the better LLVM vectorises the loop; the first three axes are spread
    over the cores."""
    one = out.dtype.type(1)
    n0, n1, n2, n3 = out.shape
    for t in numba.prange(n0 * n1 * n2):
        i, j, k = t // (n1 * n2), (t // n2) % n1, t % n2
        for m in range(n3):
            o = out[i, j, k, m]
            d = (one - o) * o if sigmoid else one - o * o
            gx[i, j, k, m] = g[i, j, k, m] * d


@_PerSample
def batch_norm_max_pool(x, scale, shift, out, which, kh, kw, sh, sw, ph, pw, dh, dw, relu):
    """max_pool2d(x * scale + shift) of the channels-last ``x`` (N, H, W, C) into
    ``out`` (N, OH, OW, C) without writing the normalised activation: each
    window's cells are normalised as they are read. Cells in the padding (or
    past the input under ceil_mode) never win; ``which`` records the winning
    offset as MaxPool2d does (the first of tied maxima; NaN propagates). With
    ``relu`` the pooled values are rectified too (np.maximum(v, 0): NaN stays)."""
    n, h, w, c = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    lowest = -np.inf
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for k in range(c):
                    out[s, oh, ow, k] = lowest
                    which[s, oh, ow, k] = 0
                for i in range(kh):
                    y = oh * sh - ph + i * dh
                    if y < 0 or y >= h:
                        continue
                    for j in range(kw):
                        xx = ow * sw - pw + j * dw
                        if xx < 0 or xx >= w:
                            continue
                        offset = i * kw + j
                        for k in range(c):
                            v = x[s, y, xx, k] * scale[k] + shift[k]
                            if v > out[s, oh, ow, k]:
                                out[s, oh, ow, k] = v
                                which[s, oh, ow, k] = offset
                            elif v != v:
                                out[s, oh, ow, k] = v
                if relu:
                    for k in range(c):
                        if out[s, oh, ow, k] < 0:
                            out[s, oh, ow, k] = 0


@_jit
def _winner(offset, oh, ow, kw, sh, sw, ph, pw, dh, dw):
    """The unpadded (y, x) of the cell that won pooled cell (oh, ow), from the
    window offset MaxPool2d recorded (outside the input when none did)."""
    return oh * sh - ph + (offset // kw) * dh, ow * sw - pw + (offset % kw) * dw


@_PerSample
def batch_norm_max_pool_sums(g, which, x, mean, kw, sh, sw, ph, pw, dh, dw):
    """Per channel, sum(g) and sum(g * (x_winner - mean)) over the pooled cells,
    in float64: the two sums BatchNorm's backward needs, read straight from the
    pooled gradient (each cell's gradient goes to its window's winner only).
    Each sample's sums apart, then added in sample order (``_in_order``)."""
    n, out_h, out_w, c = g.shape
    part_g = np.zeros((n, c), dtype=np.float64)
    part_gdev = np.zeros((n, c), dtype=np.float64)
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for k in range(c):
                    y, xx = _winner(which[s, oh, ow, k], oh, ow, kw, sh, sw, ph, pw, dh, dw)
                    if y < 0 or y >= x.shape[1] or xx < 0 or xx >= x.shape[2]:
                        continue  # no cell won (a NaN first in a padded window)
                    gk = g[s, oh, ow, k]
                    part_g[s, k] += gk
                    part_gdev[s, k] += gk * (x[s, y, xx, k] - mean[k])
    return _in_order(part_g), _in_order(part_gdev)


@_PerSample
def batch_norm_max_pool_input_grad(g, which, x, mean, a, b, const, gx, kw, sh, sw, ph, pw,
                                   dh, dw):
    """gx = b * (x - mean) + const everywhere, plus a * g at each window's winner:
    BatchNorm's input gradient for a gradient that MaxPool2d sends to winners only."""
    n, h, w, c = x.shape
    for s in numba.prange(n):
        for y in range(h):
            for xx in range(w):
                for k in range(c):
                    gx[s, y, xx, k] = b[k] * (x[s, y, xx, k] - mean[k]) + const[k]
        out_h, out_w = g.shape[1], g.shape[2]
        for oh in range(out_h):
            for ow in range(out_w):
                for k in range(c):
                    y, xx = _winner(which[s, oh, ow, k], oh, ow, kw, sh, sw, ph, pw, dh, dw)
                    if y < 0 or y >= h or xx < 0 or xx >= w:
                        continue
                    gx[s, y, xx, k] += a[k] * g[s, oh, ow, k]


@_PerSample
def batch_norm_max_pool_sums_tiled(g, which, x, mean, kh, kw):
    """``batch_norm_max_pool_sums`` for windows that tile the input (stride =
    kernel, no padding, dilation or ceil_mode), in memory order: each input cell
    visited once, its window's gradient taken if it won, so the loop vectorises
    over the channels."""
    n, h, w, c = x.shape
    out_h, out_w = g.shape[1], g.shape[2]
    part_g = np.zeros((n, c), dtype=np.float64)
    part_gdev = np.zeros((n, c), dtype=np.float64)
    zero = x.dtype.type(0)
    for s in numba.prange(n):
        for oh in range(out_h):
            for ow in range(out_w):
                for k in range(c):
                    part_g[s, k] += g[s, oh, ow, k]
        for y in range(out_h * kh):
            oh, i = y // kh, y % kh
            for xx in range(out_w * kw):
                ow, offset = xx // kw, i * kw + xx % kw
                for k in range(c):
                    gk = g[s, oh, ow, k] if which[s, oh, ow, k] == offset else zero
                    part_gdev[s, k] += gk * (x[s, y, xx, k] - mean[k])
    return _in_order(part_g), _in_order(part_gdev)


@_PerSample
def batch_norm_max_pool_input_grad_tiled(g, which, x, mean, a, b, const, gx, kh, kw):
    """gx = a * g at the winners + b * (x - mean) + const, for tiling windows, in one
    pass over x in memory order (cells no window covers get no g term)."""
    n, h, w, c = x.shape
    out_h, out_w = g.shape[1], g.shape[2]
    for s in numba.prange(n):
        for y in range(h):
            oh, i = y // kh, y % kh
            for xx in range(w):
                ow, offset = xx // kw, i * kw + xx % kw
                covered = oh < out_h and ow < out_w
                for k in range(c):
                    v = b[k] * (x[s, y, xx, k] - mean[k]) + const[k]
                    if covered and which[s, oh, ow, k] == offset:
                        v += a[k] * g[s, oh, ow, k]
                    gx[s, y, xx, k] = v


@_PerSample
def column_moments(matrix):
    """Per-column mean and biased variance of (M, C) in one pass, accumulated in
    float64 about the first row (shifted sums: no cancellation when the mean
    dwarfs the spread, as long as the first row is a typical one); each block
    of rows (``_row_blocks``) apart, then added in order."""
    rows, c = matrix.shape
    first = np.empty(c, dtype=np.float64)
    for k in range(c):
        first[k] = matrix[0, k]
    size, blocks = _row_blocks(rows)
    total = np.zeros((blocks, c), dtype=np.float64)
    squares = np.zeros((blocks, c), dtype=np.float64)
    for b in numba.prange(blocks):
        for r in range(b * size, min(rows, (b + 1) * size)):
            for k in range(c):
                d = matrix[r, k] - first[k]
                total[b, k] += d
                squares[b, k] += d * d
    mean = _in_order(total) / rows
    return first + mean, _in_order(squares) / rows - mean * mean


@_PerSample
def scale_shift(matrix, scale, shift, out):
    """BatchNorm's forward on (M, C): out = matrix * scale + shift per column (the
    NumPy code's multiply then add, so the same bits)."""
    rows, c = matrix.shape
    for r in numba.prange(rows):
        for k in range(c):
            out[r, k] = matrix[r, k] * scale[k] + shift[k]


@_PerSample
def reciprocal_of_one_plus(values):
    """values = 1 / (1 + values), in place: the sigmoid's last step after its
    exponential, one pass instead of NumPy's add and reciprocal (in the
    array's dtype: the same two roundings, so the same bits). A 4-D view of
    any strides visited in C order, as ``activation_backward``'s."""
    one = values.dtype.type(1)
    n0, n1, n2, n3 = values.shape
    for t in numba.prange(n0 * n1 * n2):
        i, j, k = t // (n1 * n2), (t // n2) % n1, t % n2
        for m in range(n3):
            values[i, j, k, m] = one / (one + values[i, j, k, m])


@_jit
def _running_scale_shift(c, mean, var, weight, bias, layer_bias, eps, one, negate):
    """Evaluation's BatchNorm as (scale, shift) per column, from the running
    statistics: s = 1 / sqrt(var + eps) * weight and t = bias - (mean -
    layer_bias) * s, both negated with ``negate``. ``eps``, ``one`` (1) and
    every vector in the output's dtype; a vector of size 0 is absent (no affine
    weight or bias, no layer bias). The operations of
    ``batchnorm._normalisation`` in their order, so the same bits."""
    scale = np.empty(c, dtype=mean.dtype)
    shift = np.empty(c, dtype=mean.dtype)
    # One operation per loop: each vectorises (a loop with branches inside took
    # microseconds for 512 columns).
    for k in range(c):
        scale[k] = one / np.sqrt(var[k] + eps)
    if weight.size:
        for k in range(c):
            scale[k] = scale[k] * weight[k]
    for k in range(c):
        shift[k] = mean[k]
    if layer_bias.size:
        for k in range(c):
            shift[k] = shift[k] - layer_bias[k]
    if bias.size:
        for k in range(c):
            shift[k] = bias[k] - shift[k] * scale[k]
    else:
        zero = one - one
        for k in range(c):
            shift[k] = zero - shift[k] * scale[k]
    if negate:
        for k in range(c):
            scale[k] = -scale[k]
            shift[k] = -shift[k]
    return scale, shift


@_PerSample
def normalise_running(matrix, mean, var, weight, bias, layer_bias, eps, one, negate):
    """Evaluation's BatchNorm written over the (M, C) matrix, with the running
    statistics (``_running_scale_shift``): matrix = matrix * s + t, as
    ``scale_shift``, so the same bits as the NumPy code, in one call instead of
    a dozen small NumPy ones."""
    scale, shift = _running_scale_shift(matrix.shape[1], mean, var, weight, bias, layer_bias,
                                        eps, one, negate)
    for r in numba.prange(matrix.shape[0]):
        for k in range(matrix.shape[1]):
            matrix[r, k] = matrix[r, k] * scale[k] + shift[k]


@intrinsic
def _call_vml(typingctx, function, n, source, target, mode):
    """Calls the C function at the address ``function``,
    ``void f(int64 n, const T *source, T *target, int64 mode)``: a VML function
    (``vector_math``), its array arguments given as addresses."""
    def codegen(context, builder, signature, args):
        int64, pointer = ir.IntType(64), ir.IntType(8).as_pointer()
        kind = ir.FunctionType(ir.VoidType(), [int64, pointer, pointer, int64])
        values = [context.cast(builder, value, numba_type, numba.int64)
                  for value, numba_type in zip(args, signature.args)]
        f = builder.inttoptr(values[0], kind.as_pointer())
        builder.call(f, [values[1], builder.inttoptr(values[2], pointer),
                         builder.inttoptr(values[3], pointer), values[4]])
        return context.get_dummy_value()

    return numba.void(function, n, source, target, mode), codegen


@intrinsic
def _call_int(typingctx, function, value):
    """Calls the C function at the address ``function``, ``int f(int value)``
    (MKL's ``MKL_Set_Num_Threads_Local``)."""
    def codegen(context, builder, signature, args):
        int32 = ir.IntType(32)
        f = builder.inttoptr(context.cast(builder, args[0], signature.args[0], numba.int64),
                             ir.FunctionType(int32, [int32]).as_pointer())
        return builder.call(f, [context.cast(builder, args[1], signature.args[1], numba.int32)])

    return numba.int32(function, value), codegen


@_jit
def _vml(source, target, function, threads_local, mode, sigmoid):
    """target = f(source) (1-D contiguous pieces, which may be one) by the VML
    function at the address ``function``, on the calling thread alone
    (``threads_local``: MKL's per-thread thread count, held at 1 meanwhile: the
    caller is one of a parallel loop's threads); with ``sigmoid`` (f the
    exponential) then 1 / (1 + target), ``reciprocal_of_one_plus``'s
    operations, while the piece is in this core's cache."""
    if target.size == 0:
        return
    previous = _call_int(threads_local, 1)
    _call_vml(function, target.size, source.ctypes.data, target.ctypes.data, mode)
    _call_int(threads_local, previous)
    if sigmoid:
        one = target.dtype.type(1)
        # From 0 over the piece's own size: indices LLVM knows are not negative,
        # so the loop vectorises (over lo..hi of the whole array it did not).
        for i in range(target.size):
            target[i] = one / (one + target[i])


@_jit
def _negate(source, target):
    """target = -source over 1-D pieces (indices from 0: the loop vectorises)."""
    for i in range(target.size):
        target[i] = -source[i]


@_jit
def _aligned_piece(k, pieces, size):
    """``_piece`` with inner bounds on multiples of 64 values (whole cache lines: two
    threads never write one line)."""
    lo, hi = _piece(k, pieces, (size + 63) // 64)
    return min(lo * 64, size), min(hi * 64, size)


@_parallel_jit
def normalise_running_activated(pieces, matrix, mean, var, weight, bias, layer_bias, eps, one,
                                negate, function, threads_local, mode, sigmoid):
    """``normalise_running`` on a C-contiguous (M, C) matrix, then the activation
    by the VML function at ``function`` (``_vml``: tanh, or the
    exponential then 1 / (1 + e) with ``sigmoid``), each core's block of rows
    normalised and activated in one go while it is in that core's cache,
    instead of a compiled pass on both cores and then VML's on both cores.
    The same operations per value, so the same bits."""
    rows, c = matrix.shape
    scale, shift = _running_scale_shift(c, mean, var, weight, bias, layer_bias, eps, one, negate)
    flat = matrix.reshape(rows * c)
    for p in numba.prange(pieces):
        lo, hi = _piece(p, pieces, rows)
        for r in range(lo, hi):
            for k in range(c):
                matrix[r, k] = matrix[r, k] * scale[k] + shift[k]
        piece = flat[lo * c:hi * c]
        _vml(piece, piece, function, threads_local, mode, sigmoid)


@_parallel_jit
def sigmoid(pieces, source, target, negated, exp, threads_local, mode):
    """target = 1 / (1 + e^-source) (e^source when ``negated``: source holds minus
    the input) over 1-D arrays, which may be one: each core's piece negated,
    exponentiated by VML (``_vml``) and finished while in its cache,
    instead of three passes on both cores one after another. The operations of
    NumPy's negative, VML's exp and ``reciprocal_of_one_plus``, so the same bits."""
    for p in numba.prange(pieces):
        lo, hi = _aligned_piece(p, pieces, target.size)
        piece = target[lo:hi]
        if negated:
            _vml(source[lo:hi], piece, exp, threads_local, mode, True)
        else:
            _negate(source[lo:hi], piece)
            _vml(piece, piece, exp, threads_local, mode, True)


@_PerSample
def batch_norm_sums(matrix, g, mean):
    """BatchNorm's backward sums on (M, C): per column sum(g) and
    sum(g * (x - mean)), accumulated in float64, in one pass over both (each
    block of rows (``_row_blocks``) apart, then added in order)."""
    rows, c = matrix.shape
    size, blocks = _row_blocks(rows)
    part_g = np.zeros((blocks, c), dtype=np.float64)
    part_gdev = np.zeros((blocks, c), dtype=np.float64)
    for b in numba.prange(blocks):
        for r in range(b * size, min(rows, (b + 1) * size)):
            for k in range(c):
                gk = g[r, k]
                part_g[b, k] += gk
                part_gdev[b, k] += gk * (matrix[r, k] - mean[k])
    return _in_order(part_g), _in_order(part_gdev)


@_PerSample
def batch_norm_input_grad(matrix, g, mean, a, b, const, training, gx):
    """gx = a*g + b*(x - mean) + const per column of (M, C) in training (the
    batch statistics' terms), else a*g; in one pass."""
    rows, c = matrix.shape
    for r in numba.prange(rows):
        if training:
            for k in range(c):
                gx[r, k] = g[r, k] * a[k] + (matrix[r, k] - mean[k]) * b[k] + const[k]
        else:
            for k in range(c):
                gx[r, k] = g[r, k] * a[k]

