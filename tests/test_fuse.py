"""mn.fuse, the explicit fusion pass: same values, gradients and names as the
layers apart, in a Sequential or anywhere inside a module of one's own; the
Sequential itself no longer fuses anything (tests/test_import_graph.py checks
that it imports nothing but the Module base)."""
import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd.engine.tensor import Tensor


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def cnn_layers():
    return [mn.Conv2d(1, 4, 3), mn.ReLU(), mn.AvgPool2d(2),
            mn.Conv2d(4, 8, 3), mn.ReLU(), mn.AvgPool2d(2), mn.Flatten(), mn.Linear(8 * 5 * 5, 3)]


class Net(mn.Module):
    """A module of one's own: a stem called layer by layer, then Sequentials."""

    def __init__(self):
        super().__init__()
        self.stem = mn.Conv2d(1, 2, 3)                  # called by forward: never fused
        self.stem_relu = mn.ReLU()
        self.stem_pool = mn.AvgPool2d(1)
        self.features = mn.Sequential(*cnn_layers()[:6])  # 2 -> ... fused below
        self.features[0] = mn.Conv2d(2, 4, 3)
        self.head = mn.Sequential(mn.Flatten(), mn.Linear(8 * 5 * 5, 3), mn.ReLU(),
                                  mn.Sequential(mn.ReLU(), mn.AvgPool2d(1)))

    def forward(self, x):
        x = self.stem_pool(self.stem_relu(self.stem(x)))
        y = self.head[:3](self.features(x))
        return self.head[3](y.reshape(y.shape[0], 1, 1, 3))


def twins(make):
    """Two equal models: one left as built, one to fuse."""
    plain, fused = make(), make()
    fused.load_state_dict(plain.state_dict())
    return plain.double(), fused.double()


def outputs_and_grads(model, x):
    model.zero_grad()
    xm = Tensor(x, requires_grad=True, dtype=np.float64)
    y = model(xm)
    (y * Tensor(rand(*y.shape, seed=7), dtype=np.float64)).sum().backward()
    return y, xm.grad.data, {n: p.grad.data for n, p in model.named_parameters()}


def test_fuse_in_a_module_of_ones_own_gives_the_same_values_gradients_and_names():
    plain, fused = twins(Net)
    keys = list(plain.state_dict())
    assert mn.fuse(fused) is fused  # in place
    assert list(fused.state_dict()) == keys
    assert [n for n, _ in fused.named_parameters()] == [n for n, _ in plain.named_parameters()]
    # The stem the forward calls layer by layer is left alone; the Sequentials are fused,
    # a nested one too.
    assert type(fused.stem) is mn.Conv2d and type(fused.stem_relu) is mn.ReLU
    assert [type(m).__name__ for m in fused.features] == [
        "ConvReLUAvgPool2d", "Identity", "Identity", "ConvReLUAvgPool2d", "Identity", "Identity"]
    assert [type(m).__name__ for m in fused.head[3]] == ["ReLUAvgPool2d", "Identity"]
    assert fused.features[0].next_run == ((3, 3), (1, 1), (2, 2))
    assert fused.features[3].next_run is None

    x = rand(3, 1, 30, 30)
    (y, gx, grads), (y_plain, gx_plain, grads_plain) = (outputs_and_grads(m, x)
                                                         for m in (fused, plain))
    np.testing.assert_allclose(y.data, y_plain.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, gx_plain, rtol=1e-12, atol=1e-12)
    assert grads.keys() == grads_plain.keys()
    for name in grads:
        np.testing.assert_allclose(grads[name], grads_plain[name], rtol=1e-12, atol=1e-12)
    # The state dict moves both ways.
    plain.load_state_dict(fused.state_dict())
    fused.load_state_dict(plain.state_dict())


def test_a_fused_model_takes_over_the_layers_parameters():
    layers = cnn_layers()
    model = mn.Sequential(layers)
    params = list(model.parameters())
    optimizer = mt.SGD(params, lr=0.1)  # built before fusing
    mn.fuse(model)
    assert len(model) == len(layers)
    assert all(a is b for a, b in zip(model.parameters(), params, strict=True))
    assert model[0].weight is layers[0].weight and model[3].bias is layers[3].bias
    before = model[0].weight.data.copy()
    model(Tensor(rand(2, 1, 28, 28))).sum().backward()
    optimizer.step()
    assert not np.array_equal(model[0].weight.data, before)
    assert repr(model[0]) == "ConvReLUAvgPool2d(1, 4, kernel_size=(3, 3), stride=(1, 1), " \
                             "pool_size=(2, 2))"


def test_fuse_twice_changes_nothing_and_keeps_the_mode():
    model = mn.Sequential(cnn_layers()).eval()
    mn.fuse(model)
    before = [type(m) for m in model]
    mn.fuse(model)
    assert [type(m) for m in model] == before
    assert not any(m.training for m in model.modules())
    with mt.no_grad():
        assert model(Tensor(rand(2, 1, 28, 28))).shape == (2, 3)


def test_fuse_leaves_subclasses_and_unfusable_runs_alone():
    class MyReLU(mn.ReLU):
        pass

    class MySequential(mn.Sequential):
        pass

    runs = [
        [mn.Conv2d(1, 2, 3), MyReLU(), mn.AvgPool2d(2)],
        [mn.Conv2d(1, 2, 3), mn.ReLU(), mn.AvgPool2d(3, stride=2)],  # overlapping windows
        [mn.Conv2d(1, 2, 3), mn.ReLU(), mn.AvgPool2d(2, padding=1)],  # padded
        [mn.Conv2d(1, 2, 3), mn.ReLU(), mn.MaxPool2d(2)],
    ]
    for run in runs:
        model = mn.fuse(mn.Sequential(run))
        assert type(model[0]) is mn.Conv2d
    custom = mn.fuse(MySequential(mn.Conv2d(1, 2, 3), mn.ReLU(), mn.AvgPool2d(2)))
    assert [type(m) for m in custom] == [mn.Conv2d, mn.ReLU, mn.AvgPool2d]


def test_sequential_no_longer_fuses_by_itself():
    model = mn.Sequential(cnn_layers()[:3])
    y = model(Tensor(rand(2, 1, 10, 10), requires_grad=True))
    assert type(y._ctx).__name__ == "AvgPool2d"
    assert type(y._ctx.parents[0]._ctx).__name__ == "ReLU"
    assert [type(m) for m in model] == [mn.Conv2d, mn.ReLU, mn.AvgPool2d]


@pytest.mark.parametrize("size", [28, 30, 31])
def test_the_look_ahead_crop_only_shortens_the_first_runs_output(size):
    plain, fused = twins(lambda: mn.Sequential(cnn_layers()[:6]))
    mn.fuse(fused)
    x = Tensor(rand(2, 1, size, size), dtype=np.float64)
    first = fused[0](x)  # alone, it computes what fused[3] reads
    full = plain[:3](x)
    h, w = first.shape[-2:]
    np.testing.assert_allclose(first.data, full.data[..., :h, :w], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fused(x).data, plain(x).data, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("conv, pool", [
    (mn.Conv2d(2, 4, 3, dilation=2), mn.AvgPool2d(2)),
    (mn.Conv2d(2, 4, 3, groups=2), mn.AvgPool2d(2)),
    (mn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"), mn.AvgPool2d(2)),
    (mn.Conv2d(2, 4, 4, padding="same"), mn.AvgPool2d(2)),
    (mn.Conv2d(2, 4, 3), mn.AvgPool2d(2, ceil_mode=True)),
    (mn.Conv2d(2, 4, 3), mn.AvgPool2d(2, divisor_override=3)),
    (mn.Conv2d(2, 4, 3), mn.AvgPool2d(3, stride=3, padding=1, count_include_pad=False)),
], ids=str)
def test_unusual_conv_and_pool_arguments_stay_unfused_and_correct(conv, pool):
    # The fused nodes compute a dense single-group zero-padded convolution and
    # the default mean: anything else must keep its own layers.
    x = rand(2, 2, 9, 9)
    layers = [conv, mn.ReLU(), pool]
    expected = pool(conv(Tensor(x)).relu()).data
    fused = mn.fuse(mn.Sequential(*layers))
    plain_pool = repr(pool) == repr(mn.AvgPool2d(2))
    # A plain pooling after an unusual convolution still fuses with its ReLU.
    assert [type(m).__name__ for m in fused] == (
        ["Conv2d", "ReLUAvgPool2d", "Identity"] if plain_pool else ["Conv2d", "ReLU", "AvgPool2d"])
    np.testing.assert_allclose(fused(Tensor(x)).data, expected, rtol=1e-6)


def test_plain_arguments_given_explicitly_still_fuse():
    model = mn.fuse(mn.Sequential(mn.Conv2d(1, 4, 3, dilation=1, groups=1, padding=0),
                                  mn.ReLU(), mn.AvgPool2d(2, ceil_mode=False)))
    assert type(model[0]).__name__ == "ConvReLUAvgPool2d"


def test_batch_norm_folds_into_a_convolution_with_any_arguments():
    # Folding is per output channel, so groups, dilation and padding modes keep it exact.
    conv = mn.Conv2d(4, 6, 3, padding="same", dilation=2, groups=2, padding_mode="reflect")
    bn = mn.BatchNorm2d(6)
    bn.running_mean.data[...] = rand(6, seed=1)
    bn.running_var.data[...] = np.abs(rand(6, seed=2)) + 0.5
    model = mn.Sequential(conv, bn).eval()
    x = Tensor(rand(2, 4, 7, 7).astype(np.float32))
    expected = model(x).data
    fused = mn.fuse(model)
    assert type(fused[0]).__name__ == "ConvBatchNorm2d"
    np.testing.assert_allclose(fused(x).data, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch", [6, 2])  # above and below out_features: both orders
@pytest.mark.parametrize("before", ["conv", "input"])  # channels-last or NCHW memory
def test_flatten_linear_gives_the_layers_values_gradients_and_names(batch, before):
    def make():
        head = [mn.Flatten(), mn.Linear(4 * 5 * 5, 3), mn.ReLU()]
        return mn.Sequential(*([mn.Conv2d(2, 4, 3)] if before == "conv" else []), *head)
    plain, fused = twins(make)
    mn.fuse(fused)
    assert [type(m).__name__ for m in fused][-3:] == ["Identity", "FlattenLinear", "ReLU"]
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = rand(batch, 2, 7, 7) if before == "conv" else rand(batch, 4, 5, 5)
    y0, gx0, g0 = outputs_and_grads(plain, x)
    y1, gx1, g1 = outputs_and_grads(fused, x)
    np.testing.assert_allclose(y1.data, y0.data, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx1, gx0, rtol=1e-12, atol=1e-12)
    for name in g0:
        np.testing.assert_allclose(g1[name], g0[name], rtol=1e-12, atol=1e-12)
    assert fused[-2].weight.grad.shape == (3, 100)


def test_flatten_linear_sends_a_channels_last_gradient_back_and_takes_matrices():
    from micrograd.engine import functions
    x = mt.Tensor(rand(8, 4, 3, 3).transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2),
                  requires_grad=True)  # channels-last memory, as a convolution leaves it
    layer = mn.fuse(mn.Sequential(mn.Flatten(), mn.Linear(36, 2)))[1]
    y = layer(x)
    assert isinstance(y._ctx, functions.FlattenLinear) and y._ctx.permuted
    y.sum().backward()
    assert x.grad.data.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_allclose(layer(mt.Tensor(rand(5, 36))).data,
                               rand(5, 36) @ layer.weight.data.T + layer.bias.data, rtol=1e-5,
                               atol=1e-6)


def test_flatten_linear_is_not_built_where_a_batch_norm_folds_or_flatten_keeps_dims():
    kept = mn.fuse(mn.Sequential(mn.Flatten(), mn.Linear(12, 3), mn.BatchNorm1d(3)))
    assert [type(m).__name__ for m in kept] == ["Flatten", "LinearBatchNorm1d",
                                                "FoldedBatchNorm1d"]
    partial = mn.fuse(mn.Sequential(mn.Flatten(2), mn.Linear(4, 3)))
    assert [type(m) for m in partial] == [mn.Flatten, mn.Linear]
