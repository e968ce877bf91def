"""Fused convolution and pooling primitives, NCHW outside and channels-last inside.

These are single graph nodes on purpose: written as compositions of small ops
they would make thousands of nodes per batch.

Tensors keep PyTorch's logical shape (N, C, H, W), but these primitives store
their outputs channels-last: the array is a transposed view of (N, H, W, C)
memory, as PyTorch's ``channels_last`` format. NumPy's element-wise ufuncs
(ReLU, ...) keep that layout, so the next conv or pool gets its (N, H, W, C)
array back as a free view. It pays twice: the GEMM's output rows
(n, oh, ow) x columns o already are (N, OH, OW, O), so no transpose follows the
matrix multiply; and the im2col and col2im copies move runs of kw*C and OW*C
contiguous values instead of runs of kw and OW (NumPy's strided loops cost
per run, so long runs are what makes them fast).

Convolution is im2col, a sliding-window view copied once into a
(N*OH*OW, kh*kw*C + 1) matrix (the extra column of ones carries the bias),
then one GEMM; ``crop`` limits it to the output rows and columns a pooling
layer reads. A 1 x 1 convolution skips the copy (its im2col matrix is the
input's). The input gradient is col2im: with numba, one wide GEMM and a
compiled loop that adds each window's gradient where it belongs
(micrograd/kernels); without, one narrow GEMM and one strided add per kernel
offset. Pooling (pooling.py) reads the kh*kw strided slices of the input
directly (no window copy at all). Two fused nodes cover the common CNN runs:
``ReLUAvgPool2d`` and ``ConvReLUAvgPool2d`` (convolution, ReLU and average
pooling in cache-sized chunks, for convolutions with few input channels).
"""
from __future__ import annotations

import numpy as np

from micrograd import kernels
from micrograd.kernels.gemm import matmul

from .autograd import Function
# Pooling primitives and window helpers are re-exported for code that imported
# them from here before they had modules of their own.
from .pooling import AvgPool2d, MaxPool2d, _Pool2d, _samples_per_chunk  # noqa: F401
from .windows import (  # noqa: F401
    _crop, _nchw, _nhwc, _padded_nhwc, _pair, _window_slices, check_kernel_fits, conv_output_size,
)


#: Size of the im2col matrix built at a time when it need not be kept for backward:
#: larger pieces leave the cache (a 256-image batch's matrix is 30 MB), smaller
#: ones make GEMMs of a few thousand rows, which two OpenBLAS threads run slower.
#: The measurements are in bench/README.md.
_COLS_CHUNK_BYTES = 4 << 20
#: Window gradients (rows x kh*kw*C) made at a time for the compiled col2im.
_COL2IM_CHUNK_BYTES = 4 << 20


def _im2col(windows, bias, transposed=None):
    """Copy a (..., kh, kw, C) window view into the GEMM operand: a matrix of one
    row per leading index (an output pixel, in C order) and one column per
    (i, j, c), plus a column of ones when there is a bias (the GEMM then adds
    the bias, and the weight-gradient GEMM returns the bias gradient as its
    last column, for free).

    The copy is fast when it moves long contiguous runs. Channels-last rows hold
    runs of kw*C values; with one input channel (a grayscale first layer) that is
    only kw, so the matrix is then built ``transposed`` (the default for C = 1),
    where a run is a stretch of the last leading axis, and handed out as its
    (F-ordered) transpose.
    """
    lead, (kh, kw, c) = windows.shape[:-3], windows.shape[-3:]
    rows, k = int(np.prod(lead)), kh * kw * c
    width = k + 1 if bias else k
    if c == 1 if transposed is None else transposed:
        cols_t = np.empty((width,) + lead, dtype=windows.dtype)
        axes = tuple(range(len(lead), len(lead) + 3)) + tuple(range(len(lead)))
        cols_t[:k].reshape((kh, kw, c) + lead)[...] = windows.transpose(axes)
        if bias:
            cols_t[k] = 1
        return cols_t.reshape(width, rows).T
    cols = np.empty((rows, width), dtype=windows.dtype)
    cols[:, :k].reshape(lead + (kh, kw, c))[...] = windows
    if bias:
        cols[:, k] = 1
    return cols


def _conv_geometry(x, w, stride, padding, dilation=(1, 1)):
    """Check a convolution's input x (N, C, H, W) against w (O, C, kh, kw); the
    geometry (kh, kw, sh, sw, ph, pw), the padded size (Hp, Wp) and the output
    size (OH, OW) (of the kernel dilated by (dh, dw))."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = dilation
    c, kh, kw = w.shape[1:]
    if x.ndim != 4 or x.shape[1] != c:
        raise ValueError(
            f"conv2d expects input (N, {c}, H, W) for weight {w.shape}, got {x.shape}"
        )
    hp, wp = x.shape[2] + 2 * ph, x.shape[3] + 2 * pw
    check_kernel_fits(hp, wp, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out_size = conv_output_size(hp, kh, sh, 0, dh), conv_output_size(wp, kw, sw, 0, dw)
    return (kh, kw, sh, sw, ph, pw), (hp, wp), out_size


def _conv_input(x, w, stride, padding, dilation=(1, 1)):
    """``_conv_geometry``'s checks, and x's padded channels-last array: (that array,
    the geometry (kh, kw, sh, sw, ph, pw), the output size (OH, OW))."""
    geometry, _, out_size = _conv_geometry(x, w, stride, padding, dilation)
    return _padded_nhwc(x, *geometry[4:]), geometry, out_size


def _nchw_im2col(x, geometry, dilation, out_size, bias, start=0, stop=None):
    """The im2col matrix of samples start:stop of an NCHW-contiguous x (an input
    batch), columns ordered (c, i, j) as w.reshape(O, -1), built transposed: each
    (c, i, j) row is an (n, OH, OW) block copied with runs of OW values, where a
    channels-last copy would move runs of kw*C (3 x 3 x 3: 9 values). With the
    compiled loops, ``nchw_im2col`` copies from the unpadded x, samples on
    both cores: a strided first layer's runs read every other value, which
    NumPy's copy does one value at a time."""
    kh, kw, sh, sw, ph, pw = geometry
    dh, dw = dilation
    (oh, ow), x = out_size, x[start:stop]
    n, c, h, w = x.shape
    k = c * kh * kw
    cols_t = np.empty((k + 1 if bias else k, n * oh * ow), dtype=x.dtype)
    loops = kernels.for_arrays(cols_t, x)
    if loops is not None:  # no padded copy, samples on both cores
        loops.nchw_im2col(x, cols_t, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, bias)
        return cols_t.T
    if ph or pw:
        padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x
        x = padded
    s0, s1, s2, s3 = x.strides
    windows = np.lib.stride_tricks.as_strided(
        x, (c, kh, kw, n, oh, ow), (s1, s2 * dh, s3 * dw, s0, s2 * sh, s3 * sw), writeable=False)
    cols_t[:k].reshape(c, kh, kw, n, oh, ow)[...] = windows
    if bias:
        cols_t[k] = 1
    return cols_t.T


#: Largest input channel count for which an NCHW input (a batch of images,
#: not a convolution's channels-last output) is unfolded straight from NCHW.
NCHW_IM2COL_MAX_CHANNELS = 4


#: Fewest input channels for which the compiled im2col runs: its window runs
#: are C values long, and with fewer NumPy's strided copy of the padded input
#: was as fast (bench/README.md).
COMPILED_IM2COL_MIN_CHANNELS = 8


def _compiled_im2col(x, kh, kw):
    """The compiled loops when they build x's im2col matrix: a channels-last x
    (a layer's output) of at least ``COMPILED_IM2COL_MIN_CHANNELS`` channels and
    ``kernels.MIN_BYTES``, a kernel larger than 1 x 1, and more than one thread
    (on one, NumPy's copy of the padded input is faster)."""
    if x.shape[1] < COMPILED_IM2COL_MIN_CHANNELS or (kh, kw) == (1, 1):
        return None
    loops = kernels.for_arrays(x.transpose(0, 2, 3, 1))
    return loops if loops is not None and loops.THREADS > 1 else None


def _weight_matrix(w, b):
    """w (O, C, kh, kw) as (O, kh*kw*C), columns ordered as im2col's, with b as a
    last column when there is a bias."""
    o = w.shape[0]
    wmat = w.transpose(0, 2, 3, 1).reshape(o, -1)
    if b is None:
        return wmat
    return np.concatenate([wmat, b.reshape(o, 1).astype(wmat.dtype, copy=False)], axis=1)


def _add_bias(out, b):
    """out (rows, O) += b in place, with the rows regrouped so that NumPy's inner
    loop runs over about a thousand values instead of O (a per-row loop over 16
    or 32 values costs as much as the GEMM before it)."""
    rows, o = out.shape
    reps = max(1, 1024 // o)
    while reps > 1 and rows % reps:
        reps //= 2
    if reps == 1:
        out += b
        return
    wide = out.reshape(-1, reps * o)
    np.add(wide, np.tile(b.astype(out.dtype, copy=False), reps), out=wide)


class Conv2d(Function):
    """y[n, o] = sum_c x[n, c] (*) w[o, c] + b[o]; x (N, C, H, W), w (O, C, kh, kw)."""

    fresh_grads = True

    def forward(self, x, w, b=None, stride=1, padding=0, crop=None, dilation=(1, 1)):
        """``crop=(h, w)`` computes only the top-left h x w corner of the output
        (for a pooling layer that never reads the last rows and columns).
        ``dilation=(dh, dw)`` spaces the kernel taps dh rows and dw columns apart:
        only the window view's kernel-axis strides change, so the im2col copy
        and the GEMM are those of a dense kernel."""
        dh, dw = self.dilation = dilation
        geometry, (hp, wp), (oh, ow) = _conv_geometry(x, w, stride, padding, dilation)
        kh, kw, sh, sw = geometry[:4]
        n, o, c = len(x), w.shape[0], w.shape[1]
        if crop is not None:
            oh, ow = min(oh, crop[0]), min(ow, crop[1])
        self.w, self.padded_shape, self.geometry = w, (n, hp, wp, c), geometry
        self.nchw_cols = (x.flags.c_contiguous and c <= NCHW_IM2COL_MAX_CHANNELS
                          and (kh, kw) != (1, 1))
        if self.nchw_cols:
            return self._forward_nchw(x, w, b, geometry, (oh, ow))
        bias = b is not None
        loops = _compiled_im2col(x, kh, kw)
        if loops is not None:
            # Straight from the unpadded channels-last x, samples on both cores.
            self.pointwise = False
            nhwc, pads = x.transpose(0, 2, 3, 1), geometry[4:]

            def im2col(start, stop):
                cols = np.empty(((stop - start) * oh * ow, kh * kw * c + bias), dtype=x.dtype)
                loops.im2col(nhwc[start:stop], cols, kh, kw, sh, sw, *pads, dh, dw, oh, ow, bias)
                return cols
        else:
            xp = _padded_nhwc(x, *geometry[4:])
            s0, s1, s2, s3 = xp.strides
            windows = np.lib.stride_tricks.as_strided(
                xp, (n, oh, ow, kh, kw, c), (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3),
                writeable=False)
            self.pointwise = (kh, kw, sh, sw) == (1, 1, 1, 1) and xp.shape[1:3] == (oh, ow)

            def im2col(start, stop):
                return _im2col(windows[start:stop], bias)
        if self.pointwise:
            # A 1 x 1 convolution is one GEMM on the (N*H*W, C) matrix behind the
            # channels-last input: no window copy, the bias added in place.
            self.cols = xp.reshape(-1, c)
            out = matmul(self.cols, w.reshape(o, c).T)
            if b is not None:
                _add_bias(out, b)
            return _nchw(out.reshape(n, oh, ow, o))
        # im2col, then one GEMM whose output rows (n, oh, ow) x columns o already
        # are the channels-last result.
        wmat = _weight_matrix(w, b)
        if self.needs_input_grad[1] or b is not None and self.needs_input_grad[2]:
            # Kept for the weight gradient.
            self.cols = im2col(0, n)
            out = matmul(self.cols, wmat.T)
        else:
            # Nothing to keep (evaluation, frozen weights): build the matrix a
            # batch-piece at a time, so that its memory does not grow with the
            # batch (a 1000-image batch would need 140 MB here).
            out = np.empty((n * oh * ow, o), dtype=np.result_type(x, wmat))
            step = max(1, _COLS_CHUNK_BYTES // (oh * ow * wmat.shape[1] * x.itemsize))
            for start in range(0, n, step):
                rows = slice(start * oh * ow, min(start + step, n) * oh * ow)
                matmul(im2col(start, min(start + step, n)), wmat.T, out=out[rows])
        return _nchw(out.reshape(n, oh, ow, o))

    def _forward_nchw(self, x, w, b, geometry, out_size):
        """Conv2d.forward for an NCHW-contiguous input with few channels: the im2col
        matrix unfolded straight from NCHW (``_nchw_im2col``), columns (c, i, j)."""
        n, o = len(x), w.shape[0]
        oh, ow = out_size
        self.pointwise = False
        wmat = w.reshape(o, -1)
        if b is not None:
            wmat = np.concatenate([wmat, b.reshape(o, 1).astype(wmat.dtype, copy=False)], axis=1)
        if self.needs_input_grad[1] or b is not None and self.needs_input_grad[2]:
            self.cols = _nchw_im2col(x, geometry, self.dilation, out_size, b is not None)
            out = matmul(self.cols, wmat.T)
        else:
            out = np.empty((n * oh * ow, o), dtype=np.result_type(x, wmat))
            step = max(1, _COLS_CHUNK_BYTES // (oh * ow * wmat.shape[1] * x.itemsize))
            for start in range(0, n, step):
                rows = slice(start * oh * ow, min(start + step, n) * oh * ow)
                cols = _nchw_im2col(x, geometry, self.dilation, out_size, b is not None,
                                    start, start + step)
                matmul(cols, wmat.T, out=out[rows])
        return _nchw(out.reshape(n, oh, ow, o))

    def backward(self, g):
        kh, kw, sh, sw, ph, pw = self.geometry
        n, o, oh, ow = g.shape
        c = self.padded_shape[3]
        g2 = _nhwc(g).reshape(n * oh * ow, o)  # free: g is channels-last when it comes from us
        has_bias = len(self.needs_input_grad) > 2
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx = _crop(self._input_grad(g2, n, oh, ow), ph, pw)
        if self.pointwise and (self.needs_input_grad[1] or has_bias and self.needs_input_grad[2]):
            if self.needs_input_grad[1]:
                gw = matmul(self.cols.T, g2).T.reshape(o, c, 1, 1)
            if has_bias and self.needs_input_grad[2]:
                gb = matmul(np.ones(len(g2), dtype=g2.dtype), g2)
        elif self.needs_input_grad[1] or has_bias and self.needs_input_grad[2]:
            # One GEMM gives the weight gradient and, from the ones column, the bias's.
            # (cols.T @ g2).T rather than g2.T @ cols: the same product, faster
            # through OpenBLAS for either layout of cols (bench/README.md).
            gw_full = matmul(self.cols.T, g2).T
            k = kh * kw * c
            if self.needs_input_grad[1] and self.nchw_cols:
                gw = gw_full[:, :k].reshape(o, c, kh, kw)  # columns (c, i, j)
            elif self.needs_input_grad[1]:
                gw = gw_full[:, :k].reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
            if has_bias and self.needs_input_grad[2]:
                gb = gw_full[:, k]
        return (gx, gw, gb) if has_bias else (gx, gw)

    def _input_grad(self, g2, n, oh, ow):
        """col2im: the gradient of the padded input, (N, Hp, Wp, C).

        A 1 x 1 convolution's is one GEMM; with numba, ``_input_grad_compiled``.
        Otherwise one small GEMM per kernel offset (i, j), added at once onto the input
        cells that offset reads. Against one big GEMM whose (N*OH*OW, kh*kw*C)
        result is then scattered, each add moves OW*C contiguous values instead
        of C, and the (N*OH*OW, C) product is still in cache when it is added.
        """
        kh, kw, sh, sw = self.geometry[:4]
        if self.pointwise:
            o, c = self.w.shape[:2]
            return matmul(g2, self.w.reshape(o, c)).reshape(self.padded_shape)
        loops = kernels.for_arrays(g2, self.w)
        if loops is not None:
            return self._input_grad_compiled(loops, g2, n, oh, ow)
        w_offsets = np.ascontiguousarray(self.w.transpose(2, 3, 0, 1))  # (kh, kw, O, C)
        c = w_offsets.shape[3]
        dtype = np.result_type(g2, w_offsets)
        part = np.empty((n * oh * ow, c), dtype=dtype)
        slices = _window_slices(kh, kw, sh, sw, oh, ow, *self.dilation)
        if (sh, sw) == (1, 1):
            # The first offset's block is contiguous: written, not added, and
            # only the cells it does not reach are zeroed (one pass less).
            gx = np.empty(self.padded_shape, dtype=dtype)
            gx[:, oh:] = 0
            gx[:, :oh, ow:] = 0
            matmul(g2, w_offsets[0, 0], out=part)
            gx[:, :oh, :ow] = part.reshape(n, oh, ow, c)
            first = 1
        else:
            gx = np.zeros(self.padded_shape, dtype=dtype)
            first = 0
        for k in range(first, len(slices)):
            rows, cols = slices[k]
            matmul(g2, w_offsets[k // kw, k % kw], out=part)
            gx[:, rows, cols] += part.reshape(n, oh, ow, c)
        return gx

    def _input_grad_compiled(self, loops, g2, n, oh, ow):
        """col2im with a compiled loop (micrograd/kernels): one GEMM per group of
        samples gives each output pixel's (kh*kw*C) window gradient, whose blocks
        the loop adds onto the input cells they came from. One wide GEMM instead
        of kh*kw narrow ones, and no strided whole-array adds."""
        kh, kw, sh, sw = self.geometry[:4]
        wmat = _weight_matrix(self.w, None)  # (O, kh*kw*C), im2col's column order
        gx = np.zeros(self.padded_shape, dtype=np.result_type(g2, wmat))
        rows = oh * ow  # per sample
        step = max(1, _COL2IM_CHUNK_BYTES // (rows * wmat.shape[1] * gx.itemsize))
        for start in range(0, n, step):
            stop = min(n, start + step)
            parts = matmul(g2[start * rows:stop * rows], wmat)
            loops.col2im_add(parts, gx[start:stop], oh, ow, kh, kw, sh, sw, *self.dilation)
        return gx


class ReLUAvgPool2d(_Pool2d):
    """avg_pool2d(relu(x)) as one node (``mn.fuse`` uses it for ReLU then AvgPool2d).

    Apart, ReLU writes a whole new activation that pooling then reads back, and
    in backward pooling writes a gradient that ReLU reads back to mask: on the
    first layer of a small CNN those are four passes over 5.5 MB that does not
    fit in cache, for almost no arithmetic. Fused, each pass over the input
    goes a few samples at a time, so the rectified window slices are summed
    (and the gradient masked) while they are still in cache, and the rectified
    activation is never stored: the mask is rebuilt from the input kept for
    backward (x > 0 exactly where relu(x) > 0). Zero padding is unchanged by
    ReLU, so it counts in the mean as in AvgPool2d.
    """

    def forward(self, x, kernel_size=2, stride=None, padding=0):
        xp = self._setup(x, kernel_size, stride, padding)
        first, *rest = self.slices
        n = xp.shape[0]
        out = np.empty(xp[(slice(None), *first)].shape, dtype=xp.dtype)
        # Overlapping windows read each input cell several times as strided
        # slices whose runs are C values: a compiled loop (micrograd/kernels)
        # sums each window at once instead.
        self.loops = kernels.for_arrays(xp) if self.stride != self.kernel else None
        if self.loops is not None:
            self.loops.relu_avg_pool(xp, out, *self.kernel, *self.stride,
                                     xp.dtype.type(1.0 / len(self.slices)))
            if self.needs_input_grad[0]:
                self.xp = xp
            return _nchw(out)
        step = _samples_per_chunk(xp)
        scratch = np.empty_like(out[:step])
        for start in range(0, n, step):
            part = out[start:start + step]
            rectified = scratch[:len(part)]
            np.maximum(xp[(slice(start, start + step), *first)], 0, out=part)
            for rows, cols in rest:
                np.maximum(xp[start:start + step, rows, cols], 0, out=rectified)
                part += rectified
            part *= 1.0 / len(self.slices)
        if self.needs_input_grad[0]:
            self.xp = xp
        return _nchw(out)

    def backward(self, g):
        (kh, kw), (sh, sw) = self.kernel, self.stride
        xp = self.xp
        g = g.transpose(0, 2, 3, 1)  # the channels-last array when g comes from us
        n, oh, ow, c = g.shape
        scale = 1.0 / (kh * kw)
        if self.loops is not None:
            gx = np.zeros(xp.shape, dtype=g.dtype)
            self.loops.relu_avg_pool_backward(np.ascontiguousarray(g), xp, gx, kh, kw, sh, sw,
                                              gx.dtype.type(scale))
            return (_crop(gx, *self.padding),)
        if (sh, sw) != (kh, kw):
            # Overlapping windows: AvgPool2d's sum of shares, then the mask.
            gx = np.zeros(xp.shape, dtype=g.dtype)
            share = np.multiply(g, scale, order="C")
            for rows, cols in self.slices:
                gx[:, rows, cols] += share
            gx *= xp > 0
            return (_crop(gx, *self.padding),)
        # Non-overlapping windows: each input cell gets its window's share (one
        # broadcast into the (N, OH, kh, OW, kw, C) blocks, as AvgPool2d.backward),
        # then its mask, a few samples at a time so the second pass hits cache.
        # order='C': the scaled copy is the channels-last array, whatever g's layout
        # (after Flatten it is (N, C, H, W)): the chunks below then read it in order.
        share = np.multiply(g, scale, order="C")
        gx = np.empty(xp.shape, dtype=g.dtype)
        # Cells that no window reaches (when kh does not divide the height) get
        # a zero gradient: only those rows and columns are zeroed, not all of gx.
        gx[:, oh * kh:] = 0
        gx[:, :, ow * kw:] = 0
        blocks = gx[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
        step = _samples_per_chunk(xp)
        mask = np.empty((step,) + xp.shape[1:], dtype=bool)
        for start in range(0, n, step):
            stop = min(start + step, n)
            m, part = mask[:stop - start], gx[start:stop]
            blocks[start:stop] = share[start:stop, :, None, :, None, :]
            # Masked while still in cache, over whole contiguous samples (the
            # zeroed border included: a flat loop, faster than the 6-D blocks).
            np.greater(xp[start:stop], 0, out=m)
            np.multiply(part, m, out=part)
        return (_crop(gx, *self.padding),)


#: Pre-activation of fused conv + ReLU + pooling computed at a time: small enough
#: that its ReLU, pooling and gradient passes run in a core's L2 cache.
_FUSED_CHUNK_BYTES = 384 << 10


class ConvReLUAvgPool2d(Function):
    """avg_pool2d(relu(conv2d(x, w, b)), k) as one node, for non-overlapping windows.

    x (N, C, H, W), w (O, C, kh, kw), b (O,) -> (N, O, OH // ph, OW // pw), where
    (OH, OW) is the convolution's output and (ph, pw) the pooling window
    (stride = window, no pooling padding). ``mn.fuse`` uses it for a Conv2d,
    ReLU, AvgPool2d run whose convolution has few input channels.

    Apart, the convolution writes its whole (N, OH, OW, O) output to memory,
    ReLU and pooling read it back, and backward writes and reads a gradient of
    the same size twice more: on the first layer of a small CNN that array is
    5.5 MB for a batch of 64, and those passes cost more than the convolution.
    Fused, the GEMM runs a few samples at a time, so each chunk's passes run in
    cache and only the pooled output reaches memory:

    - the im2col rows are ordered (n, a, b, py, px) for the output pixel
      (py*ph + a, px*pw + b): per sample, each window offset (a, b) is one
      contiguous (py, px, O) block of the GEMM's result, so ReLU is one flat
      pass and pooling one sum over the block axis; positions that no window
      covers are never computed;
    - the mean's 1/(ph*pw) is folded into the weights (relu(s*z) = s*relu(z)
      for s > 0; exact for power-of-two windows);
    - only the im2col matrix is kept for backward (the pre-activation is not):
      each chunk's GEMM is redone there, which for a convolution with few
      input channels costs less than storing and reloading its output; the
      ReLU mask and the pooling shares are applied block by block in cache,
      and the chunk's weight and input gradients accumulate.
    """

    fresh_grads = True

    def forward(self, x, w, b=None, stride=1, padding=0, pool=2, out_size=None):
        """``out_size=(h, w)`` computes only the top-left h x w corner of the
        pooled output (for a next layer that never reads the rest)."""
        xp, geometry, (oh, ow) = _conv_input(x, w, stride, padding)
        kh, kw, sh, sw = geometry[:4]
        qh, qw = _pair(pool)
        n, o, c = len(xp), w.shape[0], w.shape[1]
        poh, pow_ = oh // qh, ow // qw
        if poh < 1 or pow_ < 1:
            raise ValueError(f"avg_pool2d window {(qh, qw)} is larger than its input {(oh, ow)}")
        if out_size is not None:
            poh, pow_ = min(poh, out_size[0]), min(pow_, out_size[1])
        s0, s1, s2, s3 = xp.strides
        # The window read for output pixel (py*qh + a, px*qw + b), as (n, a, b, py, px, i, j, c).
        windows = np.lib.stride_tricks.as_strided(
            xp, (n, qh, qw, poh, pow_, kh, kw, c),
            (s0, s1 * sh, s2 * sw, s1 * sh * qh, s2 * sw * qw, s1, s2, s3), writeable=False)
        # Kept for backward; under no_grad built a group of samples at a time
        # instead (a whole 256-image batch's would be 6 MB for a first layer).
        self.windows = windows
        self.cols = _im2col(windows, b is not None) if True in self.needs_input_grad else None
        wmat = _weight_matrix(w, b)
        # C order: OpenBLAS runs these small GEMMs twice as fast as with the
        # transposed (F-ordered) view.
        self.wmat_t = np.multiply(wmat.T, 1.0 / (qh * qw), dtype=wmat.dtype, order="C")
        self.w, self.padded_shape, self.has_bias = w, xp.shape, b is not None
        self.geometry = geometry + (qh, qw, poh, pow_)
        out = np.empty((n, poh, pow_, o), dtype=np.result_type(xp, wmat))
        flat = out.reshape(n, -1)
        zeros = None
        for start, stop, _, blocks in self._chunks(out.dtype):
            if zeros is None:
                # ReLU against an array of zeros: NumPy's SIMD loop for two
                # arrays runs twice as fast in cache as its loop with a scalar.
                zeros = np.zeros_like(blocks)
            np.maximum(blocks, zeros[:len(blocks)], out=blocks)
            np.add.reduce(blocks, axis=1, out=flat[start:stop])
        if True not in self.needs_input_grad:
            del self.cols, self.wmat_t, self.w
        del self.windows
        return _nchw(out)

    def _chunks(self, dtype):
        """Yield (start, stop, cols, blocks) per chunk of samples: their im2col rows
        and scaled pre-activations, (stop - start, qh*qw, poh*pow*O), in a reused buffer."""
        wmat_t = self.wmat_t
        qh, qw, poh, pow_ = self.geometry[6:]
        n, rows = self.padded_shape[0], qh * qw * poh * pow_  # rows per sample
        itemsize = np.dtype(dtype).itemsize
        step = max(1, _FUSED_CHUNK_BYTES // (rows * wmat_t.shape[1] * itemsize))
        # The kept im2col matrix, or (under no_grad) one built for a group of
        # chunks at a time, at most _COLS_CHUNK_BYTES.
        group = n if self.cols is not None else step * max(
            1, _COLS_CHUNK_BYTES // (step * rows * wmat_t.shape[0] * itemsize))
        buffer = np.empty((min(step, n) * rows, wmat_t.shape[1]), dtype=dtype)
        for first in range(0, n, group):
            if self.cols is not None:
                cols = self.cols
            else:
                cols = _im2col(self.windows[first:first + group], self.has_bias)
            for start in range(first, min(first + group, n), step):
                stop = min(start + step, n)
                part = cols[(start - first) * rows:(stop - first) * rows]
                pre = buffer[:len(part)]
                matmul(part, wmat_t, out=pre)
                yield start, stop, part, pre.reshape(stop - start, qh * qw, -1)

    def backward(self, g):
        kh, kw, sh, sw, ph, pw, qh, qw = self.geometry[:8]
        n, o = g.shape[:2]
        # Each pooled cell's gradient, per sample one (1, poh*pow*O) row that
        # broadcasts over the window offsets; the 1/(qh*qw) share is applied
        # once to the results.
        g = _nhwc(g).reshape(n, 1, -1)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        need_b = self.has_bias and self.needs_input_grad[2]
        gx = np.zeros(self.padded_shape, dtype=g.dtype) if need_x else None
        gw_full = None
        for start, stop, cols, blocks in self._chunks(g.dtype):
            # The gradient reaching the pre-activation: the pooled cell's
            # gradient where the ReLU was open, zero elsewhere.
            np.greater(blocks, 0, out=blocks)
            np.multiply(blocks, g[start:stop], out=blocks)
            gpre = blocks.reshape(len(cols), o)
            if need_w or need_b:
                part = matmul(cols.T, gpre)  # (kh*kw*C [+ 1], O): weight and bias gradients
                gw_full = part if gw_full is None else np.add(gw_full, part, out=gw_full)
            if need_x:
                self._add_input_grad(gx[start:stop], gpre)
        scale = 1.0 / (qh * qw)
        gw = gb = None
        if gw_full is not None:
            gw_full *= scale
            k = kh * kw * self.padded_shape[3]
            if need_w:
                gw = gw_full[:k].T.reshape(o, kh, kw, -1).transpose(0, 3, 1, 2)
            if need_b:
                gb = gw_full[k].copy()
        if need_x:
            gx *= scale
            gx = _crop(gx, ph, pw)
        return (gx, gw, gb) if self.has_bias else (gx, gw)

    def _add_input_grad(self, gx, gpre):
        """col2im of one chunk: each window offset's rows add onto the input cells they read."""
        kh, kw, sh, sw, _, _, qh, qw, poh, pow_ = self.geometry
        c = self.w.shape[1]
        wmat = _weight_matrix(self.w, None)
        parts = matmul(gpre, wmat).reshape(len(gx), qh, qw, poh, pow_, kh, kw, c)
        for a in range(qh):
            for b in range(qw):
                for i in range(kh):
                    for j in range(kw):
                        y0, x0 = a * sh + i, b * sw + j
                        gx[:, y0:y0 + (poh - 1) * qh * sh + 1:qh * sh,
                           x0:x0 + (pow_ - 1) * qw * sw + 1:qw * sw] += parts[:, a, b, :, :, i, j]
