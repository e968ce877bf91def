"""The optimisers' compiled loops (micrograd/kernels, numba) give the NumPy code's bits.

Each optimiser runs the same steps once through its NumPy passes (the
reference) and once through its numba loop; parameters and state must be
equal bit for bit, in float32 and float64. Without numba installed the
comparisons skip, and the NumPy code is what runs.
"""
import subprocess
import sys

import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd import kernels

from conftest import assert_torch_parity

CASES = [
    ("Adam", {}),
    ("Adam", dict(amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(weight_decay=0.05)),
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("RMSprop", dict(weight_decay=0.1)),
    ("RMSprop", dict(centered=True, momentum=0.5)),  # the NumPy code in both runs
]


@pytest.fixture(autouse=True)
def restore_backend(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_BYTES", 0)  # the loops take the tests' small arrays
    yield
    kernels.use("numba")


def train(backend, name, options, dtype, steps=4, load=False):
    kernels.use(backend)
    if load:
        kernels.loops()
    mt.manual_seed(0)
    model = mn.Sequential(mn.Linear(20, 30), mn.ReLU(), mn.Linear(30, 3)).to(dtype)
    optimizer = getattr(mt, name)(model.parameters(), **options)
    x = mt.Tensor(np.random.default_rng(0).standard_normal((16, 20)), dtype=dtype)
    y = mt.Tensor(np.arange(16) % 3)
    for _ in range(steps):
        optimizer.zero_grad()
        mt.CrossEntropyLoss()(model(x), y).backward()
        optimizer.step()
    state = [np.asarray(v) for s in optimizer.state.values() for v in s.values()
             if isinstance(v, np.ndarray)]
    return [p.data.copy() for p in model.parameters()] + state


@pytest.mark.parametrize("name, options", CASES)
@pytest.mark.parametrize("dtype", [mt.float32, mt.float64])
def test_compiled_loops_give_the_numpy_bits(name, options, dtype):
    pytest.importorskip("numba")
    reference = train("numpy", name, options, dtype)
    compiled = train("numba", name, options, dtype)
    assert kernels.loops() is not None
    assert len(reference) == len(compiled)
    for a, b in zip(reference, compiled):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_numpy_backend_is_chosen_by_environment(monkeypatch):
    monkeypatch.setenv("MICROGRAD_KERNELS", "numpy")
    kernels._loops = None
    assert kernels.loops() is None
    with pytest.raises(ValueError, match="backend must be"):
        kernels.use("fortran")


def test_loops_take_only_contiguous_arrays_of_one_float_dtype(monkeypatch):
    a = np.zeros((4, 6), np.float32)
    assert kernels.fusable(a, a.copy())
    assert not kernels.fusable(a, a.T)
    assert not kernels.fusable(a, a.astype(np.float64))
    assert not kernels.fusable(np.zeros(3, np.int64))
    monkeypatch.setattr(kernels, "MIN_BYTES", 1024)
    assert not kernels.fusable(a, a.copy())  # 96 bytes: the NumPy code
    assert kernels.fusable(np.zeros(256, np.float32))


def test_a_small_model_never_imports_numba():
    """Loading numba costs about half a second: a 2-parameter run must not pay it."""
    code = ("import sys, numpy as np, micrograd.nn as mn, micrograd.tensor as mt\n"
            "m = mn.Sequential(mn.Conv2d(1, 4, 3), mn.MaxPool2d(2), mn.Flatten(), mn.Linear(64, 2))\n"
            "o = mt.Adam(m.parameters())\n"
            "for _ in range(3):\n"
            "    o.zero_grad(); m(mt.randn(2, 1, 10, 10)).sum().backward(); o.step()\n"
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_transposed_parameter_takes_the_numpy_code():
    pytest.importorskip("numba")
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        w = mt.Tensor(np.arange(12.0).reshape(3, 4).T.copy().T, requires_grad=True)
        assert not w.data.flags.c_contiguous
        optimizer = mt.Adam([w], lr=0.1)
        for _ in range(3):
            optimizer.zero_grad()
            (w * w).sum().backward()
            optimizer.step()
        results.append(w.data.copy())
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=5, stride=2, padding=2),
    dict(kernel_size=(3, 2), stride=(2, 1), dilation=(2, 1)),
    dict(kernel_size=1),
])
@pytest.mark.parametrize("dtype", [mt.float32, mt.float64])
def test_compiled_col2im_matches_the_numpy_input_gradient(kwargs, dtype, monkeypatch):
    pytest.importorskip("numba")
    from micrograd.engine import conv

    monkeypatch.setattr(conv, "_COL2IM_CHUNK_BYTES", 2048)  # several groups of samples
    grads = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        mt.manual_seed(0)
        layer = mn.Conv2d(3, 4, **kwargs).to(dtype)
        x = mt.Tensor(np.random.default_rng(1).standard_normal((5, 3, 11, 10)), dtype=dtype,
                      requires_grad=True)
        y = layer(x)
        (y * mt.Tensor(np.random.default_rng(2).standard_normal(y.shape), dtype=dtype)).sum().backward()
        grads.append(x.grad.data)
    assert grads[1].dtype == grads[0].dtype
    rtol = 1e-12 if dtype == mt.float64 else 1e-5
    np.testing.assert_allclose(grads[1], grads[0], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, stride=1, dilation=2),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, ceil_mode=True),       # tiling windows, the last one past the edge
    dict(kernel_size=(2, 3), padding=1),        # tiling windows, uncovered cells
])
@pytest.mark.parametrize("dtype", [mt.float32, mt.float64])
def test_compiled_max_pool_matches_the_numpy_passes(kwargs, dtype):
    pytest.importorskip("numba")
    x_np = np.random.default_rng(0).integers(0, 3, (3, 4, 9, 9)).astype(np.float64)
    x_np[0, 0, 0, 1] = np.nan  # propagates, in both
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        x = mt.Tensor(x_np, dtype=dtype, requires_grad=True)
        y = mn.MaxPool2d(**kwargs)(x)
        proj = np.random.default_rng(1).standard_normal(y.shape)
        (y * mt.Tensor(proj, dtype=dtype)).sum().backward()
        results.append((y.data, x.grad.data))
    (y0, g0), (y1, g1) = results
    np.testing.assert_array_equal(y1, y0)
    # Overlapping windows add their shares in another order: equal to rounding.
    np.testing.assert_allclose(g1, g0, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=2, padding=1),
                                    dict(kernel_size=(3, 2), stride=1)])
@pytest.mark.parametrize("dtype", [mt.float32, mt.float64])
def test_compiled_relu_avg_pool_matches_the_numpy_passes(kwargs, dtype):
    pytest.importorskip("numba")
    x_np = np.random.default_rng(0).standard_normal((3, 4, 9, 8))
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        x = mt.Tensor(x_np, dtype=dtype, requires_grad=True)
        y = mn.fuse(mn.Sequential(mn.ReLU(), mn.AvgPool2d(**kwargs)))(x)
        assert type(y._ctx).__name__ == "ReLUAvgPool2d"
        proj = np.random.default_rng(1).standard_normal(y.shape)
        (y * mt.Tensor(proj, dtype=dtype)).sum().backward()
        results.append((y.data, x.grad.data))
    (y0, g0), (y1, g1) = results
    np.testing.assert_array_equal(y1, y0)  # the same sums in the same order
    np.testing.assert_array_equal(g1, g0)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
@pytest.mark.parametrize("dtype", [mt.float32, mt.float64])
@pytest.mark.parametrize("layers, shape", [
    # Behind padded pooling the gradient is a cropped (strided) view. (The
    # input's gradient then comes through col2im, whose loop sums in another
    # order: not compared.)
    (lambda act: [mn.Conv2d(2, 3, 3, padding=1), act, mn.MaxPool2d(2, padding=1)], (3, 2, 6, 5)),
    (lambda act: [act, mn.Conv2d(2, 3, 1)], (3, 2, 6, 5)),  # an NCHW input batch
    (lambda act: [mn.Linear(5, 4), act], (3, 5)),           # a matrix
], ids=["cropped", "nchw", "matrix"])
def test_compiled_activation_backward_gives_the_numpy_bits(name, dtype, layers, shape):
    pytest.importorskip("numba")
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        mt.manual_seed(0)
        model = mn.Sequential(*layers(getattr(mn, name)())).to(dtype)
        x = mt.Tensor(np.random.default_rng(0).standard_normal(shape), dtype=dtype,
                      requires_grad=True)
        y = model(x)
        (y * mt.Tensor(np.random.default_rng(1).standard_normal(y.shape), dtype=dtype)).sum().backward()
        results.append([y.data] + [p.grad.data for p in model.parameters()]
                       + ([x.grad.data] if len(shape) == 2 or name_of(model[1]) == "Conv2d" else []))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def name_of(module):
    return type(module).__name__


def test_merged_views_give_loops_the_longest_inner_axis():
    nhwc = np.zeros((2, 5, 4, 3), np.float32)
    batch = nhwc.transpose(0, 3, 1, 2)  # NCHW view of a channels-last array
    (view,) = kernels.merged(batch)
    assert view.shape == (1, 1, 1, 120) and np.shares_memory(view, nhwc)
    cropped = np.zeros((2, 7, 6, 3), np.float32)[:, 1:-1, 1:-1].transpose(0, 3, 1, 2)
    a, b = kernels.merged(batch, cropped)  # visited in the first one's memory order
    assert a.shape == b.shape == (1, 2, 5, 12)
    a[...] = 1
    assert nhwc.all()
    (m,) = kernels.merged(np.zeros((3, 4)).T)
    assert m.shape == (1, 1, 1, 12)


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_batch_norm_matrix_loops_match_torch(dims, training, backend, monkeypatch):
    """BatchNorm on the (M, C) matrix: BatchNorm1d's input, or a convolution's
    channels-last output; with numba its forward and backward are compiled passes."""
    torch = pytest.importorskip("torch")
    if backend == "numba":
        pytest.importorskip("numba")
    kernels.use(backend)
    called = set()
    if backend == "numba":
        for name in ("scale_shift", "batch_norm_sums", "batch_norm_input_grad"):
            loop = getattr(kernels.loops(), name)
            monkeypatch.setattr(kernels.loops(), name,
                                lambda *a, _n=name, _f=loop: called.add(_n) or _f(*a))

    def layers(nn):
        if dims == 1:
            return [nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh()]
        # The 1 x 1 convolution sends its input gradient back channels-last.
        return [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Tanh(), nn.Conv2d(4, 2, 1)]
    theirs = torch.nn.Sequential(*layers(torch.nn)).double()
    with torch.no_grad():
        theirs[1].weight.copy_(torch.linspace(-1.5, 2.0, theirs[1].num_features))
        theirs[1].running_mean.copy_(torch.linspace(-0.2, 0.3, theirs[1].num_features))
    shape = (7, 6) if dims == 1 else (5, 3, 7, 6)
    x = np.random.default_rng(0).standard_normal(shape) + 3.0
    assert_torch_parity(mn.Sequential(*layers(mn)).to(mt.float64), theirs, x, train=training)
    if backend == "numba":
        assert called == {"scale_shift", "batch_norm_sums", "batch_norm_input_grad"}


def _numpy_then_loop(monkeypatch, name, run):
    """run() on NumPy's code, then with the compiled loops, the loop ``name``
    watched: (NumPy's result, the loops' result), once it is checked that the
    loop ran with the loops only."""
    results = []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        called = []
        if backend == "numba":
            loop = getattr(kernels.loops(), name)
            monkeypatch.setattr(kernels.loops(), name, lambda *a: called.append(1) or loop(*a))
        results.append(run())
        assert called == ([1] if backend == "numba" else [])
    return tuple(results)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("layer_bias", [False, True])
@pytest.mark.parametrize("shape", [(9, 5), (3, 5, 4, 2)])
def test_batch_norm_in_place_loop_gives_the_numpy_bits(dtype, negate, affine, layer_bias, shape,
                                                      monkeypatch):
    """Evaluation's BatchNorm written over a layer's fresh output
    (``normalise_in_place``): the compiled loop, which also does the per-channel
    arithmetic, against the NumPy code, bit for bit; with or without the affine
    parameters and the layer's bias, negated (for a sigmoid) or not, on a
    matrix and on a channels-last image batch, in float32 and float64."""
    pytest.importorskip("numba")
    from micrograd.engine.batchnorm import normalise_in_place

    rng = np.random.default_rng(0)
    c = shape[1]
    vector = lambda low, high: rng.uniform(low, high, c).astype(dtype)
    mean, var = vector(-1, 1), vector(0.1, 3)
    weight, bias = (vector(-2, 2), vector(-1, 1)) if affine else (None, None)
    before = vector(-0.5, 0.5) if layer_bias else None
    x = rng.standard_normal(shape).astype(dtype) * 3
    if len(shape) == 4:  # channels-last, as a convolution leaves it
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    def normalise():
        out = x.copy(order="K")
        assert normalise_in_place(out, mean, var, weight, bias, 1e-3, negate, before) is out
        return out
    reference, compiled = _numpy_then_loop(monkeypatch, "normalise_running", normalise)
    np.testing.assert_array_equal(compiled, reference)
    per_channel = (1, c) + (1,) * (len(shape) - 2)
    expected = x + (0 if before is None else before.reshape(per_channel))
    expected = ((expected - mean.reshape(per_channel)) / np.sqrt(var + 1e-3).reshape(per_channel)
                * (1 if weight is None else weight.reshape(per_channel))
                + (0 if bias is None else bias.reshape(per_channel)))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(compiled, -expected if negate else expected,
                               rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("negated", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_sigmoid_last_step_loop_gives_the_numpy_bits(dtype, negated, channels_last,
                                                     monkeypatch):
    """The sigmoid's 1 / (1 + e^-x) after its exponential, as one compiled pass,
    against NumPy's add and reciprocal: the same bits, overflow (0) and
    underflow (1) included, on a matrix and on a channels-last image batch."""
    pytest.importorskip("numba")
    from micrograd.engine.functions import Sigmoid

    x = np.random.default_rng(3).standard_normal((40, 30)).astype(dtype) * 20
    x[0, :4] = [-np.inf, -1e4, 1e4, np.inf]
    if channels_last:  # (N, C, H, W) over (N, H, W, C) memory, as a convolution leaves it
        x = x.reshape(4, 10, 5, 6).transpose(0, 3, 1, 2)
    reference, compiled = _numpy_then_loop(
        monkeypatch, "reciprocal_of_one_plus",
        lambda: Sigmoid.values(np.negative(x) if negated else x.copy(order="K"), negated=negated))
    np.testing.assert_array_equal(compiled, reference)
    assert compiled.dtype == dtype and compiled.strides == x.strides
    rows = compiled.transpose(0, 2, 3, 1) if channels_last else compiled
    assert rows.reshape(40, 30)[0, :4].tolist() == [0, 0, 1, 1]


def test_optimisers_take_the_loops_for_small_parameters_once_numba_is_loaded(monkeypatch):
    """The optimiser loops give the NumPy bits, so once numba is loaded they take
    parameters below MIN_BYTES too; other loops keep the threshold."""
    pytest.importorskip("numba")
    monkeypatch.setattr(kernels, "MIN_BYTES", 1 << 30)
    small = np.zeros(10, np.float32)
    kernels.use("numba")
    assert kernels.for_arrays(small, same_bits=True) is None  # numba not loaded yet
    assert kernels.loops() is not None
    assert kernels.for_arrays(small, same_bits=True) is kernels.loops()
    assert kernels.for_arrays(small) is None
    assert kernels.for_arrays(small, small.astype(np.float64), same_bits=True) is None
    for name, options in CASES:
        reference = train("numpy", name, options, mt.float32)
        kernels.use("numba")
        kernels.loops()
        called = []
        adam = kernels.loops().adam
        monkeypatch.setattr(kernels.loops(), "adam", lambda *a: called.append(1) or adam(*a))
        compiled = train("numba", name, options, mt.float32, load=True)
        monkeypatch.undo()
        monkeypatch.setattr(kernels, "MIN_BYTES", 1 << 30)
        if name == "Adam":
            assert called
        for a, b in zip(reference, compiled):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pool", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=2, stride=1, dilation=2),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, ceil_mode=True),  # tiling windows, the last past the edge
    dict(kernel_size=(2, 3)),             # tiling windows, uncovered columns
])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_batch_norm_then_max_pool_fused_matches_torch(pool, training, backend):
    torch = pytest.importorskip("torch")
    if backend == "numba":
        pytest.importorskip("numba")
    kernels.use(backend)

    def layers(nn):
        return [nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(**pool),
                nn.Flatten()]
    ours = mn.fuse(mn.Sequential(layers(mn))).to(mt.float64)
    # With the compiled loops the BatchNorm fuses with the pooling (training too);
    # without, it folds into the convolution (evaluation only).
    fused = "BatchNormMaxPool2d" if backend == "numba" else "FoldedBatchNorm2d"
    assert type(ours[1]).__name__ == fused
    theirs = torch.nn.Sequential(*layers(torch.nn)).double()
    with torch.no_grad():
        theirs[1].weight.copy_(torch.linspace(-1.5, 2.0, 4, dtype=torch.float64))  # a negative scale
        theirs[1].running_mean.copy_(torch.linspace(-0.2, 0.3, 4, dtype=torch.float64))
        theirs[1].running_var.copy_(torch.linspace(0.5, 2.0, 4, dtype=torch.float64))
    x_np = np.random.default_rng(0).standard_normal((5, 3, 9, 8))
    assert_torch_parity(ours, theirs, x_np, train=training)  # running statistics included
    if backend == "numba":  # Flatten <- the fused node, its ReLU included
        y = ours(mt.Tensor(x_np, dtype=mt.float64, requires_grad=True))
        assert type(y._ctx.parents[0]._ctx).__name__ == "BatchNormMaxPool2d"
        assert [type(m).__name__ for m in ours][1:4] == ["BatchNormMaxPool2d", "Identity",
                                                         "Identity"]


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_compiled_column_moments_match_float64_reference(offset):
    pytest.importorskip("numba")
    from micrograd.engine.batchnorm import BatchNorm

    values = (np.random.default_rng(0).standard_normal((5000, 7)) * 2.0 + offset).astype(np.float32)
    exact = values.astype(np.float64)
    results = {}
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        results[backend] = BatchNorm._matrix_moments(values)
    for mean, var in results.values():
        assert mean.dtype == var.dtype == np.float32
        np.testing.assert_allclose(mean, exact.mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(var, exact.var(0), rtol=1e-5)


def test_a_numba_that_cannot_load_leaves_the_numpy_code(monkeypatch):
    """numba raises RuntimeError, not ImportError, when it has nowhere to cache."""
    import builtins

    real_import = builtins.__import__

    def failing(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "numba" or "numba_loops" in (fromlist or ()):
            raise RuntimeError("cannot cache function: no locator available")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.delitem(sys.modules, "micrograd.kernels.numba_loops", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing)
    kernels._loops = None
    assert kernels.loops() is None
    monkeypatch.setattr(builtins, "__import__", real_import)
    kernels._loops = None


def test_per_sample_loops_give_the_same_bits_on_every_core(monkeypatch):
    """Each _PerSample loop run with its samples spread over the cores (as for
    arrays of PARALLEL_MIN_BYTES or more), and each optimiser loop on a piece of
    its parameter per core, against the plain loop: the same bits."""
    pytest.importorskip("numba")
    kernels.use("numba")
    loops = kernels.loops()
    per_sample = {name: fn for name, fn in vars(loops).items()
                  if isinstance(fn, (loops._PerSample, loops._Elementwise))}
    assert len(per_sample) >= 15
    used = set()
    for name, fn in per_sample.items():
        monkeypatch.setattr(fn, "parallel",
                            lambda *a, _f=fn.parallel, _n=name: used.add(_n) or _f(*a))

    monkeypatch.setattr(loops, "THREADS", 2)  # the compiled im2col, on a one-core machine too

    def run(parallel):
        monkeypatch.setattr(loops, "PARALLEL_MIN_BYTES", 0 if parallel else 1 << 60)
        mt.manual_seed(0)
        model = mn.fuse(mn.Sequential(
            mn.Conv2d(3, 8, 3, padding=1), mn.BatchNorm2d(8), mn.MaxPool2d(2),       # tiled
            mn.Conv2d(8, 4, 3, padding=1), mn.BatchNorm2d(4), mn.MaxPool2d(3, 2, 1),  # general
            mn.MaxPool2d(2, 1), mn.ReLU(), mn.AvgPool2d(2, 1),   # overlapping pooling
            mn.Conv2d(4, 4, 1), mn.MaxPool2d(2), mn.Flatten(),    # tiling max pool
            mn.Linear(4, 6), mn.BatchNorm1d(6), mn.Tanh(), mn.Linear(6, 2))).double()
        x = mt.Tensor(np.random.default_rng(0).standard_normal((5, 3, 16, 16)),
                      requires_grad=True)
        # A wide layer on a small batch in evaluation: its BatchNorm and sigmoid
        # are written over its output (batchnorm.normalise_in_place).
        wide = mn.fuse(mn.Sequential(mn.Linear(12, 10), mn.BatchNorm1d(10), mn.Sigmoid()))
        wide = wide.double().eval()
        wide[1].running_mean.data[:] = np.linspace(-1, 1, 10)
        with mt.no_grad():
            evaluated = wide(mt.Tensor(np.random.default_rng(2).standard_normal((3, 12)))).data
        y = model(x)
        (y * mt.Tensor(np.random.default_rng(1).standard_normal(y.shape))).sum().backward()
        grads = [p.grad.data.copy() for p in model.parameters()]
        params = list(model.parameters())
        for optimizer in (mt.Adam(params[0::3]), mt.Adam(params[0::3], amsgrad=True),
                          mt.SGD(params[1::3], lr=0.1, momentum=0.9, weight_decay=0.01),
                          mt.RMSprop(params[2::3])):
            for _ in range(2):  # SGD's momentum starts, then runs
                optimizer.step()
        return [evaluated, y.data, x.grad.data] + grads + [p.data for p in params]
    plain = run(False)
    assert not used
    spread = run(True)
    for a, b in zip(plain, spread):
        np.testing.assert_array_equal(a, b)
    assert used == set(per_sample)  # every one ran on every core


@pytest.mark.parametrize("kwargs", [dict(kernel_size=5, stride=2, padding=2),
                                    dict(kernel_size=3, dilation=2, padding=(3, 1)),
                                    dict(kernel_size=(2, 4), stride=(3, 1)),
                                    dict(kernel_size=3, padding=5, bias=False)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("grad", [True, False])
def test_compiled_nchw_im2col_builds_numpys_matrix(kwargs, channels, grad, monkeypatch):
    """An image batch (NCHW, one to four channels) unfolded by the compiled loop
    straight from the unpadded input, padding written as zeros (a padding wider
    than the kernel's reach included): NumPy's matrix, so the same output and
    weight gradient bits, kept for backward or built a piece at a time."""
    pytest.importorskip("numba")
    images = np.random.default_rng(0).standard_normal((4, channels, 11, 9))
    monkeypatch.setattr(kernels, "MIN_BYTES", 0)
    results, built = [], []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        if backend == "numba":
            loops = kernels.loops()
            unfold = loops.nchw_im2col
            monkeypatch.setattr(loops, "nchw_im2col", lambda *a: built.append(1) or unfold(*a))
        mt.manual_seed(0)
        conv = mn.Conv2d(channels, 5, **kwargs).double()
        if grad:
            y = conv(mt.Tensor(images))
            (y * mt.Tensor(np.random.default_rng(1).standard_normal(y.shape))).sum().backward()
            results.append([y.data] + [p.grad.data for p in conv.parameters()])
        else:
            with mt.no_grad():
                results.append([conv(mt.Tensor(images)).data])
    assert built
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=2),
                                    dict(dilation=2, padding=1), dict(padding=(0, 2))])
@pytest.mark.parametrize("grad", [True, False])
def test_compiled_im2col_builds_numpys_matrix(kwargs, grad, monkeypatch):
    """From the unpadded channels-last input, padding written as zeros: the same
    matrix, so the same output and weight gradient bits (kept for backward, or
    built a piece at a time under no_grad)."""
    pytest.importorskip("numba")
    nhwc = np.random.default_rng(0).standard_normal((3, 9, 7, 8))
    results, built = [], []
    for backend in ("numpy", "numba"):
        kernels.use(backend)
        if backend == "numba":
            loops = kernels.loops()
            monkeypatch.setattr(loops, "THREADS", 2)
            im2col = loops.im2col
            monkeypatch.setattr(loops, "im2col", lambda *a: built.append(1) or im2col(*a))
        mt.manual_seed(0)
        conv = mn.Conv2d(8, 5, 3, **kwargs).double()
        x = mt.Tensor(nhwc.transpose(0, 3, 1, 2))  # channels-last, as a layer leaves it
        if grad:
            y = conv(x)
            (y * mt.Tensor(np.random.default_rng(1).standard_normal(y.shape))).sum().backward()
            results.append([y.data, conv.weight.grad.data, conv.bias.grad.data])
        else:
            with mt.no_grad():
                results.append([conv(x).data])
    assert built
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
