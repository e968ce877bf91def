"""The engine's fast paths give the same numbers as the plain ones.

Conv2d builds its im2col matrix in pieces when nothing is kept for backward,
and transposed for one input channel; outputs are channels-last views; Adam
updates in place, a chunk at a time for large parameters; cross entropy is one
fused node; backward lets leaves keep fresh gradient arrays uncopied and ReLU
mask its gradient in place when nothing else holds it; ``mn.fuse`` runs a ReLU
followed by an AvgPool2d as one fused node, and a Conv2d, ReLU, AvgPool2d
run as a chunked node (few input channels) or as a convolution cropped to
what the pooling reads. Each of these is checked
against a reference here (PyTorch where installed), and a float32 training
step is checked to stay float32 throughout. Speed itself lives in bench/.
"""
import numpy as np
import pytest
from gradcheck import gradcheck

import micrograd.nn as mn
import micrograd.nn.functional as F
import micrograd.tensor as mt
from micrograd.engine import autograd, conv, pooling
from micrograd.engine.autograd import no_grad
from micrograd.engine.tensor import Tensor


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def seed_cnn():
    """The design document's CNN, fused as build_model fuses it."""
    return mn.fuse(mn.Sequential([
        mn.Conv2d(1, 32, 3), mn.ReLU(), mn.AvgPool2d(2),
        mn.Conv2d(32, 64, 3), mn.ReLU(), mn.AvgPool2d(2),
        mn.Flatten(), mn.Linear(64 * 5 * 5, 10),
    ]))


@pytest.mark.parametrize("in_channels, kwargs", [
    (1, dict(kernel_size=3)),                       # one channel: unfolded from NCHW
    (1, dict(kernel_size=3, stride=2, padding=1)),  # one channel, strided and padded
    (3, dict(kernel_size=3, padding=1)),
    (3, dict(kernel_size=(2, 3), stride=(2, 1), bias=False)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_forward_in_pieces_under_no_grad_matches_the_recorded_forward(
        in_channels, kwargs, dtype, monkeypatch):
    # Pieces of 4 KiB: a few samples each, so the 10 samples take several.
    monkeypatch.setattr(conv, "_COLS_CHUNK_BYTES", 4096)
    layer = mn.Conv2d(in_channels, 8, **kwargs).to(dtype)
    x = Tensor(rand(10, in_channels, 9, 9), dtype=dtype)
    recorded = layer(x)
    assert recorded.requires_grad
    with no_grad():
        pieces = layer(x)
    np.testing.assert_allclose(pieces.data, recorded.data, rtol=1e-5, atol=1e-5)
    assert pieces.dtype == dtype and pieces._ctx is None and not pieces.requires_grad


def test_seed_cnn_matches_torch_forward_and_gradients():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    theirs = tnn.Sequential(
        tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.AvgPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.AvgPool2d(2),
        tnn.Flatten(), tnn.Linear(64 * 5 * 5, 10)).double()
    mine = seed_cnn().double()
    mine.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rand(6, 1, 28, 28)
    labels = np.array([0, 3, 9, 3, 1, 7])
    xt = torch.tensor(x, requires_grad=True)
    xm = Tensor(x, requires_grad=True, dtype=np.float64)
    loss_t = tnn.CrossEntropyLoss()(theirs(xt), torch.from_numpy(labels))
    loss_m = mt.CrossEntropyLoss()(mine(xm), labels)
    loss_t.backward()
    loss_m.backward()
    np.testing.assert_allclose(loss_m.item(), loss_t.item(), rtol=1e-10)
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-6, atol=1e-12)
    for (name, p), q in zip(mine.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=1e-6, atol=1e-12,
                                   err_msg=name)


def test_conv_outputs_are_channels_last_views_and_relu_keeps_the_layout():
    x = Tensor(rand(2, 3, 8, 8))
    y = mn.Conv2d(3, 4, 3)(x)
    assert y.shape == (2, 4, 6, 6)
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    assert y.relu().data.transpose(0, 2, 3, 1).flags.c_contiguous


def test_max_pool_gives_tied_maxima_to_the_first_like_torch():
    torch = pytest.importorskip("torch")
    # Small integers: most windows hold ties.
    x = np.random.default_rng(0).integers(0, 3, (2, 3, 7, 6)).astype(np.float64)
    for kwargs in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                   dict(kernel_size=(2, 3), stride=(1, 2))]:
        xt = torch.tensor(x, requires_grad=True)
        xm = Tensor(x, requires_grad=True, dtype=np.float64)
        proj = rand(*torch.nn.MaxPool2d(**kwargs)(xt).shape, seed=1)
        (torch.nn.MaxPool2d(**kwargs)(xt) * torch.from_numpy(proj)).sum().backward()
        (mn.MaxPool2d(**kwargs)(xm) * Tensor(proj, dtype=np.float64)).sum().backward()
        # Equal up to the order in which overlapping windows add their shares.
        np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-12, atol=1e-15,
                                   err_msg=str(kwargs))


def test_relu_propagates_nan_like_torch():
    out = mn.ReLU()(Tensor([np.nan, -1.0, 2.0], dtype=np.float64))
    assert np.isnan(out.data[0]) and out.data[1:].tolist() == [0.0, 2.0]


@pytest.mark.parametrize("shape", [(5, 3), (300, 301)])  # the second: Adam in chunks
@pytest.mark.parametrize("amsgrad, weight_decay", [(False, 0.0), (True, 0.1)])
def test_adam_in_place_update_matches_torch_over_steps(amsgrad, weight_decay, shape):
    torch = pytest.importorskip("torch")
    w0 = rand(*shape)
    pm = mn.Parameter(w0.copy())
    pt = torch.tensor(w0.copy(), requires_grad=True)
    small = mn.Parameter(rand(2, seed=5))  # a second, smaller parameter shares the scratch
    opt_m = mt.Adam([pm, small], lr=0.01, amsgrad=amsgrad, weight_decay=weight_decay)
    opt_t = torch.optim.Adam([pt], lr=0.01, amsgrad=amsgrad, weight_decay=weight_decay)
    for step in range(5):
        g = rand(*shape, seed=step + 1)
        pm.grad = Tensor(g, dtype=np.float64)
        small.grad = Tensor(rand(2, seed=10 + step), dtype=np.float64)
        pt.grad = torch.from_numpy(g.copy())
        opt_m.step()
        opt_t.step()
    np.testing.assert_allclose(pm.data, pt.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_float32_training_step_stays_float32(monkeypatch):
    """Every forward output and every gradient handed backward is float32."""
    seen = []
    apply = autograd.Function.apply.__func__

    def recording_apply(cls, *tensors, **kwargs):
        out = apply(cls, *tensors, **kwargs)
        seen.append((f"{cls.__name__} forward", out.dtype))
        if out._ctx is not None:
            original = out._ctx.backward

            def recording_backward(g, _name=cls.__name__, _original=original):
                grads = _original(g)
                seen.extend((f"{_name} backward", np.asarray(x).dtype)
                            for x in grads if x is not None)
                return grads

            out._ctx.backward = recording_backward
        return out

    monkeypatch.setattr(autograd.Function, "apply", classmethod(recording_apply))
    mt.manual_seed(0)
    model = seed_cnn()
    optimizer = mt.Adam(model.parameters())
    x = Tensor(rand(4, 1, 28, 28))
    loss = mt.CrossEntropyLoss()(model(x), np.array([1, 2, 3, 4]))
    loss.backward()
    optimizer.step()
    floats = [(what, dtype) for what, dtype in seen if np.issubdtype(dtype, np.floating)]
    assert floats and all(dtype == np.float32 for _, dtype in floats), \
        [f for f in floats if f[1] != np.float32]
    assert all(p.dtype == np.float32 and p.grad.dtype == np.float32
               for p in model.parameters())
    assert all(v.dtype == np.float32 for s in optimizer.state.values()
               for v in s.values() if isinstance(v, np.ndarray))


def test_evaluation_under_no_grad_records_nothing():
    model = seed_cnn()
    with no_grad():
        out = model(Tensor(rand(3, 1, 28, 28)))
    assert out._ctx is None and not out.requires_grad


def test_leaves_keep_fresh_gradients_without_sharing_one_array():
    # backward lets a leaf keep a fresh gradient array (Linear's weight and bias
    # gradients) instead of copying it; it must never do so for an array that
    # another leaf also receives (Add hands Linear's input gradient to a and b).
    a = mt.tensor(rand(3, 4), requires_grad=True)
    b = mt.tensor(rand(3, 4, seed=1), requires_grad=True)
    layer = mn.Linear(4, 5)
    layer(a + b).sum().backward()
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data[...] = 7.0
    assert np.all(b.grad.data != 7.0)
    expected_w = np.ones((5, 1)) @ (a.data + b.data).sum(axis=0, keepdims=True)
    expected_x = np.ones((3, 1)) @ layer.weight.data.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(layer.weight.grad.data, expected_w)
    np.testing.assert_allclose(layer.bias.grad.data, np.full(5, 3.0))
    # A second backward adds into the kept arrays.
    layer(a + b).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.data, 2 * expected_w)
    np.testing.assert_allclose(layer.bias.grad.data, np.full(5, 6.0))
    np.testing.assert_allclose(b.grad.data, 2 * expected_x)


def test_relu_masks_an_owned_gradient_in_place_without_touching_retained_ones():
    # Linear's backward makes a fresh gradient, which ReLU's backward then masks
    # in place; the gradient retained on ReLU's output must stay unmasked.
    x = mt.tensor(rand(4, 3), requires_grad=True)
    layer = mn.Linear(3, 5)
    h = x * 1.0
    r = mn.ReLU()(h)
    r.retain_grad()
    layer(r).sum().backward()
    unmasked = np.ones((4, 1)) @ layer.weight.data.sum(axis=0, keepdims=True)
    np.testing.assert_allclose(r.grad.data, np.broadcast_to(unmasked, (4, 3)))
    np.testing.assert_allclose(x.grad.data, unmasked * (h.data > 0))


@pytest.mark.parametrize("kwargs, size", [
    (dict(kernel_size=2), 8),                          # covered, non-overlapping
    (dict(kernel_size=2), 11),                         # last row/column in no window
    (dict(kernel_size=3, stride=2, padding=1), 9),     # overlapping, padded
    (dict(kernel_size=(2, 3), stride=(2, 3), padding=(1, 1)), 7),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_relu_avg_pool_equals_relu_then_avg_pool_bit_for_bit(
        kwargs, size, dtype, monkeypatch):
    # Chunks of 1 KiB: several chunks per batch, and a last short one.
    monkeypatch.setattr(pooling, "_CHUNK_BYTES", 1024)
    x = rand(5, 3, size, size).astype(dtype)
    x[0, 0, 0, :3] = 0.0  # relu'(0) = 0 on both paths
    proj = None
    outs, grads = [], []
    for fused in (False, True):
        xm = Tensor(x, requires_grad=True, dtype=dtype)
        if fused:
            y = F.relu_avg_pool2d(xm, **kwargs)
            assert type(y._ctx).__name__ == "ReLUAvgPool2d"
        else:
            y = F.avg_pool2d(xm.relu(), **kwargs)
        if proj is None:
            proj = rand(*y.shape, seed=1).astype(dtype)
        (y * Tensor(proj, dtype=dtype)).sum().backward()
        outs.append(y.data)
        grads.append(xm.grad.data)
    assert outs[1].dtype == grads[1].dtype == dtype
    np.testing.assert_array_equal(outs[1], outs[0])
    np.testing.assert_array_equal(grads[1], grads[0])


def test_fused_relu_avg_pool_gradcheck_and_unbatched_input():
    for kwargs in [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)]:
        gradcheck(lambda t: F.relu_avg_pool2d(t, **kwargs), rand(2, 2, 5, 5))
    x = rand(3, 6, 6)
    np.testing.assert_array_equal(
        F.relu_avg_pool2d(Tensor(x), 2).data,
        F.avg_pool2d(Tensor(x).relu(), 2).data)


def test_fuse_fuses_exactly_relu_then_avg_pool():
    x = Tensor(rand(2, 3, 8, 8), requires_grad=True)
    fused = mn.fuse(mn.Sequential([mn.ReLU(), mn.AvgPool2d(2)]))
    assert type(fused(x)._ctx).__name__ == "ReLUAvgPool2d"

    class MyReLU(mn.ReLU):  # a subclass may do anything in forward: never fused
        def forward(self, input):
            return super().forward(input) * 2

    custom = mn.fuse(mn.Sequential([MyReLU(), mn.AvgPool2d(2)]))
    np.testing.assert_allclose(custom(x).data, 2 * F.avg_pool2d(x.relu(), 2).data)
    assert type(custom(x)._ctx).__name__ == "AvgPool2d"
    # ReLU then MaxPool2d is not one node: the pass moves the ReLU after the pool.
    y = mn.fuse(mn.Sequential([mn.ReLU(), mn.MaxPool2d(2)]))(x)
    assert type(y._ctx).__name__ == "ReLU"
    assert type(y._ctx.parents[0]._ctx).__name__ == "MaxPool2d"


# ------------------------------------------------ Conv2d, ReLU, AvgPool2d fused

CONV_POOL_CASES = [
    # in, out, conv kwargs, pool, size: the first four take the chunked node
    # (in * kh * kw <= 64), the last three the cropped convolution.
    (1, 4, dict(kernel_size=3), 2, 12),                      # covered exactly
    (1, 4, dict(kernel_size=3), 2, 13),                      # last row/column unread
    (3, 5, dict(kernel_size=3, padding=1, bias=False), 3, 10),
    (2, 3, dict(kernel_size=(3, 2), stride=2, padding=1), (2, 3), 13),
    (8, 6, dict(kernel_size=3), 2, 13),                      # 11 x 11 -> 10 x 10 computed
    (8, 6, dict(kernel_size=3, stride=2, padding=1), 3, 14),
    (9, 4, dict(kernel_size=(3, 2), padding=2, bias=False), (2, 3), 9),
]


def _conv_pool_models(cin, cout, kwargs, pool, dtype=np.float64):
    layers = [mn.Conv2d(cin, cout, **kwargs).to(dtype), mn.ReLU(), mn.AvgPool2d(pool)]
    plain = mn.Sequential(layers)  # the same layers, never fused
    fused = mn.fuse(mn.Sequential(layers))
    return fused, plain


@pytest.mark.parametrize("cin, cout, kwargs, pool, size", CONV_POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_conv_relu_avg_pool_matches_the_layers_apart(
        cin, cout, kwargs, pool, size, dtype, monkeypatch):
    # Chunks of 2 KiB: several per batch, and a short last one.
    monkeypatch.setattr(conv, "_FUSED_CHUNK_BYTES", 2048)
    fused, plain = _conv_pool_models(cin, cout, kwargs, pool, dtype)
    x = rand(5, cin, size, size).astype(dtype)
    results = []
    for model in (fused, plain):
        model.zero_grad()
        xm = Tensor(x, requires_grad=True, dtype=dtype)
        y = model(xm)
        proj = Tensor(rand(*y.shape, seed=1), dtype=dtype)
        (y * proj).sum().backward()
        results.append((y, xm.grad.data, fused[0].weight.grad.data,
                        None if fused[0].bias is None else fused[0].bias.grad.data))
    (y, *grads), (y_plain, *grads_plain) = results
    expected = ("ConvReLUAvgPool2d" if cin * np.prod(fused[0].kernel_size) <= 64
                else "ReLUAvgPool2d")
    assert type(y._ctx).__name__ == expected
    assert type(y_plain._ctx).__name__ == "AvgPool2d"
    assert y.shape == y_plain.shape and y.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.data, y_plain.data, **tol)
    for got, want in zip(grads, grads_plain):
        if want is not None:
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("cin, cout, kwargs, pool, size", CONV_POOL_CASES)
def test_fused_conv_relu_avg_pool_matches_torch(cin, cout, kwargs, pool, size):
    torch = pytest.importorskip("torch")
    fused, _ = _conv_pool_models(cin, cout, kwargs, pool)
    layer = fused[0]
    theirs = torch.nn.Conv2d(cin, cout, layer.kernel_size, stride=layer.stride,
                             padding=layer.padding, bias=layer.bias is not None).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v))
                            for k, v in layer.state_dict().items()})
    x = rand(4, cin, size, size)
    xm, xt = Tensor(x, requires_grad=True, dtype=np.float64), torch.tensor(x, requires_grad=True)
    y = fused(xm)
    yt = torch.nn.functional.avg_pool2d(torch.relu(theirs(xt)), pool)
    proj = rand(*y.shape, seed=2)
    (y * Tensor(proj, dtype=np.float64)).sum().backward()
    (yt * torch.from_numpy(proj)).sum().backward()
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.data, theirs.weight.grad.numpy(),
                               rtol=1e-5, atol=1e-12)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad.data, theirs.bias.grad.numpy(),
                                   rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("cin, kwargs, pool, size", [
    (1, dict(stride=1, padding=0), 2, 7),
    (8, dict(stride=1, padding=1), 2, 5),   # the cropped convolution
])
def test_fused_conv_relu_avg_pool_gradcheck(cin, kwargs, pool, size, monkeypatch):
    monkeypatch.setattr(conv, "_FUSED_CHUNK_BYTES", 512)
    w, b = rand(3, cin, 3, 3, seed=1), rand(3, seed=2)
    gradcheck(lambda x, w, b: F.conv_relu_avg_pool2d(x, w, b, pool_size=pool, **kwargs),
              rand(2, cin, size, size), w, b)


def test_fused_conv_relu_avg_pool_edge_uses():
    layer = mn.Conv2d(1, 4, 3)
    model = mn.fuse(mn.Sequential([layer, mn.ReLU(), mn.AvgPool2d(2)]))
    x = rand(3, 1, 10, 10)
    expected = F.avg_pool2d(F.conv2d(Tensor(x), layer.weight, layer.bias).relu(), 2).data
    # Evaluation keeps nothing and records no graph.
    with no_grad():
        y = model(Tensor(x))
    assert y._ctx is None and not y.requires_grad
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-6)
    # An unbatched (C, H, W) input, as PyTorch accepts.
    np.testing.assert_allclose(model(Tensor(x[0])).data, expected[0], rtol=1e-5, atol=1e-6)
    # Frozen weights: only the input gets a gradient.
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    xm = Tensor(x, requires_grad=True)
    model(xm).sum().backward()
    assert xm.grad is not None and layer.weight.grad is None
    # Overlapping or padded pooling is never fused with the convolution.
    for pool in (mn.AvgPool2d(3, stride=2), mn.AvgPool2d(2, padding=1)):
        y = mn.fuse(mn.Sequential([layer, mn.ReLU(), pool]))(xm)
        assert type(y._ctx).__name__ in ("ReLUAvgPool2d", "AvgPool2d")
        assert type(y._ctx.parents[0]._ctx).__name__ == "Conv2d"
    with pytest.raises(ValueError, match="larger than its input"):
        F.conv_relu_avg_pool2d(Tensor(rand(1, 1, 4, 4)), layer.weight, pool_size=3)


def test_conv2d_crop_computes_the_top_left_corner():
    x = Tensor(rand(2, 3, 9, 9), requires_grad=True, dtype=np.float64)
    w = Tensor(rand(4, 3, 3, 3, seed=1), requires_grad=True, dtype=np.float64)
    full = conv.Conv2d.apply(x, w)
    corner = conv.Conv2d.apply(x, w, crop=(6, 5))
    assert corner.shape == (2, 4, 6, 5)
    np.testing.assert_allclose(corner.data, full.data[:, :, :6, :5], rtol=1e-12)
    proj = rand(2, 4, 6, 5, seed=3)
    (corner * Tensor(proj, dtype=np.float64)).sum().backward()
    gx, gw = x.grad.data.copy(), w.grad.data.copy()
    x.grad = w.grad = None
    padded = np.zeros(full.shape)
    padded[:, :, :6, :5] = proj
    (full * Tensor(padded, dtype=np.float64)).sum().backward()
    np.testing.assert_allclose(gx, x.grad.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, w.grad.data, rtol=1e-12, atol=1e-12)


def _nodes(y, name):
    """The graph nodes of type ``name`` behind y, outputs first."""
    found, stack, seen = [], [y], set()
    while stack:
        t = stack.pop()
        if t._ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        if type(t._ctx).__name__ == name:
            found.append((t, t._ctx))
        stack.extend(t._ctx.parents)
    return found


@pytest.mark.parametrize("size, second, read", [
    (28, dict(kernel_size=3), 12),               # the seed CNN: 13 x 13 -> 12 x 12 read
    (29, dict(kernel_size=3, stride=2), 13),     # 13 x 13 read entirely (stride 2)
    (28, dict(kernel_size=3, padding=1), 13),    # padded: never cropped
    (26, dict(kernel_size=(2, 3)), (11, 12)),    # 12 x 12: 11 rows read, all 12 columns
])
def test_fused_run_computes_only_what_the_next_run_reads(size, second, read):
    layers = [mn.Conv2d(1, 4, 3), mn.ReLU(), mn.AvgPool2d(2),
              mn.Conv2d(4, 8, **second), mn.ReLU(), mn.AvgPool2d(2), mn.Flatten()]
    plain = mn.Sequential(layers).to(np.float64)
    fused = mn.fuse(mn.Sequential(layers))
    x = rand(3, 1, size, size)
    outs = []
    for model in (fused, plain):
        model.zero_grad()
        xm = Tensor(x, requires_grad=True, dtype=np.float64)
        y = model(xm)
        if model is fused:  # the first run's output, as the second one reads it
            runs = _nodes(y, "ConvReLUAvgPool2d")
            assert len(runs) == 2
            read = (read, read) if isinstance(read, int) else read
            assert runs[-1][0].shape[-2:] == read
        (y * Tensor(rand(*y.shape, seed=5), dtype=np.float64)).sum().backward()
        outs.append((y, [xm.grad.data] + [p.grad.data for p in model.parameters()]))
    (y, grads), (y_plain, grads_plain) = outs
    np.testing.assert_allclose(y.data, y_plain.data, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, grads_plain):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cols_bytes", [1, 4096, 1 << 20])  # groups of one chunk, a few, all
def test_fused_first_layer_under_no_grad_builds_im2col_in_groups(cols_bytes, monkeypatch):
    monkeypatch.setattr(conv, "_FUSED_CHUNK_BYTES", 1024)
    monkeypatch.setattr(conv, "_COLS_CHUNK_BYTES", cols_bytes)
    layer = mn.Conv2d(1, 4, 3)
    x = Tensor(rand(7, 1, 12, 12), dtype=np.float64)
    layer.to(np.float64)
    recorded = F.conv_relu_avg_pool2d(x, layer.weight, layer.bias)
    assert recorded._ctx.cols is not None  # kept for backward
    with no_grad():
        grouped = F.conv_relu_avg_pool2d(x, layer.weight, layer.bias)
    assert grouped._ctx is None
    np.testing.assert_allclose(grouped.data, recorded.data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_channels", [1, 8])  # both paths of the fused run
def test_too_small_inputs_get_pytorchs_errors(in_channels):
    run = mn.fuse(mn.Sequential([mn.Conv2d(in_channels, 4, 3), mn.ReLU(), mn.AvgPool2d(2)]))
    with pytest.raises(ValueError, match=r"padded input size per channel: \(2 x 2\)"):
        run(Tensor(rand(1, in_channels, 2, 2)))
    with pytest.raises(ValueError, match="larger than its input"):
        run(Tensor(rand(1, in_channels, 3, 3)))  # a 1 x 1 output for a 2 x 2 window
    with pytest.raises(ValueError, match="Kernel size can't be greater"):
        mn.Conv2d(in_channels, 4, 3)(Tensor(rand(1, in_channels, 2, 5)))


@pytest.mark.parametrize("cin", [1, 8])  # the chunked node; the cropped Conv2d + ReLUAvgPool2d
def test_fused_conv_relu_avg_pool_second_backward_with_retain_graph(cin, monkeypatch):
    monkeypatch.setattr(conv, "_FUSED_CHUNK_BYTES", 1024)
    layer = mn.Conv2d(cin, 4, 3)
    x = Tensor(rand(3, cin, 11, 11), requires_grad=True)
    y = F.conv_relu_avg_pool2d(x, layer.weight, layer.bias)
    loss = (y * Tensor(rand(*y.shape, seed=4))).sum()
    loss.backward(retain_graph=True)
    first = [t.grad.data.copy() for t in (x, layer.weight, layer.bias)]
    loss.backward()  # accumulates: twice the first gradients
    for t, want in zip((x, layer.weight, layer.bias), first):
        np.testing.assert_allclose(t.grad.data, 2 * want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_under_no_grad_skips_the_graph_and_keeps_the_bits(dtype, bias, monkeypatch):
    """Under no_grad a Linear computes straight from its arrays (no Function, no
    graph node) and gives the graph path's bits; an integer input is still
    refused with the graph path's message."""
    from micrograd.engine import functions
    layer = mn.Linear(7, 5, bias=bias).to(mt.float32 if dtype == np.float32 else mt.float64)
    x = Tensor(rand(3, 2, 7).astype(dtype))
    expected = layer(x).data  # grad enabled: the graph path
    applied = []
    real_apply = functions.Linear.apply.__func__
    monkeypatch.setattr(functions.Linear, "apply",
                        classmethod(lambda cls, *a, **k: applied.append(1) or real_apply(cls, *a, **k)))
    with no_grad():
        y = layer(x)
    assert not applied and y._ctx is None and not y.requires_grad
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, expected)
    layer(x)
    assert applied  # the spy does see the graph path
    with no_grad(), pytest.raises(RuntimeError, match="floating-point input"):
        layer(Tensor._wrap(np.ones((2, 7), dtype=np.int64)))


def test_reshape_without_a_graph_is_a_view(monkeypatch):
    """A reshape that records nothing (no_grad, or an input that needs no
    gradient) is the array's view, without a Function; with a gradient to
    carry it is a node."""
    from micrograd.engine import functions
    applied = []
    real_apply = functions.Reshape.apply.__func__
    monkeypatch.setattr(functions.Reshape, "apply",
                        classmethod(lambda cls, *a, **k: applied.append(1) or real_apply(cls, *a, **k)))
    x = Tensor(rand(2, 3, 4))
    for y in (x.reshape(6, 4), x.flatten(1)):
        assert y._ctx is None and np.shares_memory(y.data, x.data)
    w = Tensor(rand(2, 3, 4), requires_grad=True)
    with no_grad():
        assert w.reshape(-1)._ctx is None
    assert not applied
    y = w.reshape(4, 6)
    assert y._ctx is not None and applied
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.data, np.ones((2, 3, 4)))
