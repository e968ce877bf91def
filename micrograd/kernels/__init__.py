"""Loops compiled with numba, where NumPy makes many passes or short strided ones.

An optimiser step is a handful of multiplies and adds per parameter value,
which NumPy writes as a dozen whole-array passes (Adam: twelve); a compiled
loop makes one. A convolution's col2im or a pooling layer goes over kh*kw
strided slices whose contiguous runs are only C values long; a loop visits
each window once. BatchNorm followed by MaxPool2d need never write the
normalised activation. With numba installed (the ``fast`` extra) the engine
and the optimisers use the loops in ``numba_loops.py``; without it, or with
``MICROGRAD_KERNELS=numpy``, their NumPy code, which stays the reference. The
optimiser, activation and ReLU + average pooling loops do the same float
operations in the same order (no fused multiply-add, no reassociation), so
both give the same bits; the others sum in another order, equal to float
rounding (tests/test_kernels.py checks both).

numba is imported, and each loop compiled, on first use only (compiled code is
cached on disk), so importing micrograd and ``micrograd --help`` stay fast.

Intel MKL's matrix products and vector math, when the ``fast`` extra brings
them, live beside the loops: ``mkl.py`` (loading), ``gemm.py``, ``vector_math.py``.
"""
from __future__ import annotations

import os

import numpy as np

_loops = None  # numba_loops once imported; False when numba is absent or turned off


def loops():
    """The compiled loops module, or None when the NumPy code should run."""
    global _loops
    if _loops is None:
        _loops = False
        if os.environ.get("MICROGRAD_KERNELS", "numba").strip().lower() != "numpy":
            try:
                from . import numba_loops
            except Exception:  # noqa: BLE001
                # No numba, or one that cannot compile or cache here (numba raises
                # RuntimeError when no cache folder is writable): the NumPy code runs.
                pass
            else:
                _loops = numba_loops
    return _loops or None


def available() -> bool:
    """Whether the loops would load (numba installed, not turned off), without
    importing numba."""
    if _loops is not None:
        return bool(_loops)
    if os.environ.get("MICROGRAD_KERNELS", "numba").strip().lower() == "numpy":
        return False
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def use(backend: str) -> None:
    """Choose the loops (``"numba"``, when installed) or the NumPy code (``"numpy"``)
    for the rest of this process; tests and benchmarks compare the two."""
    global _loops
    if backend not in ("numba", "numpy"):
        raise ValueError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    os.environ["MICROGRAD_KERNELS"] = backend
    _loops = None


#: Smallest first array (bytes) handed to a loop. Below it a pass costs
#: microseconds either way, and loading numba (about half a second and 100 MB
#: the first time in a process) would not pay back: a small model's run
#: (micrograd train configs/linear_regression.yaml) never imports it.
MIN_BYTES = 256 << 10


def fusable(*arrays, min_bytes=None) -> bool:
    """Whether the loops take these arrays: C-contiguous, one float dtype, the
    first at least ``min_bytes`` (``MIN_BYTES``)."""
    dtype = arrays[0].dtype
    min_bytes = MIN_BYTES if min_bytes is None else min_bytes
    return (dtype.kind == "f" and arrays[0].nbytes >= min_bytes
            and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays))


def for_any_strides(*arrays):
    """The loops module for loops that take arrays of any strides (one float
    dtype, the first at least ``MIN_BYTES``), else None."""
    dtype = arrays[0].dtype
    if dtype.kind != "f" or arrays[0].nbytes < MIN_BYTES or any(a.dtype != dtype for a in arrays):
        return None
    return loops()


def for_arrays(*arrays, same_bits=False):
    """The loops module when it takes these arrays (``fusable``) and numba is
    there, else None: the caller then runs its NumPy code.

    A loop that gives its NumPy code's bits (``same_bits``: the optimisers')
    takes arrays of any size once numba is loaded: which code runs then cannot
    change a result, and for a small parameter one compiled call costs less
    than a dozen NumPy calls."""
    if same_bits and _loops and fusable(*arrays, min_bytes=0):
        return _loops
    return loops() if fusable(*arrays) else None


def merged(*arrays):
    """4-D views of same-shape arrays (at most 4-D) for a loop that visits them in
    C order: their axes put in the first array's memory order (a channels-last
    NCHW batch is visited as (N, H, W, C)), adjacent axes merged wherever every
    array's strides allow (a contiguous one becomes (1, 1, 64, size / 64), rows
    that a parallel loop shares out, or (1, 1, 1, size); a cropped padded one
    (1, N, H, W*C)), and leading 1s added. The longer the innermost axis, the
    better LLVM vectorises the loop."""
    order = sorted(range(arrays[0].ndim), key=lambda i: -abs(arrays[0].strides[i]))
    shape = [arrays[0].shape[i] for i in order]
    strides = [[a.strides[i] for i in order] for a in arrays]
    for axis in range(len(shape) - 1, 0, -1):
        if all(st[axis - 1] == shape[axis] * st[axis] for st in strides):
            shape[axis - 1] *= shape[axis]
            del shape[axis]
            for st in strides:
                st[axis - 1] = st[axis]
                del st[axis]
    if len(shape) == 1:  # dense in one memory order: a reshape is a view (and cheaper)
        # In 64 rows when they divide it, so that a loop can share them out.
        rows = 64 if shape[0] % 64 == 0 else 1
        return tuple(a.transpose(order).reshape(1, 1, rows, -1) for a in arrays)
    pad = 4 - len(shape)
    return tuple(np.lib.stride_tricks.as_strided(
        a, [1] * pad + shape, [0] * pad + st, writeable=a.flags.writeable)
        for a, st in zip(arrays, strides))
