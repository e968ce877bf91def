"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``."""
from __future__ import annotations

import math

import numpy as np

from micrograd.engine.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad.data for p in parameters if p.grad is not None]


def _vector_norm(x: np.ndarray, norm_type: float) -> float:
    x = np.abs(x.ravel())
    if norm_type == math.inf:
        return float(x.max()) if x.size else 0.0
    if norm_type == -math.inf:
        return float(x.min()) if x.size else math.inf
    if norm_type == 0:
        return float(np.count_nonzero(x))
    if norm_type == 1:
        return float(x.sum())
    if norm_type == 2:
        return math.sqrt(float(np.dot(x, x)))
    return float((x**norm_type).sum() ** (1.0 / norm_type))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    r"""Scale all gradients together so that their joint norm is at most ``max_norm``.

    The norm is taken over all gradients as if concatenated into one vector:
    :math:`\|g\| = (\sum_i \|g_i\|^p)^{1/p}`. Each gradient is multiplied in
    place by :math:`\min(1, \text{max\_norm} / (\|g\| + 10^{-6}))`. Parameters
    without a gradient are skipped.

    Args:
        parameters: a Tensor or an iterable of Tensors.
        max_norm: the largest allowed norm.
        norm_type: p of the p-norm (``math.inf`` for the largest absolute value).
        error_if_nonfinite: raise RuntimeError if the norm is nan or inf.

    Returns:
        The norm before clipping, as a 0-d Tensor (``float(...)`` or ``.item()``).

    Example::

        >>> loss.backward()
        >>> norm = mt.clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> optimizer.step()
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    if not grads:
        return Tensor._wrap(np.asarray(0.0))
    dtype = np.result_type(*grads)
    # As PyTorch: the norm of the per-gradient norms.
    per_grad = np.array([_vector_norm(g, norm_type) for g in grads])
    total = _vector_norm(per_grad, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients is non-finite, so it "
            "cannot be clipped; set error_if_nonfinite=False to clip anyway"
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return Tensor._wrap(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clip every gradient element into ``[-clip_value, clip_value]``, in place.

    Example::

        >>> mt.clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)
