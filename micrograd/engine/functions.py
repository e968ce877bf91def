"""Primitive ops: each forward on NumPy arrays beside its local gradient.

Every differentiable method of ``Tensor`` routes to one of these, or is built
from them (``mean`` is ``sum`` times ``1/n``). ``backward`` receives the
gradient of the output and returns one gradient per input, already reduced to
that input's shape, or None where the input needs none.
"""
from __future__ import annotations

import numpy as np

from micrograd import kernels
from micrograd.kernels import vector_math
from micrograd.kernels.gemm import matmul

from .autograd import Function, unbroadcast

# ----------------------------------------------------------------- binary ops


class Add(Function):
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)


class Sub(Function):
    # A primitive rather than a + (-b): it is on every hot path (losses, updates)
    # and one node is cheaper than two.
    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        gb = unbroadcast(-g, sb) if self.needs_input_grad[1] else None
        return unbroadcast(g, sa), gb


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    # A primitive rather than a * b**-1, which loses precision for large b.
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(g * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            # d(a^b)/db = a^b log a; PyTorch defines it as 0 where a == 0.
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0).astype(self.out.dtype)
            gb = unbroadcast(g * self.out * log_a, b.shape)
        return ga, gb


class MatMul(Function):
    """``a @ b`` for 1-D, 2-D and batched operands, with NumPy's broadcasting."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return matmul(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        # Lift 1-D operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        g2 = g.reshape(batch + (a2.shape[-2], b2.shape[-1]))
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = unbroadcast(matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """``x @ w.T + b`` with x (..., in), w (out, in), b (out,) or absent.

    Fused rather than built from permute, matmul and add: one node instead of
    three, the bias added in place, and the weight's gradient computed
    directly in its (out, in) layout instead of as a transposed copy.
    """

    fresh_grads = True

    @staticmethod
    def values(x, w, b=None):
        """x @ w.T + b as a new array."""
        out = _rows_times(x, w.T)
        if b is not None:
            if np.result_type(out, b) == out.dtype:
                out += b
            else:
                out = out + b
        return out

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        return self.values(x, w, b)

    def backward(self, g):
        x, w = self.x, self.w
        out_features, in_features = w.shape
        g2 = g.reshape(-1, out_features)
        gx = _rows_times(g, w) if self.needs_input_grad[0] else None
        gw = matmul(g2.T, x.reshape(-1, in_features)) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        # ones @ g2 sums the rows as a GEMV, several times faster than sum(axis=0).
        gb = matmul(np.ones(len(g2), dtype=g2.dtype), g2) if self.needs_input_grad[2] else None
        return gx, gw, gb


class FlattenLinear(Linear):
    """``x.flatten(1) @ w.T + b`` for an image batch x (N, C, H, W), w (out, C*H*W).

    A convolution's or pooling layer's output is channels-last in memory, and
    flattening it in PyTorch's (c, h, w) order is a copy of the activation (and
    of its gradient back). Reordering the weight's columns to (h, w, c) instead
    gives the same product from the channels-last (N, H*W*C) matrix, a view; the
    input gradient then comes back channels-last, as the layers before want
    it. Chosen when the weight is the smaller copy (N * C*H*W > out * C*H*W,
    a batch larger than ``out``); otherwise x is flattened as Flatten would.
    """

    def forward(self, x, w, b=None):
        n, c, h, wd = self.shape = x.shape
        nhwc = x.transpose(0, 2, 3, 1)
        self.permuted = nhwc.flags.c_contiguous and w.size < x.size
        if not self.permuted:
            return super().forward(x.reshape(n, -1), w, b)
        w_hwc = w.reshape(len(w), c, h, wd).transpose(0, 2, 3, 1).reshape(len(w), -1)
        return super().forward(nhwc.reshape(n, -1), w_hwc, b)

    def backward(self, g):
        gx, gw, *gb = super().backward(g)
        n, c, h, w = self.shape
        if self.permuted:
            if gx is not None:
                gx = gx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
            if gw is not None:
                gw = gw.reshape(len(gw), h, w, c).transpose(0, 3, 1, 2).reshape(len(gw), -1)
        elif gx is not None:
            gx = gx.reshape(self.shape)
        return (gx, gw, *gb)


def _rows_times(x, m):
    """``x @ m`` for x (..., k) and a matrix m: one GEMM on x's (rows, k) matrix."""
    if x.ndim == 2:
        return matmul(x, m)
    return matmul(x.reshape(-1, x.shape[-1]), m).reshape(x.shape[:-1] + (m.shape[1],))


# ------------------------------------------------------------------ unary ops


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, a):
        self.out = np.exp(a)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(Function):
    def forward(self, a):
        self.a = a
        return np.log(a)

    def backward(self, g):
        return (g / self.a,)


class Sqrt(Function):
    def forward(self, a):
        self.out = np.sqrt(a)
        return self.out

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(Function):
    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return (g * np.sign(self.a),)


def _compiled_activation_backward(node, g, sigmoid):
    """Tanh's or Sigmoid's input gradient in one compiled pass (micrograd/kernels;
    the same bits as their NumPy code), in g when the node owns it; None when
    the loops do not take these arrays."""
    loops = kernels.for_any_strides(node.out, g) if g.ndim <= 4 else None
    if loops is None:
        return None
    gx = g if node.grad_is_owned else np.empty_like(node.out)
    out, g_view, gx_view = kernels.merged(node.out, g, gx)
    loops.activation_backward(g_view, out, gx_view, sigmoid)
    return gx


class Tanh(Function):
    fresh_grads = True

    @staticmethod
    def values(a, out=None):
        """tanh(a) into ``out`` (a new array, or a itself: in place)."""
        result = vector_math.tanh(a, out)  # MKL on both cores, for a large activation
        return np.tanh(a, out=out) if result is None else result

    def forward(self, a):
        self.out = self.values(a)
        return self.out

    def backward(self, g):
        gx = _compiled_activation_backward(self, g, sigmoid=False)
        if gx is not None:
            return (gx,)
        if np.ndim(self.out) == 0:  # a scalar: no array to write into
            return (g * (1 - self.out * self.out),)
        # g * (1 - out^2), in one scratch array (or in g when it is ours alone).
        d = np.multiply(self.out, self.out)
        np.subtract(1, d, out=d)
        return (np.multiply(g, d, out=g if self.grad_is_owned else d),)


class Sigmoid(Function):
    fresh_grads = True

    @staticmethod
    def values(a, out=None, negated=False):
        """sigmoid(a) into ``out`` (a new array, or a itself: in place); of -a when
        ``negated`` (a then holds the negation of the input, as a BatchNorm
        before it can write at no cost)."""
        # 1 / (1 + e^-x): where e^-x overflows to inf the result is the correct
        # 0, and where x is very negative the quotient keeps its relative
        # precision, so no slower stable form (logaddexp) is needed.
        s = vector_math.sigmoid(a, out, negated)  # MKL and a compiled loop, per core
        if s is not None:
            return s
        e = vector_math.exp(a, out, negate=not negated)  # MKL on both cores
        if e is None:
            with np.errstate(over="ignore"):
                if negated:
                    e = np.exp(a, out=out)
                else:
                    e = np.negative(a, out=out)
                    e = np.exp(e, out=e if type(e) is np.ndarray else None)  # 0-d: a scalar
        if type(e) is not np.ndarray:
            return 1 / (1 + e)
        loops = kernels.for_any_strides(e) if e.ndim <= 4 else None
        if loops is not None:  # the add and the division in one compiled pass
            loops.reciprocal_of_one_plus(*kernels.merged(e))
            return e
        e += 1
        return np.reciprocal(e, out=e)

    def forward(self, a):
        self.out = self.values(a)
        return self.out

    def backward(self, g):
        gx = _compiled_activation_backward(self, g, sigmoid=True)
        if gx is not None:
            return (gx,)
        s = self.out
        if np.ndim(s) == 0:  # a scalar: no array to write into
            return (g * (s * (1 - s)),)
        # g * s * (1 - s), in one scratch array (or in g when it is ours alone).
        d = np.subtract(1, s)
        d *= s
        return (np.multiply(g, d, out=g if self.grad_is_owned else d),)


class ReLU(Function):
    # np.maximum rather than np.where: a ufunc keeps the input's memory layout
    # (channels-last conv outputs stay channels-last) and is much faster on
    # strided arrays (bench/README.md). The mask is rebuilt from the output in
    # backward, so forward under no_grad does one pass and saves nothing.
    fresh_grads = True

    @staticmethod
    def values(a, out=None):
        """max(a, 0) into ``out`` (a new array, or a itself: in place)."""
        return np.maximum(a, 0, out=out)

    def forward(self, a):
        self.out = self.values(a)
        return self.out

    def backward(self, g):
        if self.grad_is_owned:
            # Masking in place: no new buffer the size of a conv layer's
            # gradient to write (bench/README.md).
            np.multiply(g, self.out > 0, out=g)
            return (g,)
        return (g * (self.out > 0),)


class Clip(Function):
    def forward(self, a, low=None, high=None):
        self.mask = np.ones(a.shape, dtype=bool)
        if low is not None:
            self.mask &= a >= low
        if high is not None:
            self.mask &= a <= high
        return np.clip(a, low, high).astype(a.dtype, copy=False)

    def backward(self, g):
        # As torch.clamp: the gradient passes where low <= x <= high.
        return (g * self.mask,)


class Cast(Function):
    def forward(self, a, dtype=None):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return (g.astype(self.dtype),)


# ------------------------------------------------------------------ reductions


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        if self.axis is not None and not self.keepdims:
            g = np.expand_dims(g, self.axis)
        return (np.broadcast_to(g, self.shape),)


class AMax(Function):
    """max/min over axes, values only; ties share the gradient evenly (torch.amax)."""

    def forward(self, a, axis=None, keepdims=False, minimum=False):
        reduce = np.min if minimum else np.max
        out = np.asarray(reduce(a, axis=axis, keepdims=True))
        self.mask = a == out
        self.axis, self.keepdims = axis, keepdims
        return out if keepdims else np.asarray(out.reshape(_reduced_shape(a.shape, axis)))

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape(_reduced_shape(self.mask.shape, self.axis, keepdims=True))
        count = self.mask.sum(axis=self.axis, keepdims=True)
        return (self.mask * (g / count),)


class SelectMax(Function):
    """max/min along one dim with its indices (torch.max(x, dim)): the gradient
    goes to the selected element only."""

    def forward(self, a, axis=0, keepdims=False, minimum=False):
        self.shape, self.axis, self.keepdims = a.shape, axis, keepdims
        self.indices = np.expand_dims((np.argmin if minimum else np.argmax)(a, axis=axis), axis)
        out = np.take_along_axis(a, self.indices, axis=axis)
        return out if keepdims else np.squeeze(out, axis=axis)

    def backward(self, g):
        if not self.keepdims:
            g = np.expand_dims(g, self.axis)
        full = np.zeros(self.shape, dtype=g.dtype)
        np.put_along_axis(full, self.indices, g, axis=self.axis)
        return (full,)


def _reduced_shape(shape, axis, keepdims=False):
    if axis is None:
        return (1,) * len(shape) if keepdims else ()
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    if keepdims:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


# ---------------------------------------------------------------- shape ops


class Reshape(Function):
    def forward(self, a, shape=None):
        self.shape = a.shape
        # A channels-last image batch (a convolution's output) flattened into
        # (N, C*H*W) is copied in C order; its gradient goes back channels-last
        # too, so that the layers before (activations, convolutions) work on
        # arrays of one layout instead of mixing two (three times slower).
        self.channels_last = a.ndim == 4 and not a.flags.c_contiguous and \
            a.transpose(0, 2, 3, 1).flags.c_contiguous
        return a.reshape(shape)

    def backward(self, g):
        if not self.channels_last:
            return (g.reshape(self.shape),)
        n, c, h, w = self.shape
        gx = np.empty((n, h, w, c), dtype=g.dtype)
        np.copyto(gx, g.reshape(self.shape).transpose(0, 2, 3, 1))
        return (gx.transpose(0, 3, 1, 2),)


class Permute(Function):
    def forward(self, a, axes=None):
        self.axes = axes
        return np.transpose(a, axes)

    def backward(self, g):
        return (np.transpose(g, np.argsort(self.axes)),)


class Expand(Function):
    def forward(self, a, shape=None):
        self.shape = a.shape
        return np.broadcast_to(a, shape)

    def backward(self, g):
        return (unbroadcast(g, self.shape),)


class Index(Function):
    """``a[index]`` with slices, integers, integer arrays or boolean masks."""

    def forward(self, a, index=None):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return np.asarray(a[index])

    def backward(self, g):
        full = np.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            full[self.index] = g
        else:
            # Integer arrays may repeat an element: its gradients must add up.
            np.add.at(full, self.index, g)
        return (full,)


def _is_basic_index(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(
        i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)) for i in items
    )


class Cat(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.splits, axis=self.axis))


class Stack(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))


# ----------------------------------------------------- fused for stability


class Softmax(Function):
    # Fused: exp(x - max) / sum keeps large logits finite; the composition would not.
    def forward(self, a, axis=-1):
        self.axis = axis
        e = np.exp(a - a.max(axis=axis, keepdims=True))
        self.out = e / e.sum(axis=axis, keepdims=True)
        return self.out

    def backward(self, g):
        s = self.out
        return (s * (g - (g * s).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    # Fused: x - max - log(sum(exp(x - max))) is exact where log(softmax) underflows.
    def forward(self, a, axis=-1):
        self.axis = axis
        shifted = a - a.max(axis=axis, keepdims=True)
        self.out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        return self.out

    def backward(self, g):
        return (g - np.exp(self.out) * g.sum(axis=self.axis, keepdims=True),)


class CrossEntropy(Function):
    """Cross entropy of logits x (N, C, ...) against class indices (N, ...).

    ``-weight * log_softmax(x, axis=1)[target]`` per sample, then reduced:
    ``"mean"`` divides the sum by the total weight (N when ``weight`` is None),
    ``"sum"`` sums, ``"none"`` keeps (N, ...). ``target`` holds valid indices
    and ``weight`` (N, ...), if given, the per-sample weights (0 for ignored
    samples). Fused: the gradient is (softmax - onehot) * weight in one
    expression, where the composition would take five nodes and as many
    (N, C) temporaries.
    """

    def forward(self, x, target=None, weight=None, reduction="mean"):
        shifted = x - x.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        index = np.expand_dims(target, 1)
        loss = -np.take_along_axis(log_p, index, axis=1).squeeze(1)
        if weight is not None:
            loss *= weight
        if reduction == "mean":
            total = weight.sum() if weight is not None else loss.size
            out = loss.sum() / total
        elif reduction == "sum":
            out = loss.sum()
        else:
            out = loss
        self.log_p, self.index, self.weight = log_p, index, weight
        self.reduction, self.total = reduction, total if reduction == "mean" else None
        return np.asarray(out, dtype=x.dtype)

    def backward(self, g):
        grad = np.exp(self.log_p)
        np.put_along_axis(grad, self.index,
                          np.take_along_axis(grad, self.index, axis=1) - 1, axis=1)
        scale = g / self.total if self.reduction == "mean" else g
        if self.weight is not None:
            scale = scale * self.weight
        if np.ndim(scale):
            scale = np.expand_dims(scale, 1)
        grad *= scale
        return (grad,)
