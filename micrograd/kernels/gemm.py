"""Matrix products: MKL's GEMM when the ``mkl`` wheel is installed (``mkl.py``),
else NumPy's.

Most of a training step is matrix products: Linear's three, and a
convolution's im2col GEMMs. ``matmul`` calls MKL's ``cblas_?gemm`` on 2-D float
operands whose rows or columns are contiguous (NumPy's transposed views
included: BLAS reads them with its transpose flag, no copy), and hands
everything else, and products below ``MIN_FLOPS``, to ``np.matmul``.
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import mkl

#: Smallest product (multiply-adds, m*n*k) sent to MKL. A call costs about 6 us
#: (ctypes and MKL's dispatch) against NumPy's 1, and inside the steps of
#: bench_suite's networks smaller products ((2880, 10) x (10, 32) in the fused
#: first layer, (256, 10) x (10, 256) in a classifier head's backward) ran
#: faster on one OpenBLAS thread (bench/README.md). A small model's run never
#: loads MKL.
MIN_FLOPS = 1 << 20
#: From half that size, a product with at least ``LONG`` rows m and inner
#: dimension k (a classifier head's (256, 256) x (256, 10)): few values written
#: per multiply-add and rows for both cores, so MKL pays back its call sooner.
#: (With few rows, (10, 2880) x (2880, 32) in a convolution's weight gradient,
#: MKL was slower.)
MIN_FLOPS_LONG, LONG = 1 << 19, 128
#: The same for a vector times a matrix (BatchNorm's column sums, ``ones @ X``).
MIN_FLOPS_VECTOR = 1 << 18

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_functions = {}  # dtype -> MKL's cblas_?gemm, bound on first use


def _gemm(dtype):
    fn = _functions.get(dtype)
    if fn is None and dtype in (np.float32, np.float64):
        scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double
        fn = mkl.bind("cblas_sgemm" if dtype == np.float32 else "cblas_dgemm", None,
                      *[ctypes.c_int] * 6, scalar, ctypes.c_void_p, ctypes.c_int,
                      ctypes.c_void_p, ctypes.c_int, scalar, ctypes.c_void_p, ctypes.c_int)
        if fn is not None:
            _functions[dtype] = fn
    return fn


def _layout(a):
    """(transpose flag, leading dimension) for BLAS to read the 2-D array ``a`` in
    place, or None when neither its rows nor its columns are contiguous."""
    rows, cols = a.shape
    item = a.itemsize
    # A length-1 axis's stride is arbitrary in NumPy: read it as contiguous.
    s0 = a.strides[0] if rows > 1 else cols * item
    s1 = a.strides[1] if cols > 1 else item
    if s1 == item and s0 % item == 0 and s0 >= cols * item:
        return _NO_TRANS, max(s0 // item, 1)
    if s0 == item and s1 % item == 0 and s1 >= rows * item:
        return _TRANS, max(s1 // item, 1)
    return None


def matmul(a, b, out=None):
    """``a @ b`` (and ``np.matmul(a, b, out=out)``) for a (m, k) or (k,) and b (k, n),
    or stacks of them, a (G, m, k) and b (G, k, n); ``out`` must not overlap a or b.

    Example::

        >>> a, b = np.ones((300, 200), np.float32), np.ones((200, 100), np.float32)
        >>> float(matmul(a, b.T.copy().T)[0, 0])
        200.0
    """
    if (b.ndim == 2 and a.ndim in (1, 2) and a.dtype == b.dtype and a.dtype.kind == "f"
            and a.size * b.shape[1] >= (
                MIN_FLOPS_VECTOR if a.ndim == 1
                else MIN_FLOPS_LONG if min(a.shape) >= LONG else MIN_FLOPS)
            and a.size and b.size and _gemm(a.dtype) is not None):
        a2 = a[None] if a.ndim == 1 else a
        m, k = a2.shape
        n = b.shape[1]
        la, lb = _layout(a2), _layout(b)
        if la is not None and lb is not None and b.shape[0] == k:
            if out is None:
                result, lc = np.empty((m, n), dtype=a.dtype), (_NO_TRANS, n)
            else:
                result = out if out.ndim == 2 else out[None]
                lc = (_layout(result) if result.shape == (m, n) and result.dtype == a.dtype
                      else None)
            if lc is not None and lc[0] == _NO_TRANS:
                _gemm(a.dtype)(
                    _ROW_MAJOR, la[0], lb[0], m, n, k, 1.0,
                    mkl.address(a2, la[0] == _TRANS), la[1], mkl.address(b, lb[0] == _TRANS),
                    lb[1], 0.0, mkl.address(result), lc[1])
                if out is not None:
                    return out
                return result[0] if a.ndim == 1 else result
    if (out is None and a.ndim == 3 and b.ndim == 3 and len(a) == len(b) > 1
            and a.shape[1] * a.shape[2] * b.shape[2] >= MIN_FLOPS and mkl.available()):
        # A stack of products (a grouped convolution's, one per group), each through MKL.
        result = np.empty((len(a), a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
        for i in range(len(a)):
            matmul(a[i], b[i], out=result[i])
        return result
    if out is None:
        return a @ b
    return np.matmul(a, b, out=out)
