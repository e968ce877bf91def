"""The graph: grad mode, the Function node every primitive derives from, and backward.

A primitive is a subclass of :class:`Function` with a ``forward`` on NumPy
arrays and a ``backward`` that maps the output's gradient to one gradient per
input (see ``functions.py``). ``Function.apply`` runs the forward and, when a
gradient is wanted, records the node on the output tensor. ``backward`` is one
iterative topological sort and one reverse walk.
"""
from __future__ import annotations

import functools
import threading

import numpy as np

class _GradMode(threading.local):
    enabled = True  # per thread, as in PyTorch; the class default is each thread's start


_state = _GradMode()

# Tensor._wrap, filled in by tensor.py when Tensor is defined: tensor.py imports
# this module, so this module cannot import it back, and an import inside
# Function.apply would cost half a microsecond on every op.
_wrap = None


def is_grad_enabled() -> bool:
    return _state.enabled


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class no_grad:
    """Context manager (and decorator) under which no graph is recorded.

    Example::

        with mt.no_grad():
            w -= lr * w.grad
    """

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        set_grad_enabled(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside ``no_grad``."""

    def __enter__(self):
        self._prev = is_grad_enabled()
        set_grad_enabled(True)
        return self


class Function:
    """One node of the graph: a primitive's forward and its local gradient.

    Subclasses implement ``forward(self, *arrays, **kwargs) -> ndarray`` and
    ``backward(self, grad) -> tuple`` with one entry per input (an ndarray of
    that input's shape, or None where no gradient flows). State needed by
    backward is kept on ``self`` during forward.
    """

    def __init__(self, parents):
        self.parents = parents
        # All False under no_grad: apply then records no graph, and forwards
        # that look at it (conv2d) skip what only backward would need.
        if _state.enabled:
            self.needs_input_grad = tuple([p.requires_grad for p in parents])
        else:
            self.needs_input_grad = (False,) * len(parents)
        self.freed = False

    #: True when ``backward`` always returns new arrays (or views of arrays it
    #: made) that nothing else holds, one per input. autograd then lets the
    #: consumer of such a gradient keep it (a leaf's .grad) or overwrite it
    #: (ReLU's backward, through ``grad_is_owned``) instead of copying.
    fresh_grads = False
    grad_is_owned = False  # set by backward() before each call of ``backward``

    @classmethod
    def apply(cls, *tensors, **kwargs):
        ctx = cls(tensors)
        out = ctx.forward(*[t._data for t in tensors], **kwargs)
        if True in ctx.needs_input_grad:
            return _wrap(out, True, ctx)
        return _wrap(out, False, None)

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__}Backward>"


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back to an input's ``shape``.

    Every binary op calls this: NumPy broadcasting copies an input along new
    leading axes and along axes of size 1, so its gradient is the sum over them.
    """
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root):
    """Tensors reachable from ``root`` that need a gradient, inputs before outputs.

    Iterative depth-first search, so a chain of 100,000 ops does not touch
    Python's recursion limit.
    """
    order, seen = [], {id(root)}
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        stack.append((node, True))
        ctx = node._ctx
        if ctx is None:
            continue
        if ctx.freed:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Specify "
                "retain_graph=True if you need to backward through the graph a second time."
            )
        for parent in ctx.parents:
            if parent.requires_grad and id(parent) not in seen:
                seen.add(id(parent))
                stack.append((parent, False))
    return order


def backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (d root / d root) to every leaf that requires a gradient.

    Leaves (and tensors marked with ``retain_grad()``) accumulate into ``.grad``
    as in PyTorch; gradients of interior nodes live only during the walk.
    """
    order = _topological_order(root)
    # Each pending gradient travels with a flag: True when it is a fresh array
    # that nothing else holds (see _owned and Function.fresh_grads), which a
    # leaf may then keep as its .grad instead of copying (a weight's gradient
    # is the largest array an MLP's backward makes; bench/README.md has the
    # figure) and ReLU may overwrite in place.
    grads = {id(root): (grad, False)}
    for node in reversed(order):
        entry = grads.pop(id(node), None)
        if entry is None:
            continue
        g, owned = entry
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            node._accumulate_grad(g, owned=owned and ctx is None)
        if ctx is None:
            continue
        parents = ctx.parents
        ctx.grad_is_owned = owned  # g is this node's alone: its backward may overwrite it
        parent_grads = ctx.backward(g)
        if not retain_graph:
            # Drop what forward saved: memory goes back as soon as it is used.
            ctx.__dict__.clear()
            ctx.freed = True
        for parent, pg in zip(parents, parent_grads):
            if pg is None or not parent.requires_grad:
                continue
            key = id(parent)
            prev = grads.get(key)
            # Never add in place: a backward may hand the same array to two inputs.
            if prev is None:
                grads[key] = (pg, ctx.fresh_grads or _owned(pg, g, parent_grads))
            else:
                grads[key] = (prev[0] + pg, True)


def _owned(pg, g, parent_grads) -> bool:
    """Whether a backward's result ``pg`` is a new array that no one else holds:
    not a view, not the incoming gradient passed through (Add, ...), not handed
    to two inputs at once."""
    return (type(pg) is np.ndarray and pg.base is None and pg.flags.writeable
            and pg is not g and sum(other is pg for other in parent_grads) == 1)
