"""``Tensor``: a NumPy array with a gradient and the methods users call.

Each differentiable method routes to one primitive in ``functions.py`` (or a
composition of them); the graph and backward live in ``autograd.py``.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from . import autograd as _autograd
from . import functions
from .autograd import backward as _backward
from .autograd import is_grad_enabled

#: The default floating dtype, as the design document's Tensor: float32 whatever the input.
DEFAULT_DTYPE = np.float32

MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _as_array(data, dtype):
    if isinstance(data, Tensor):
        data = data.data
    return np.array(data, dtype=dtype if dtype is not None else DEFAULT_DTYPE)


class Tensor:
    """An n-dimensional array that records the ops applied to it for backprop.

    Args:
        data: anything ``numpy.array`` accepts (numbers, lists, arrays, a Tensor).
        requires_grad: record operations on this tensor and fill ``.grad`` on backward.
        dtype: float32 by default whatever the input; ``np.float64`` for precision,
            integer dtypes for class labels.

    Example::

        >>> x = Tensor([[1.0, 2.0]], requires_grad=True)
        >>> y = (x * x).sum()
        >>> y.backward()
        >>> x.grad
        tensor([[2., 4.]])
    """

    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _as_array(data, dtype)
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise RuntimeError(
                f"only floating point tensors can require gradients, got dtype {self.data.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._ctx = None
        self._retains_grad = False

    @classmethod
    def _wrap(cls, array, requires_grad=False, ctx=None):
        """Wrap an ndarray that an op produced, keeping its dtype (no copy)."""
        t = object.__new__(Tensor)
        # _data directly: this runs for every op's output, and the property's
        # checks are for user assignments.
        t._data = array if isinstance(array, np.ndarray) else np.asarray(array)
        t.requires_grad = requires_grad
        t.grad = None
        t._ctx = ctx
        t._retains_grad = False
        return t

    # ------------------------------------------------------------ properties

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value):
        self._data = value.data if isinstance(value, Tensor) else np.asarray(value)

    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        # NumPy's attribute (an int); PyTorch's size() is shape, available as .shape.
        return self._data.size

    def numel(self):
        return self._data.size

    def dim(self):
        return self._data.ndim

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self._data)

    def __repr__(self):
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype != DEFAULT_DTYPE:
            extra += f", dtype={self.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn={self._ctx!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def item(self):
        if self._data.size != 1:
            raise ValueError(
                f"only one-element tensors can be converted to Python scalars, got shape {self.shape}"
            )
        return self._data.item()

    def numpy(self) -> np.ndarray:
        return self._data

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        return id(self)

    # -------------------------------------------------------------- autograd

    def backward(self, gradient=None, retain_graph: bool = False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is required unless the tensor holds one element.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn"
            )
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs, got shape {self.shape}"
                )
            g = np.ones_like(self._data)
        else:
            g = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient,
                           dtype=self.dtype)
            if g.shape != self.shape:
                raise RuntimeError(
                    f"gradient has shape {g.shape}, but the tensor has shape {self.shape}"
                )
        _backward(self, g, retain_graph=retain_graph)

    def _accumulate_grad(self, g, owned=False):
        g = np.asarray(g)
        if self.grad is None:
            if owned and g.dtype == self.dtype and g.shape == self.shape and g.flags.c_contiguous:
                # A fresh array nobody else holds (autograd.backward checked): keep it.
                self.grad = Tensor._wrap(g)
                return
            # A copy: backward may hand out views of shared or read-only arrays.
            self.grad = Tensor._wrap(np.array(g, dtype=self.dtype).reshape(self.shape))
        else:
            self.grad._data += g

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward."""
        self._retains_grad = True
        return self

    def detach(self):
        return Tensor._wrap(self._data, False, None)

    def requires_grad_(self, requires_grad: bool = True):
        self.requires_grad = requires_grad
        return self

    def zero_(self):
        self._data[...] = 0
        return self

    def fill_(self, value):
        self._data[...] = value
        return self

    def copy_(self, other):
        self._data[...] = other.data if isinstance(other, Tensor) else other
        return self

    def clone(self):
        return Tensor._wrap(self._data.copy(), False, None) if not self.requires_grad else self * 1

    # ------------------------------------------------------------ arithmetic

    def _lift(self, other):
        """Turn a Python/NumPy scalar or array into a constant of this tensor's dtype,
        so that float32 graphs stay float32."""
        if isinstance(other, Tensor):
            return other
        arr = np.asarray(other)
        if np.issubdtype(self.dtype, np.floating) or not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(self.dtype, copy=False) if arr.dtype != self.dtype else arr
        return Tensor._wrap(arr)

    def __add__(self, other):
        return functions.Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return functions.Add.apply(self._lift(other), self)

    def __sub__(self, other):
        return functions.Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return functions.Sub.apply(self._lift(other), self)

    def __mul__(self, other):
        return functions.Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return functions.Mul.apply(self._lift(other), self)

    def __truediv__(self, other):
        return functions.Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return functions.Div.apply(self._lift(other), self)

    def __pow__(self, other):
        return functions.Pow.apply(self, self._lift(other))

    def __rpow__(self, other):
        return functions.Pow.apply(self._lift(other), self)

    def __matmul__(self, other):
        return functions.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return functions.MatMul.apply(self._lift(other), self)

    def __neg__(self):
        return functions.Neg.apply(self)

    def __pos__(self):
        return self

    # In-place updates. Inside no_grad (the optimiser's case) they write into
    # .data, so `w -= lr * w.grad` keeps the same parameter object. With grad
    # enabled, a leaf that requires grad refuses as in PyTorch; anything else
    # gets the out-of-place result, which Python binds to the same name.
    def _inplace(self, other, op, fn):
        other_t = self._lift(other)
        if is_grad_enabled() and (self.requires_grad or other_t.requires_grad):
            if self.requires_grad and self._ctx is None:
                raise RuntimeError(
                    "a leaf Tensor that requires grad is being used in an in-place operation; "
                    "wrap the update in `with mt.no_grad():`"
                )
            return fn(self, other_t)
        op(self._data, other_t.data, out=self._data, casting="unsafe")
        return self

    def __iadd__(self, other):
        return self._inplace(other, np.add, Tensor.__add__)

    def __isub__(self, other):
        return self._inplace(other, np.subtract, Tensor.__sub__)

    def __imul__(self, other):
        return self._inplace(other, np.multiply, Tensor.__mul__)

    def __itruediv__(self, other):
        return self._inplace(other, np.divide, Tensor.__truediv__)

    # ------------------------------------------------------------ comparisons
    # Not differentiable: they return boolean tensors, as PyTorch does.

    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(op(self._data, other))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    # ----------------------------------------------------------- elementwise

    def exp(self):
        return functions.Exp.apply(self)

    def log(self):
        return functions.Log.apply(self)

    def sqrt(self):
        return functions.Sqrt.apply(self)

    def abs(self):
        return functions.Abs.apply(self)

    def tanh(self):
        return functions.Tanh.apply(self)

    def sigmoid(self):
        return functions.Sigmoid.apply(self)

    def relu(self):
        return functions.ReLU.apply(self)

    def clip(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clip needs at least one of min and max")
        return functions.Clip.apply(self, low=min, high=max)

    clamp = clip

    def softmax(self, dim=-1):
        return functions.Softmax.apply(self, axis=dim)

    def log_softmax(self, dim=-1):
        return functions.LogSoftmax.apply(self, axis=dim)

    # ------------------------------------------------------------ reductions

    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        axis, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        return functions.Sum.apply(self, axis=axis, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        axis, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        total = functions.Sum.apply(self, axis=axis, keepdims=keepdim)
        count = self._data.size // max(total.data.size, 1) if self._data.size else 0
        return total * (1.0 / count) if count else total * np.nan

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Like PyTorch: no ``dim`` gives the overall maximum; ``dim`` gives
        ``(values, indices)``. NumPy's ``axis=`` gives the values alone (``amax``)."""
        return self._extremum(dim, keepdim, axis, keepdims, minimum=False)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        """As :meth:`max`, for the minimum."""
        return self._extremum(dim, keepdim, axis, keepdims, minimum=True)

    def _extremum(self, dim, keepdim, axis, keepdims, minimum):
        if dim is not None and axis is None:
            values = functions.SelectMax.apply(self, axis=dim, keepdims=keepdim, minimum=minimum)
            reduce = np.argmin if minimum else np.argmax
            indices = reduce(self._data, axis=dim)
            if keepdim:
                indices = np.expand_dims(indices, dim)
            return MaxResult(values, Tensor._wrap(indices.astype(np.int64)))
        axis, keepdim = _axis_args(dim, keepdim, axis, keepdims)
        return functions.AMax.apply(self, axis=axis, keepdims=keepdim, minimum=minimum)

    def amax(self, dim=None, keepdim=False):
        return functions.AMax.apply(self, axis=_dims(dim), keepdims=keepdim, minimum=False)

    def amin(self, dim=None, keepdim=False):
        return functions.AMax.apply(self, axis=_dims(dim), keepdims=keepdim, minimum=True)

    def argmax(self, dim=None, keepdim=False):
        return argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        out = np.argmin(self._data, axis=dim, keepdims=keepdim)
        return Tensor._wrap(np.asarray(out, dtype=np.int64))

    # ---------------------------------------------------------------- shapes

    def reshape(self, *shape):
        shape = _shape_args(shape)
        if not (self.requires_grad and is_grad_enabled()):  # no graph node: a view
            return Tensor._wrap(self._data.reshape(shape))
        return functions.Reshape.apply(self, shape=shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *axes):
        axes = tuple(a % self.ndim for a in _shape_args(axes)) if self.ndim else ()
        return functions.Permute.apply(self, axes=axes)

    def transpose(self, dim0=-2, dim1=-1):
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def squeeze(self, dim=None):
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dim = dim % self.ndim
            if self.shape[dim] != 1:
                return self
            shape = self.shape[:dim] + self.shape[dim + 1:]
        return self.reshape(shape)

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *shape):
        shape = _shape_args(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        return functions.Expand.apply(self, shape=shape)

    def __getitem__(self, index):
        return functions.Index.apply(self, index=_index_arrays(index))

    # ---------------------------------------------------------------- dtypes

    def to(self, dtype):
        if self.dtype == np.dtype(dtype):
            return self
        return functions.Cast.apply(self, dtype=np.dtype(dtype))

    astype = to

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return Tensor._wrap(self._data.astype(np.int64))

    def int(self):
        return Tensor._wrap(self._data.astype(np.int32))

    def bool(self):
        return Tensor._wrap(self._data.astype(bool))


_autograd._wrap = Tensor._wrap  # see autograd._wrap


# ------------------------------------------------------------------ helpers


def _axis_args(dim, keepdim, axis, keepdims):
    """Accept PyTorch's (dim, keepdim) and NumPy's (axis, keepdims)."""
    if axis is not None:
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return _dims(dim), bool(keepdim)


def _dims(dim):
    if isinstance(dim, list):
        return tuple(dim)
    return dim


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _index_arrays(index):
    """Tensors inside an index become their arrays (integer or boolean)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def argmax(t, dim=None, keepdim=False):
    """Indices of the maxima along ``dim`` (int64, not differentiable)."""
    data = t.data if isinstance(t, Tensor) else np.asarray(t)
    out = np.argmax(data, axis=dim, keepdims=keepdim)
    return Tensor._wrap(np.asarray(out, dtype=np.int64))
