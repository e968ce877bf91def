"""Test helpers: central-difference gradient checks and the PyTorch oracle.

``gradcheck`` is the suite's own ground truth (no torch needed);
``torch_or_skip`` gives PyTorch where it is installed and skips cleanly where not.
"""
from __future__ import annotations

import numpy as np
import pytest

from micrograd.engine.tensor import Tensor


def numerical_grad(f, arrays, i, eps=1e-6):
    """d f(arrays) / d arrays[i] by central differences, f returning a float."""
    x = arrays[i]
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = x[idx]
        x[idx] = old + eps
        plus = f(arrays)
        x[idx] = old - eps
        minus = f(arrays)
        x[idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *arrays, rtol=1e-5, atol=1e-7, eps=1e-6, seed=0):
    """Check autograd's gradients of ``fn(*tensors)`` against central differences.

    The inputs are float64. A fixed random projection of the output makes the
    check sensitive to every output element (a plain sum would hide errors that
    cancel out).
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    tensors = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    out = fn(*tensors)
    proj = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(proj, dtype=np.float64)).sum().backward()

    def f(arrs):
        res = fn(*[Tensor(a, dtype=np.float64) for a in arrs])
        return float((res.data * proj).sum())

    for i, t in enumerate(tensors):
        expected = numerical_grad(f, arrays, i, eps)
        assert t.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(t.grad.data, expected, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")


def torch_or_skip():
    return pytest.importorskip("torch")
