"""The kernels written for speed on every network keep PyTorch's numbers.

Batch normalisation works on the (M, C) matrix behind channels-last inputs in
cache-sized row blocks (and on any other layout with plain NumPy); Sigmoid is
1 / (1 + e^-x) without the slower stable form; Tanh and Sigmoid mask owned
gradients in place. Each is checked against PyTorch (float64, rtol 1e-6)
where it is installed, across layouts and block sizes. Speed itself lives in
bench/.
"""
import importlib
import warnings

import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.nn.functional as F
import micrograd.tensor as mt
from micrograd.engine import batchnorm

fuse = importlib.import_module("micrograd.nn.fuse")  # the module: mn.fuse is the function

from conftest import assert_torch_parity

torch = pytest.importorskip("torch")


def rand(*shape, seed=0, offset=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * 2.0 + offset


def layout(array, kind):
    """The same values as (N, C, ...) in the memory layout named by kind."""
    if kind == "channels_last":
        return np.ascontiguousarray(array.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if kind == "strided":
        wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],))
        wide[..., ::2] = array
        return wide[..., ::2]
    return np.ascontiguousarray(array)


@pytest.mark.parametrize("shape, kind", [
    ((6, 5), "contiguous"),
    ((4, 3, 7), "contiguous"),
    ((4, 3, 5, 6), "contiguous"),
    ((4, 3, 5, 6), "channels_last"),
    ((4, 3, 5, 6), "strided"),
    ((64, 8, 6, 6), "channels_last"),  # several row blocks
])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_batch_norm_matches_torch_in_every_layout(shape, kind, training, offset, monkeypatch):
    monkeypatch.setattr(batchnorm, "_BLOCK_BYTES", 512)  # many blocks even for small inputs
    c = shape[1]
    cls = mn.BatchNorm1d if len(shape) < 4 else mn.BatchNorm2d
    tcls = torch.nn.BatchNorm1d if len(shape) < 4 else torch.nn.BatchNorm2d
    ours, theirs = cls(c), tcls(c).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(rand(c, seed=2)))
        theirs.bias.copy_(torch.from_numpy(rand(c, seed=3)))
        theirs.running_mean.copy_(torch.from_numpy(rand(c, seed=4) + offset))
        theirs.running_var.copy_(torch.from_numpy(rand(c, seed=5) ** 2 + 0.5))
    assert_torch_parity(ours, theirs, rand(*shape, offset=offset), train=training, atol=1e-9,
                        layout=lambda a: layout(a, kind))


def test_batch_norm_keeps_the_channels_last_layout_of_a_convolution():
    x = mn.Conv2d(2, 4, 3)(mt.randn(3, 2, 6, 6))
    assert x.data.transpose(0, 2, 3, 1).flags.c_contiguous
    y = mn.BatchNorm2d(4)(x)
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous


def test_float32_batch_norm_with_a_large_mean_stays_accurate():
    # The variance from deviations, not E[x^2] - E[x]^2: with a mean of 1000 and
    # a spread of 2 the latter would lose every digit in float32.
    x_np = rand(256, 3, 4, 4, offset=1000.0)
    ours = mn.BatchNorm2d(3)
    y = ours(mt.Tensor(layout(x_np, "channels_last").astype(np.float32)))
    expected = torch.nn.functional.batch_norm(torch.from_numpy(x_np), None, None, training=True)
    np.testing.assert_allclose(y.data, expected.numpy(), atol=2e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_matches_torch_at_the_extremes_without_warnings(dtype):
    values = np.array([-1e4, -745.0, -100.0, -88.7, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0,
                       40.0, 100.0, 1e4], dtype=dtype)
    x = mt.Tensor(values, dtype=dtype, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.sigmoid(x)
        y.sum().backward()
    tx = torch.from_numpy(values).requires_grad_(True)
    ty = torch.sigmoid(tx)
    ty.sum().backward()
    rtol = 1e-6 if dtype == np.float64 else 1e-6 * 2 ** 8
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=0)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=rtol, atol=1e-300)


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
def test_activation_gradient_leaves_a_retained_gradient_alone(name):
    # Masking in place is for a gradient no one else holds: y.grad is held.
    x = mt.Tensor(rand(4, 5), dtype=mt.float64, requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    y = getattr(mn, name)()(h)
    y.retain_grad()
    (y * mt.Tensor(rand(4, 5, seed=1), dtype=mt.float64)).sum().backward()
    kept = y.grad.data.copy()
    tx = torch.from_numpy(rand(4, 5)).requires_grad_(True)
    ty = getattr(torch, name.lower())(tx * 2.0)
    (ty * torch.from_numpy(rand(4, 5, seed=1))).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(y.grad.data, kept)
    np.testing.assert_allclose(y.grad.data, rand(4, 5, seed=1))


def _relu_max_pool_input():
    """Windows with tied maxima, all-negative windows, exact zeros and padding."""
    x = np.round(rand(3, 2, 9, 9), 0)
    x[0, 0, :4, :4] = -1.0
    x[1, 1, 2:6, 2:6] = 0.0
    return x


@pytest.mark.parametrize("pool", [
    dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3)),
])
def test_fuse_moves_relu_after_max_pool_with_the_same_values_and_gradients(pool):
    def layers():
        return [mn.Conv2d(2, 3, 1), mn.ReLU(), mn.MaxPool2d(**pool), mn.MaxPool2d(1),
                mn.Flatten()]
    plain = mn.Sequential(layers()).to(mt.float64)
    fused = mn.fuse(mn.Sequential(layers()).to(mt.float64))
    fused.load_state_dict(plain.state_dict())
    assert [type(m) for m in fused] == [mn.Conv2d, mn.MaxPool2d, mn.MaxPool2d, mn.ReLU,
                                       mn.Flatten]
    assert [type(m) for m in mn.fuse(fused)] == [type(m) for m in fused]  # idempotent
    assert list(fused.state_dict()) == list(plain.state_dict())
    grads = []
    for model in (plain, fused):
        x = mt.Tensor(_relu_max_pool_input(), dtype=mt.float64, requires_grad=True)
        y = model(x)
        (y * mt.Tensor(rand(*y.shape, seed=2), dtype=mt.float64)).sum().backward()
        grads.append((y.data, x.grad.data, model[0].weight.grad.data))
    for ours, reference in zip(*grads):
        np.testing.assert_array_equal(ours, reference)

    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(**pool), torch.nn.MaxPool2d(1),
                                 torch.nn.Flatten()).double()
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v.data))
                            for k, v in plain.state_dict().items()})
    tx = torch.from_numpy(_relu_max_pool_input()).requires_grad_(True)
    ty = theirs(tx)
    (ty * torch.from_numpy(rand(*ty.shape, seed=2))).sum().backward()
    np.testing.assert_allclose(grads[1][0], ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grads[1][1], tx.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kwargs, size", [
    (dict(kernel_size=2), 8),
    (dict(kernel_size=3, stride=2, padding=1), 9),            # overlapping windows
    (dict(kernel_size=2, stride=2, dilation=2), 9),           # disjoint stride, spread taps
    (dict(kernel_size=3, stride=2, ceil_mode=True), 8),       # windows past the edge
    (dict(kernel_size=17, stride=1), 18),                     # 289 offsets: two-byte record
])
def test_max_pool_in_sample_chunks_matches_torch_with_ties(kwargs, size, monkeypatch):
    from micrograd.engine import pooling

    monkeypatch.setattr(pooling, "_CHUNK_BYTES", 64)  # one sample per chunk
    x_np = np.random.default_rng(0).integers(0, 3, (3, 2, size, size)).astype(np.float64)
    x = mt.Tensor(layout(x_np, "channels_last"), dtype=mt.float64, requires_grad=True)
    y = mn.MaxPool2d(**kwargs)(x)
    proj = rand(*y.shape, seed=1)
    (y * mt.Tensor(proj, dtype=mt.float64)).sum().backward()
    tx = torch.from_numpy(x_np).requires_grad_(True)
    ty = torch.nn.MaxPool2d(**kwargs)(tx)
    (ty * torch.from_numpy(proj)).sum().backward()
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def _bn_layers(nn, dtype=None):
    return [nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64, 5), nn.BatchNorm1d(5)]


@pytest.fixture
def numpy_kernels():
    """The NumPy code only: with numba a BatchNorm2d before a MaxPool2d fuses with
    the pooling instead of folding into the convolution (tests/test_kernels.py)."""
    from micrograd import kernels

    kernels.use("numpy")
    yield
    kernels.use("numba")


def test_fuse_folds_batch_norm_under_eval_and_keeps_every_name(numpy_kernels):
    plain = mn.Sequential(_bn_layers(mn)).to(mt.float64)
    fused = mn.Sequential(_bn_layers(mn)).to(mt.float64)
    fused.load_state_dict(plain.state_dict())
    mn.fuse(fused)
    assert [type(m).__name__ for m in fused] == [
        "ConvBatchNorm2d", "FoldedBatchNorm2d", "MaxPool2d", "ReLU", "Flatten",
        "LinearBatchNorm1d", "FoldedBatchNorm1d"]
    assert [type(m) for m in mn.fuse(fused)] == [type(m) for m in fused]  # idempotent
    assert list(fused.state_dict()) == list(plain.state_dict())

    torch_model = torch.nn.Sequential(*_bn_layers(torch.nn)).double()
    x_np = rand(70, 3, 8, 8)  # a batch larger than Linear's 64 inputs: its fold pays
    # Training: the same steps, bit for bit, running statistics included.
    for step in range(3):
        outs = []
        for model in (plain, fused):
            model.zero_grad()
            x = mt.Tensor(x_np + step, dtype=mt.float64, requires_grad=True)
            y = model(x)
            (y * mt.Tensor(rand(*y.shape, seed=step), dtype=mt.float64)).sum().backward()
            outs.append([y.data, x.grad.data] + [p.grad.data for p in model.parameters()])
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)
    for (name, a), b in zip(plain.state_dict().items(), fused.state_dict().values()):
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data), err_msg=name)

    # Evaluation: folded weights, PyTorch's values and gradients.
    torch_model.load_state_dict({k: torch.from_numpy(np.asarray(v.data).copy())
                                 for k, v in fused.state_dict().items()})
    fused.eval()
    y = fused(mt.Tensor(x_np, dtype=mt.float64, requires_grad=True))
    assert type(y._ctx).__name__ == "Linear"  # folded: no BatchNorm node left
    assert_torch_parity(fused, torch_model, x_np, train=False)


def test_batch_norm_folding_leaves_what_it_cannot_fold_to_the_layers():
    no_stats = mn.fuse(mn.Sequential(mn.Conv2d(1, 2, 3), mn.BatchNorm2d(2, track_running_stats=False)))
    assert [type(m) for m in no_stats] == [mn.Conv2d, mn.BatchNorm2d]
    wrong_width = mn.fuse(mn.Sequential(mn.Linear(3, 4), mn.BatchNorm1d(5)))
    assert [type(m) for m in wrong_width] == [mn.Linear, mn.BatchNorm1d]
    # An unbatched image reaches BatchNorm2d as before, in training and evaluation.
    model = mn.fuse(mn.Sequential(mn.Conv2d(1, 2, 3), mn.BatchNorm2d(2)))
    for mode in (True, False):
        model.train(mode)
        with pytest.raises(ValueError, match="expected 4D input"):
            model(mt.randn(1, 5, 5))
    # A (N, L, features) input to Linear: BatchNorm1d normalises axis 1, so no fold.
    seq = mn.fuse(mn.Sequential(mn.Linear(3, 4), mn.BatchNorm1d(2))).eval()
    plain = mn.Sequential(mn.Linear(3, 4), mn.BatchNorm1d(2)).eval()
    plain.load_state_dict(seq.state_dict())
    x = mt.randn(5, 2, 3)
    np.testing.assert_array_equal(seq(x).data, plain(x).data)
    # A batch smaller than the weight: scaling the weight would cost more than
    # normalising the output, so the layers run apart (the same numbers).
    wide = mn.fuse(mn.Sequential(mn.Linear(50, 4), mn.BatchNorm1d(4))).eval()
    y = wide(mt.randn(3, 50))
    assert type(y._ctx).__name__ == "BatchNorm"


def test_flatten_sends_a_channels_last_gradient_back_channels_last():
    x_np = rand(3, 4, 5, 6)
    x = mt.Tensor(layout(x_np, "channels_last"), dtype=mt.float64, requires_grad=True)
    h = x * 1.0  # keeps the layout
    h.retain_grad()
    y = mn.Flatten()(h)
    proj = rand(*y.shape, seed=1)
    (y * mt.Tensor(proj, dtype=mt.float64)).sum().backward()
    assert h.grad.data.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(h.grad.data, proj.reshape(3, 4, 5, 6))
    np.testing.assert_array_equal(x.grad.data, proj.reshape(3, 4, 5, 6))
    # Any other layout gets the plain reshape back.
    z = mt.Tensor(x_np, dtype=mt.float64, requires_grad=True)
    mn.Flatten()(z).sum().backward()
    assert z.grad.data.flags.c_contiguous


@pytest.mark.parametrize("kwargs", [dict(), dict(padding=1), dict(bias=False), dict(stride=2)])
@pytest.mark.parametrize("kind", ["contiguous", "channels_last"])
def test_pointwise_convolution_is_one_gemm_with_torchs_numbers(kwargs, kind):
    assert_torch_parity(mn.Conv2d(3, 5, 1, **kwargs), torch.nn.Conv2d(3, 5, 1, **kwargs),
                        rand(4, 3, 5, 6), atol=1e-12, layout=lambda a: layout(a, kind))


@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, padding=1), dict(kernel_size=5, stride=2),
                                    dict(kernel_size=3, dilation=2, bias=False)])
def test_few_channel_nchw_input_is_unfolded_from_nchw_with_torchs_numbers(kwargs, monkeypatch):
    from micrograd.engine import conv

    x_np = rand(6, 3, 11, 10)
    ours, theirs = mn.Conv2d(3, 4, **kwargs), torch.nn.Conv2d(3, 4, **kwargs)
    assert_torch_parity(ours, theirs, x_np, atol=1e-12)
    assert ours(mt.Tensor(x_np, dtype=mt.float64, requires_grad=True))._ctx.nchw_cols
    monkeypatch.setattr(conv, "_COLS_CHUNK_BYTES", 4096)  # under no_grad: several pieces
    with mt.no_grad():
        y = ours(mt.Tensor(x_np, dtype=mt.float64))
    np.testing.assert_allclose(y.data, theirs(torch.from_numpy(x_np)).detach().numpy(),
                               rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("activation", [None, "ReLU", "Tanh", "Sigmoid"])
@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("batch", [2, 64])  # the weight larger than the output, and smaller
@pytest.mark.parametrize("affine,bias", [(True, True), (False, False)])
def test_a_layer_with_its_batch_norm_and_activation_matches_pytorch(activation, kind, batch,
                                                                    affine, bias):
    """Linear/Conv2d, BatchNorm and the activation after them become one fused layer
    (the activation's place an Identity, every name kept). It matches PyTorch in
    training and evaluation, with gradients and under no_grad, where the
    BatchNorm and the activation are written over the layer's new output:
    normalised with the layer's bias in the mean (or folded into the weights
    where the weight is the smaller), a sigmoid's negation in the scale."""
    import torch

    def make(nn):
        if kind == "linear":
            layers = [nn.Linear(40, 30, bias=bias), nn.BatchNorm1d(30, affine=affine)]
        else:
            layers = [nn.Conv2d(6, 30, 3, bias=bias), nn.BatchNorm2d(30, affine=affine)]
        return nn.Sequential(*layers, *([getattr(nn, activation)()] if activation else []))

    fused, plain = mn.fuse(make(mn)), make(mn)
    assert type(fused[0]).__name__ == ("LinearBatchNorm1d" if kind == "linear"
                                       else "ConvBatchNorm2d")
    assert [type(m).__name__ for m in fused][2:] == ["Identity"] * bool(activation)
    assert list(fused.state_dict()) == list(plain.state_dict())
    theirs = make(torch.nn).double()
    with torch.no_grad():
        theirs[1].running_mean.copy_(torch.linspace(-1, 1, 30, dtype=torch.float64))
        theirs[1].running_var.copy_(torch.linspace(0.5, 2, 30, dtype=torch.float64))
    x = rand(batch, 40) if kind == "linear" else rand(batch, 6, 4, 4)
    assert_torch_parity(fused, theirs, x, train=False)
    calls = []
    real = fuse.normalise_in_place
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fuse, "normalise_in_place",
                      lambda *a, **k: calls.append(a) or real(*a, **k))
        with mt.no_grad():
            y = fused(mt.Tensor(x, dtype=mt.float64))
    assert y._ctx is None
    assert len(calls) == (batch == 2)  # else the BatchNorm was folded into the weights
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    assert_torch_parity(fused, theirs, x, train=True)


@pytest.mark.parametrize("activation", ["Tanh", "Sigmoid"])
def test_a_large_float32_batch_norm_and_activation_in_place_matches_pytorch(activation):
    """The compiled scale-and-shift loop and MKL's vector math (when there) written
    over a float32 output of 65,536 values (NumPy's passes without them): PyTorch's
    values to float32 rounding."""
    import torch

    make = lambda nn: nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512),
                                    getattr(nn, activation)())
    theirs = make(torch.nn).eval()
    with torch.no_grad():
        theirs[1].running_mean.uniform_(-1, 1)
        theirs[1].running_var.uniform_(0.5, 2)
        theirs[1].weight.uniform_(-2, 2)
    ours = mn.fuse(make(mn)).eval()
    ours.load_state_dict({k: v.numpy().copy() for k, v in theirs.state_dict().items()})
    x = rand(128, 1024).astype(np.float32) * 3
    with mt.no_grad():
        y = ours(mt.Tensor(x))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    assert y.dtype == np.float32
    # Float32 sums of 1,024 products, by another BLAS: about 1e-5 apart before scaling.
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-4)
