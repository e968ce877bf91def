"""Functions over tensors (``mt.cat``, ``mt.exp``, ``mt.zeros``, ...).

Thin wrappers: the differentiable work is in ``functions.py`` and the methods
of ``Tensor``.
"""
from __future__ import annotations

import numpy as np

from . import functions
from .random import default_generator
from .tensor import DEFAULT_DTYPE, Tensor, argmax  # noqa: F401  (re-exported)


def tensor(data, requires_grad=False, dtype=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap an array without copying and without changing its dtype."""
    return Tensor._wrap(np.asarray(array))


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def cat(tensors, dim=0):
    """Concatenate along an existing dim (``torch.cat``)."""
    return functions.Cat.apply(*[_as_tensor(t) for t in tensors], axis=dim)


concatenate = cat


def stack(tensors, dim=0):
    """Join along a new dim (``torch.stack``)."""
    return functions.Stack.apply(*[_as_tensor(t) for t in tensors], axis=dim)


def exp(x):
    return _as_tensor(x).exp()


def log(x):
    return _as_tensor(x).log()


def sqrt(x):
    return _as_tensor(x).sqrt()


def abs(x):  # noqa: A001 - the name PyTorch uses
    return _as_tensor(x).abs()


def tanh(x):
    return _as_tensor(x).tanh()


def sigmoid(x):
    return _as_tensor(x).sigmoid()


def relu(x):
    return _as_tensor(x).relu()


def softmax(x, dim=-1):
    return _as_tensor(x).softmax(dim)


def log_softmax(x, dim=-1):
    return _as_tensor(x).log_softmax(dim)


def clip(x, min=None, max=None):  # noqa: A002
    return _as_tensor(x).clip(min, max)


clamp = clip


def sum(x, dim=None, keepdim=False):  # noqa: A001
    return _as_tensor(x).sum(dim, keepdim)


def mean(x, dim=None, keepdim=False):
    return _as_tensor(x).mean(dim, keepdim)


def max(x, dim=None, keepdim=False):  # noqa: A001
    return _as_tensor(x).max(dim, keepdim)


def min(x, dim=None, keepdim=False):  # noqa: A001
    return _as_tensor(x).min(dim, keepdim)


def matmul(a, b):
    return _as_tensor(a) @ b


def reshape(x, *shape):
    return _as_tensor(x).reshape(*shape)


def flatten(x, start_dim=0, end_dim=-1):
    return _as_tensor(x).flatten(start_dim, end_dim)


def transpose(x, dim0, dim1):
    return _as_tensor(x).transpose(dim0, dim1)


def permute(x, *dims):
    return _as_tensor(x).permute(*dims)


def squeeze(x, dim=None):
    return _as_tensor(x).squeeze(dim)


def unsqueeze(x, dim):
    return _as_tensor(x).unsqueeze(dim)


def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y``; differentiable in x and y."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition, dtype=bool)
    x, y = _as_tensor(x), _as_tensor(y)
    mask = Tensor._wrap(cond.astype(x.dtype))
    return x * mask + y * (1 - mask)


# --------------------------------------------------------------- factories


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, dtype=None, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=dtype or DEFAULT_DTYPE), requires_grad, dtype)


def ones(*shape, dtype=None, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=dtype or DEFAULT_DTYPE), requires_grad, dtype)


def full(shape, fill_value, dtype=None, requires_grad=False):
    return Tensor(np.full(shape, fill_value, dtype=dtype or DEFAULT_DTYPE), requires_grad, dtype)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros_like(t.data, dtype=dtype or t.dtype), requires_grad, dtype or t.dtype)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones_like(t.data, dtype=dtype or t.dtype), requires_grad, dtype or t.dtype)


def arange(start, end=None, step=1, dtype=None):
    if end is None:
        start, end = 0, start
    data = np.arange(start, end, step)
    if dtype is None:
        dtype = np.int64 if np.issubdtype(data.dtype, np.integer) else DEFAULT_DTYPE
    return Tensor(data, dtype=dtype)


def linspace(start, end, steps, dtype=None):
    return Tensor(np.linspace(start, end, steps), dtype=dtype)


def randn(*shape, dtype=None, requires_grad=False):
    data = default_generator().standard_normal(_shape(shape))
    return Tensor(data, requires_grad, dtype)


def rand(*shape, dtype=None, requires_grad=False):
    data = default_generator().random(_shape(shape))
    return Tensor(data, requires_grad, dtype)


def randint(low, high, size, dtype=np.int64):
    return Tensor(default_generator().integers(low, high, size), dtype=dtype)


def randperm(n):
    return Tensor(default_generator().permutation(n), dtype=np.int64)
