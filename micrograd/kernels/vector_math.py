"""Tanh and the sigmoid's exponential through MKL's vector math (VML), on both
cores, when MKL is there (``mkl.py``): tanh twice and the sigmoid 1.5 times as
fast as NumPy's one-core passes on an activation of 256 kB or more. Each function
returns None where NumPy's code should run (no MKL, a small or non-dense
array, another dtype); the engine's Tanh and Sigmoid then compute as before.

Where an activation's pass follows another pass over the same values (the
sigmoid's 1 / (1 + e) after its exponential, a BatchNorm before a tanh), a
compiled loop calls VML on each of its threads, over the piece that thread
has just written (``for_loops``, ``numba_loops._vml``): two passes on both
cores, one after the other, sent every value from one core's cache to the
other's in between.

VML's high-accuracy mode (within 1 ulp, as NumPy's) and its errors ignored:
exp overflowing to inf is the intended result of 1 / (1 + e^-x) for x very
negative, as in NumPy's code.
"""
from __future__ import annotations

import ctypes

import numpy as np

from .. import kernels
from . import mkl

#: Smallest array (elements) handed to VML: below it NumPy's pass is as fast.
MIN_SIZE = 1 << 16

_HIGH_ACCURACY_ERRORS_IGNORED = 0x2 | 0x100  # VML_HA | VML_ERRMODE_IGNORE
_functions = {}  # (dtype, name) -> bound VML function; (dtype, name, "for loops") -> addresses


def _vml(dtype, name):
    key = (dtype, name)
    if key not in _functions:
        prefix = {np.dtype(np.float32): "vms", np.dtype(np.float64): "vmd"}.get(dtype)
        fn = mkl.bind(prefix + name, None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                      ctypes.c_int64) if prefix else None
        if fn is None:
            return None
        _functions[key] = fn
    return _functions[key]


def _in_memory_order(a):
    """a with its axes in memory order (C order for a channels-last batch)."""
    return a.transpose(sorted(range(a.ndim), key=lambda i: -a.strides[i]))


def _dense(a):
    """Whether a's values fill one block of memory in some order of its axes (C
    order, or channels-last batches), so VML can run over them from its first."""
    return a.flags.c_contiguous or _in_memory_order(a).flags.c_contiguous


def _sized(x):
    """Whether VML takes an array of x's size: from ``MIN_SIZE``, and a count that
    fits its int."""
    return MIN_SIZE <= x.size < 1 << 31


def _output(x, out):
    """The array VML writes x's results into: ``out`` (x itself, or an array of x's
    dtype and strides), or a new array like x when out is None; None when
    ``out`` does not lie over memory as x does."""
    if out is None:
        return np.empty_like(x)  # the same memory order
    if out is not x and (out.dtype != x.dtype or out.strides != x.strides):
        return None
    return out


def _operands(x, name, out=None):
    """(VML function, x's address, ``out`` or a new array like x, its address),
    or None."""
    fn = _vml(x.dtype, name) if _sized(x) and _dense(x) else None
    out = _output(x, out) if fn is not None else None
    if out is None:
        return None
    if out is x:  # in place (a fused layer's fresh output): one address
        address = mkl.address(x)
        return fn, address, x, address
    return fn, mkl.address(x), out, mkl.address(out)


def tanh(x, out=None):
    """np.tanh(x) on both cores (into ``out``, which may be x itself), or None."""
    operands = _operands(x, "Tanh", out)
    if operands is None:
        return None
    fn, src, out, dst = operands
    fn(x.size, src, dst, _HIGH_ACCURACY_ERRORS_IGNORED)
    return out


def for_loops(name, x):
    """(the address of VML's function ``name`` for x's dtype, the address of
    ``MKL_Set_Num_Threads_Local``, the mode) for a compiled loop that calls VML
    over x on each of its threads (``numba_loops._vml``), or None (no MKL, or
    x too small or of another dtype)."""
    if not _sized(x):
        return None
    key = (x.dtype, name, "for loops")
    if key not in _functions:
        fn = _vml(x.dtype, name)
        threads_local = mkl.bind("MKL_Set_Num_Threads_Local", ctypes.c_int, ctypes.c_int)
        if fn is None or threads_local is None:
            return None
        address = lambda f: ctypes.cast(f, ctypes.c_void_p).value
        _functions[key] = address(fn), address(threads_local), _HIGH_ACCURACY_ERRORS_IGNORED
    return _functions[key]


def sigmoid(x, out=None, negated=False):
    """1 / (1 + e^-x) (e^x when ``negated``: x holds minus the input) into ``out``
    (which may be x itself), or None: each core negates, exponentiates (VML)
    and finishes its own piece while it is in its cache
    (``numba_loops.sigmoid``), where the exponential on both cores and then
    the compiled 1 / (1 + e) on both cores made the values cross between the
    cores' caches. The same operations, so the same bits."""
    called = for_loops("Exp", x) if _dense(x) else None
    loops = kernels.loops() if called is not None else None
    out = _output(x, out) if loops is not None else None
    if out is None:
        return None
    source, target = _in_memory_order(x).reshape(-1), _in_memory_order(out).reshape(-1)
    loops.sigmoid(loops.THREADS, source, target, negated, *called)
    return out


def exp(x, out=None, negate=False):
    """e^x (e^-x with ``negate``) on both cores (into ``out``, which may be x
    itself), or None: the sigmoid's exponential (engine ``Sigmoid.values``).
    Overflow to inf is kept: 1 / (1 + inf) is the sigmoid's correct 0."""
    operands = _operands(x, "Exp", out)
    if operands is None:
        return None
    fn, src, out, dst = operands
    if negate:
        np.negative(x, out=out)
        src = dst
    fn(x.size, src, dst, _HIGH_ACCURACY_ERRORS_IGNORED)
    return out
