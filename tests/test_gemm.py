"""micrograd/kernels/mkl.py, gemm.py and vector_math.py: matrix products, tanh and
the sigmoid through MKL (the ``fast`` extra's ``mkl`` wheel) or NumPy. These
tests run where MKL is installed (CI installs it); the NumPy fallbacks are
checked everywhere."""
import os
import subprocess
import sys

import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd.engine.functions import Sigmoid
from micrograd.kernels import gemm, mkl as mkl_library, vector_math

from conftest import assert_torch_parity


@pytest.fixture
def mkl(monkeypatch):
    """MKL for every product, however small; a record of each dtype it ran."""
    mkl_library.use("mkl")
    if not mkl_library.available():
        pytest.skip("MKL is not installed (pip install 'micrograd-trainer[fast]')")
    monkeypatch.setattr(gemm, "MIN_FLOPS", 0)
    monkeypatch.setattr(gemm, "MIN_FLOPS_VECTOR", 0)
    monkeypatch.setattr(gemm, "MIN_FLOPS_LONG", 0)
    monkeypatch.setattr(vector_math, "MIN_SIZE", 0)
    calls = []
    bind = gemm._gemm

    def spy(dtype):
        fn = bind(dtype)
        return None if fn is None else (lambda *a: calls.append(np.dtype(dtype)) or fn(*a))
    monkeypatch.setattr(gemm, "_gemm", spy)
    yield calls
    mkl_library.use("mkl")


def layouts(rng, rows, cols, dtype):
    """The same (rows, cols) matrix as BLAS can read it in place: C order, a
    transposed (F-ordered) array, and a slice of a wider one (leading dimension
    larger than its width), each with its values."""
    m = rng.standard_normal((rows, cols)).astype(dtype)
    wide = np.zeros((rows, cols + 3), dtype)
    wide[:, 1:cols + 1] = m
    tall = np.zeros((cols, rows + 2), dtype)
    tall[:, :rows] = m.T
    return {"C": m, "F": np.asfortranarray(m), "sliced": wide[:, 1:cols + 1],
            "sliced_T": tall[:, :rows].T}


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_mkl_products_match_numpy_for_every_layout(mkl, dtype, rtol):
    rng = np.random.default_rng(0)
    for a_name, a in layouts(rng, 7, 5, dtype).items():
        for b_name, b in layouts(rng, 5, 4, dtype).items():
            result = gemm.matmul(a, b)
            assert result.shape == (7, 4) and result.dtype == dtype
            np.testing.assert_allclose(result, a @ b, rtol=rtol, atol=rtol,
                                       err_msg=f"{a_name} @ {b_name}")
    assert mkl and set(mkl) == {np.dtype(dtype)}


def test_mkl_writes_into_out_and_takes_a_vector_on_the_left(mkl):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 3))
    big = np.full((10, 3), 7.0)
    returned = gemm.matmul(a, b, out=big[2:8])
    assert returned.base is big or returned is big[2:8] or np.shares_memory(returned, big)
    np.testing.assert_allclose(big[2:8], a @ b, rtol=1e-12)
    assert (big[:2] == 7).all() and (big[8:] == 7).all()
    v = rng.standard_normal(5)
    np.testing.assert_allclose(gemm.matmul(v, b), v @ b, rtol=1e-12)
    assert gemm.matmul(v, b).shape == (3,)
    assert len(mkl) == 3


def test_mkl_runs_a_stack_of_products_one_by_one(mkl):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 4, 2))
    np.testing.assert_allclose(gemm.matmul(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(gemm.matmul(a, b.transpose(0, 2, 1).copy().transpose(0, 2, 1)),
                               a @ b, rtol=1e-12)
    assert len(mkl) == 6


def test_what_mkl_cannot_read_goes_to_numpy(mkl):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((6, 8))
    cases = [
        (a[::2, ::2], rng.standard_normal((4, 3))),          # neither rows nor columns contiguous
        (a.astype(np.float32), rng.standard_normal((8, 3))),  # two dtypes
        (np.arange(12).reshape(3, 4), np.arange(8).reshape(4, 2)),  # integers
        (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))),  # a stack times a matrix
        (rng.standard_normal((3, 4)), rng.standard_normal(4)),  # a vector on the right
    ]
    for x, y in cases:
        np.testing.assert_array_equal(gemm.matmul(x, y), np.matmul(x, y))
    assert not mkl


def test_mkl_gives_the_same_bits_whatever_the_alignment(mkl):
    """Resume is exact only if the same inputs give the same bits; MKL picks its
    code path by the operands' alignment, so check that it does not change them."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 77)).astype(np.float32)
    b = rng.standard_normal((77, 45)).astype(np.float32)
    reference = gemm.matmul(a, b)
    for offset in range(1, 16, 3):
        buffer_a = np.empty(a.size + offset, np.float32)
        buffer_b = np.empty(b.size + offset, np.float32)
        shifted_a = buffer_a[offset:].reshape(a.shape)
        shifted_b = buffer_b[offset:].reshape(b.shape)
        shifted_a[...], shifted_b[...] = a, b
        np.testing.assert_array_equal(gemm.matmul(shifted_a, shifted_b), reference)


def test_the_numpy_backend_is_chosen_by_environment_or_use(monkeypatch):
    monkeypatch.setenv("MICROGRAD_MKL", "0")
    monkeypatch.setattr(mkl_library, "_library", None)
    assert not mkl_library.available()
    a = np.random.default_rng(4).standard_normal((300, 200))
    np.testing.assert_array_equal(gemm.matmul(a, a.T), a @ a.T)
    assert vector_math.tanh(np.zeros(1 << 18)) is None
    with pytest.raises(ValueError, match="'mkl' or 'numpy'"):
        mkl_library.use("openblas")
    mkl_library.use("mkl")


def test_openblas_keeps_one_thread_beside_mkl(mkl):
    """MKL's OpenMP workers and OpenBLAS's would otherwise share two cores (a
    20 us product took 2 ms); NumPy's own threads come back with use('numpy')."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def openblas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["internal_api"] == "openblas"}
    if not openblas_threads():
        pytest.skip("NumPy is not linked to OpenBLAS here")
    assert openblas_threads() == {1}
    mkl_library.use("numpy")
    mkl_library.available()
    restored = openblas_threads()
    mkl_library.use("mkl")
    mkl_library.available()
    assert openblas_threads() == {1}
    if (os.cpu_count() or 1) > 1 and not (os.environ.get("OPENBLAS_NUM_THREADS")
                                          or os.environ.get("OMP_NUM_THREADS")):
        assert max(restored) > 1  # NumPy's own threads were back


def test_a_small_model_never_loads_mkl():
    code = ("import micrograd.nn as mn, micrograd.tensor as mt\n"
            "m = mn.Sequential(mn.Linear(3, 8), mn.ReLU(), mn.Linear(8, 1))\n"
            "o = mt.Adam(m.parameters())\n"
            "for _ in range(3):\n"
            "    o.zero_grad(); m(mt.randn(16, 3)).sum().backward(); o.step()\n"
            "print(open('/proc/self/maps').read().count('libmkl'))")
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/self/maps")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("make", [
    lambda nn: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Conv2d(4, 6, 1), nn.Tanh(), nn.Flatten(),
                             nn.Linear(6 * 3 * 3, 5)),
    lambda nn: nn.Sequential(nn.Conv2d(1, 4, 5, stride=2, padding=2), nn.Sigmoid(),
                             nn.AvgPool2d(3, stride=2, padding=1), nn.Flatten(),
                             nn.Linear(4 * 2 * 2, 3)),
    lambda nn: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(4, 6, 3, groups=2, dilation=2), nn.Flatten(),
                             nn.Linear(6 * 3 * 3, 2)),
], ids=["conv_bn_pool", "strided", "grouped"])
def test_networks_on_mkl_match_torch(mkl, make):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).standard_normal((4, 3, 7, 7) if "BatchNorm2d" in repr(
        make(mn)) else (4, 1, 7, 7))
    assert_torch_parity(make(mn).to(mt.float64), make(torch.nn).double(), x, train=True)
    assert mkl and set(mkl) == {np.dtype(np.float64)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vml_tanh_exp_and_sigmoid_match_numpy_keep_the_layout_and_the_limits(mkl, dtype):
    x = np.random.default_rng(8).standard_normal((4, 6, 5, 3)).astype(dtype) * 30
    x[0, 0, 0, :3] = [-np.inf, np.inf, np.nan]
    batch = x.transpose(0, 3, 1, 2)  # NCHW view of channels-last memory, as convs leave it
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-batch))
        exp = np.exp(-batch)
    for ours, reference in ((vector_math.tanh(batch), np.tanh(batch)),
                            (vector_math.exp(batch, negate=True), exp),
                            (Sigmoid.values(batch), expected)):
        assert ours.strides == batch.strides
        np.testing.assert_allclose(ours, reference, rtol=1e-6 if dtype == np.float32 else 1e-14,
                                   atol=1e-30)
    assert Sigmoid.values(np.array([-np.inf, -1e4, 1e4, np.inf], dtype)).tolist() == [
        0, 0, 1, 1]
    assert vector_math.tanh(batch[:, :, ::2]) is None  # not dense: NumPy's code
    assert vector_math.tanh(batch.astype(np.float16)) is None


@pytest.fixture
def loops():
    """The compiled loops (skipped without numba), and the backend as it was after
    the test, whichever the test chose."""
    pytest.importorskip("numba")
    from micrograd import kernels

    chosen = os.environ.get("MICROGRAD_KERNELS", "").strip().lower()
    before = "numpy" if chosen == "numpy" else "numba"
    kernels.use("numba")
    yield kernels
    kernels.use(before)


def _mkl_threads():
    """MKL's thread count for the calling thread."""
    import ctypes
    return mkl_library.bind("MKL_Get_Max_Threads", ctypes.c_int)()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("negated", [False, True])
@pytest.mark.parametrize("layout", ["C", "channels_last", "in_place"])
def test_sigmoid_per_core_gives_the_bits_of_its_three_passes(mkl, loops, dtype, negated,
                                                            layout):
    """``vector_math.sigmoid``: each core negates, exponentiates (VML on that core
    alone) and finishes its own piece; the bits of VML's exp on both cores
    followed by NumPy's 1 + e and reciprocal, overflow and NaN included, the
    layout kept, and MKL's thread count left as it was on the calling thread."""
    x = np.random.default_rng(4).standard_normal((6, 5, 7, 9)).astype(dtype) * 30
    x[0, 0, 0, :4] = [-np.inf, np.inf, np.nan, -1e4]
    if layout == "channels_last":
        x = x.transpose(0, 3, 1, 2)
    with np.errstate(over="ignore"):
        e = vector_math.exp(x, negate=not negated)
        expected = np.reciprocal(e + 1)
    threads = _mkl_threads()
    out = x.copy(order="K") if layout == "in_place" else None
    ours = vector_math.sigmoid(out if out is not None else x, out, negated)
    assert ours is not None and (out is None or ours is out)
    assert ours.strides == x.strides
    np.testing.assert_array_equal(ours, expected)
    assert _mkl_threads() == threads
    loops.use("numpy")
    assert vector_math.sigmoid(x) is None  # no loops: the engine's passes run


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["Tanh", "Sigmoid", "ReLU"])
@pytest.mark.parametrize("shape", [(300, 70), (4, 30, 5, 7)])
def test_batch_norm_and_activation_per_core_give_the_bits_of_the_passes(mkl, loops, dtype,
                                                                        activation, shape,
                                                                        monkeypatch):
    """``normalise_in_place`` with an activation: with the loops and MKL each core
    normalises and activates its rows in one call
    (``normalise_running_activated``: tanh, or the sigmoid's exp and 1 / (1 + e)),
    giving the bits of NumPy's normalisation followed by the activation's own
    pass; a ReLU stays a pass of its own."""
    from micrograd import kernels
    from micrograd.engine import functions
    from micrograd.engine.batchnorm import normalise_in_place

    monkeypatch.setattr(kernels, "MIN_BYTES", 0)
    rng = np.random.default_rng(6)
    c = shape[1]
    vector = lambda low, high: rng.uniform(low, high, c).astype(dtype)
    stats = vector(-1, 1), vector(0.1, 3), vector(-2, 2), vector(-1, 1)
    layer_bias = vector(-0.5, 0.5)
    x = rng.standard_normal(shape).astype(dtype) * 3
    if len(shape) == 4:  # channels-last, as a convolution leaves it
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        calls = []
        if backend == "numba":
            loop = kernels.loops().normalise_running_activated
            monkeypatch.setattr(kernels.loops(), "normalise_running_activated",
                                lambda *a: calls.append(1) or loop(*a))
        out = x.copy(order="K")
        threads = _mkl_threads()
        assert normalise_in_place(out, *stats, 1e-3, layer_bias=layer_bias,
                                  activation=getattr(functions, activation)) is out
        assert _mkl_threads() == threads
        assert calls == ([1] if backend == "numba" and activation != "ReLU" else [])
        results.append(out)
    np.testing.assert_array_equal(results[1], results[0])
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    mean, var, weight, bias = (v.reshape(per_channel) for v in stats)
    normalised = (x + layer_bias.reshape(per_channel) - mean) / np.sqrt(var + 1e-3) * weight + bias
    expected = {"Tanh": np.tanh, "ReLU": lambda v: np.maximum(v, 0),
                "Sigmoid": lambda v: 1 / (1 + np.exp(-v))}[activation](normalised)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results[1], expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
def test_activations_on_mkl_match_torch(mkl, name):
    torch = pytest.importorskip("torch")
    make = lambda nn: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), getattr(nn, name)(),
                                    nn.Flatten(), nn.Linear(3 * 5 * 5, 4), getattr(nn, name)())
    x = np.random.default_rng(9).standard_normal((6, 2, 5, 5)) * 3
    assert_torch_parity(make(mn).to(mt.float64), make(torch.nn).double(), x, train=True)


def test_mkl_shares_gnu_openmp_with_numbas_loops(mkl):
    """One OpenMP runtime for MKL and numba's parallel loops: no two pools of
    threads spinning on the same cores."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import ctypes
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no libgomp here: MKL keeps its own OpenMP")
    if os.environ.get("MKL_THREADING_LAYER"):
        pytest.skip("the user chose MKL's threading layer")
    gemm.matmul(np.ones((64, 64)), np.ones((64, 64)))
    layers = {lib.get("threading_layer") for lib in threadpoolctl.threadpool_info()
              if lib["internal_api"] == "mkl"}
    assert layers == {"gnu"}


def test_address_is_the_first_values_for_every_layout():
    """``mkl.address``, which hands MKL its pointers, through the buffer protocol
    or, for what that refuses, NumPy's ctypes attribute: the first value's
    address for dense, transposed, sliced, strided and read-only arrays."""
    m = np.arange(60, dtype=np.float32).reshape(6, 10)
    frozen = m.copy()
    frozen.flags.writeable = False
    for name, a in {"C": m, "F": m.T, "rows": m[2:], "columns": m[:, 3:], "strided": m[::2],
                    "sliced_T": m[:, 1:].T, "read_only": frozen, "vector": m[1]}.items():
        for transposed in (False, True):
            assert mkl_library.address(a, transposed) == a.ctypes.data, name


def test_many_rows_and_a_long_inner_dimension_send_a_smaller_product_to_mkl(monkeypatch):
    """A classifier head's (256, 256) x (256, 10) goes to MKL; as many
    multiply-adds over a short inner dimension (its backward's (256, 10) x
    (10, 256)) or on few rows (its weight gradient's (10, 256) x (256, 256))
    stay on NumPy; each gives NumPy's values to float32 rounding."""
    if not mkl_library.available():
        pytest.skip("MKL (the fast extra) is not installed")
    calls = []
    bind = gemm._gemm
    monkeypatch.setattr(gemm, "_gemm", lambda dtype: (lambda f: None if f is None else (
        lambda *a: calls.append(a[3:6]) or f(*a)))(bind(dtype)))
    rng = np.random.default_rng(0)
    head = rng.standard_normal((256, 256)).astype(np.float32)
    weight = rng.standard_normal((10, 256)).astype(np.float32)
    grad = rng.standard_normal((256, 10)).astype(np.float32)
    np.testing.assert_allclose(gemm.matmul(head, weight.T), head @ weight.T, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(gemm.matmul(grad, weight), grad @ weight, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gemm.matmul(grad.T, head), grad.T @ head, rtol=1e-4, atol=1e-4)
    assert calls == [(256, 10, 256)]  # (m, n, k) of the first product only
