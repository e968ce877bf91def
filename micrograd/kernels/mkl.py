"""Intel MKL through ctypes, when the ``fast`` extra's ``mkl`` wheel is installed:
its GEMM (``gemm.py``) and its vector math (``vector_math.py``).

On the CPUs we measured (bench/README.md) MKL runs a step's matrix products
1.1-2.4x faster than the OpenBLAS NumPy ships with, and its tanh and exp on
both cores twice as fast as NumPy's on one. The library is loaded on the first
array large enough to use it, so a small model never loads it. Once loaded,
NumPy's OpenBLAS runs on one thread: MKL's OpenMP workers spin for a while
after each call, and OpenBLAS's two threads waking beside them made a 20 us
product take 2 ms.

MKL and NumPy round differently, so a run's numbers depend on which one ran;
each is deterministic on its own (the same inputs give the same bits, whatever
their alignment: tests/test_gemm.py), which keeps resume exact.
``MICROGRAD_MKL=0`` (or ``use("numpy")``) keeps NumPy's code everywhere.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys

_library = None  # the ctypes library once loaded; False when MKL is absent or off
_openblas_limit = None  # threadpoolctl's limiter holding OpenBLAS at one thread


def _find():
    """libmkl_rt from the ``mkl`` wheel (installed into the environment's lib/)."""
    names = ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.dylib",
             "mkl_rt.2.dll", "mkl_rt.dll")
    roots = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))}
    for root in roots:
        for sub in ("lib", "Library/bin"):
            for name in names:
                path = os.path.join(root, sub, name)
                if os.path.exists(path):
                    return path
        found = sorted(glob.glob(os.path.join(root, "lib", "libmkl_rt.so*")))
        if found:
            return found[-1]
    return None


def _turned_off() -> bool:
    return os.environ.get("MICROGRAD_MKL", "1").strip().lower() in ("0", "numpy", "off", "no")


def _share_openmp_with_numba(lib):
    """MKL on GNU OpenMP (libgomp), the runtime numba's parallel loops use, so
    both share one pool of threads instead of two pools spinning on the same
    cores (steps 2-4% faster: bench/README.md). Left as it is when the user
    chose a layer (MKL_THREADING_LAYER) or libgomp is not there. Must run
    before MKL's first call."""
    if os.environ.get("MKL_THREADING_LAYER"):
        return
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        return
    set_layer = getattr(lib, "MKL_Set_Threading_Layer", None)
    if set_layer is not None:
        set_layer.restype, set_layer.argtypes = ctypes.c_int, [ctypes.c_int]
        set_layer(_MKL_THREADING_GNU)


_MKL_THREADING_GNU = 3


def library():
    """The loaded MKL (a ``ctypes.CDLL``), or None when NumPy's code should run."""
    global _library, _openblas_limit
    if _library is None:
        _library = False
        path = None if _turned_off() else _find()
        if path is not None:
            try:
                import threadpoolctl

                lib = ctypes.CDLL(path)
            except (ImportError, OSError):  # no threadpoolctl, or a broken install
                return None
            _share_openmp_with_numba(lib)
            _openblas_limit = threadpoolctl.ThreadpoolController().select(
                internal_api="openblas").limit(limits=1)
            _library = lib
    return _library or None


def available() -> bool:
    """Whether MKL is used (loads it)."""
    return library() is not None


def use(backend: str) -> None:
    """Choose MKL (``"mkl"``, when installed) or NumPy's code (``"numpy"``) for the
    rest of this process; tests and benchmarks compare the two."""
    global _library, _openblas_limit
    if backend not in ("mkl", "numpy"):
        raise ValueError(f"backend must be 'mkl' or 'numpy', got {backend!r}")
    os.environ["MICROGRAD_MKL"] = "1" if backend == "mkl" else "0"
    if _openblas_limit is not None:
        _openblas_limit.restore_original_limits()
        _openblas_limit = None
    _library = None
    from . import gemm, vector_math

    gemm._functions.clear()
    vector_math._functions.clear()


def address(a, transposed=False):
    """The address of the ndarray ``a``'s first value, for a C call; ``transposed``
    when ``a.T`` is the array more likely in C order (a GEMM operand read with
    BLAS's transpose flag). A step makes a few dozen such calls: the buffer
    protocol takes a third of the time of ``a.ctypes.data``, which stays for
    what it refuses (read-only arrays, arrays that are not one dense block)."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(a.T if transposed else a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


def bind(name, restype, *argtypes):
    """MKL's function ``name`` with its ctypes signature, or None (no MKL, or a
    version without it)."""
    lib = library()
    fn = getattr(lib, name, None) if lib is not None else None
    if fn is not None:
        fn.restype, fn.argtypes = restype, list(argtypes)
    return fn
