"""micrograd.nn without PyTorch: gradient checks for every layer, Module
mechanics, state dicts, Sequential and initialisation.

PyTorch parity lives in test_nn_torch_parity.py.
"""
import math
from collections import OrderedDict

import numpy as np
import pytest
from gradcheck import gradcheck, numerical_grad

import micrograd.nn as mn
import micrograd.nn.functional as F
from micrograd.engine.autograd import no_grad
from micrograd.engine.random import manual_seed
from micrograd.engine.tensor import Tensor

F64 = np.float64


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check_module_grads(module, x, seed=0, reseed=None, rtol=1e-5, atol=1e-7):
    """Central-difference check of d(output)/d(input) and d(output)/d(every parameter).

    The module is converted to float64. ``reseed`` re-seeds the global generator
    before each forward, so Dropout draws the same mask every time.
    """
    module.double()
    x = np.array(x, dtype=F64)
    params = list(module.named_parameters())

    def run(t):
        if reseed is not None:
            manual_seed(reseed)
        return module(t)

    xt = Tensor(x, requires_grad=True, dtype=F64)
    for _, p in params:
        p.grad = None
    out = run(xt)
    proj = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Tensor(proj, dtype=F64)).sum().backward()

    def f(arrays):
        with no_grad():
            return float((run(Tensor._wrap(arrays[0])).data * proj).sum())

    # The parameter arrays are perturbed in place, so the module sees each change.
    arrays = [x] + [p.data for _, p in params]
    names = ["input"] + [name for name, _ in params]
    grads = [xt.grad] + [p.grad for _, p in params]
    for i, (name, got) in enumerate(zip(names, grads)):
        assert got is not None, f"{name} got no gradient"
        np.testing.assert_allclose(got.data, numerical_grad(f, arrays, i), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")
    return out


# ------------------------------------------------------------ gradient checks


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 3)])
def test_linear_gradcheck(bias, shape):
    check_module_grads(mn.Linear(3, 2, bias=bias), rand(*shape))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=1, bias=False),
    dict(kernel_size=2, stride=3, padding=2),
])
def test_conv2d_gradcheck(kwargs):
    check_module_grads(mn.Conv2d(2, 3, **kwargs), rand(2, 2, 5, 6))


def test_conv2d_unbatched_input_gradcheck():
    out = check_module_grads(mn.Conv2d(2, 3, 3, padding=1), rand(2, 4, 4))
    assert out.shape == (3, 4, 4)


@pytest.mark.parametrize("layer", [
    mn.MaxPool2d(2),
    mn.MaxPool2d(3, stride=2, padding=1),
    mn.MaxPool2d((2, 3), stride=(1, 2)),
    mn.AvgPool2d(2),
    mn.AvgPool2d(3, stride=2, padding=1),
    mn.AvgPool2d((3, 2), stride=1, padding=(1, 0)),
], ids=repr)
def test_pooling_gradcheck(layer):
    check_module_grads(layer, rand(2, 2, 5, 6))


@pytest.mark.parametrize("layer", [
    mn.Flatten(), mn.Flatten(0, 1), mn.Flatten(2, 3),
    mn.ReLU(), mn.Sigmoid(), mn.Tanh(),
    mn.Softmax(dim=1), mn.Softmax(dim=-1), mn.LogSoftmax(dim=1), mn.LogSoftmax(dim=0),
], ids=repr)
def test_parameterless_layer_gradcheck(layer):
    check_module_grads(layer, rand(2, 3, 2, 4))


def test_dropout_eval_is_identity_with_unit_gradient():
    layer = mn.Dropout(0.5).eval()
    x = Tensor(rand(3, 4), requires_grad=True, dtype=F64)
    assert layer(x) is x
    check_module_grads(layer, rand(3, 4))


def test_dropout_train_gradient_is_mask_times_scale():
    p = 0.25
    layer = mn.Dropout(p)
    check_module_grads(layer, rand(6, 5), reseed=7)
    x = Tensor(rand(6, 5), requires_grad=True, dtype=F64)
    manual_seed(7)
    y = layer(x)
    y.sum().backward()
    mask = y.data != 0
    assert 0 < mask.sum() < mask.size
    np.testing.assert_allclose(y.data, x.data * mask / (1 - p))
    np.testing.assert_allclose(x.grad.data, mask / (1 - p))


@pytest.mark.parametrize("layer, shape", [
    (mn.BatchNorm1d(3), (5, 3)),
    (mn.BatchNorm1d(3), (4, 3, 2)),
    (mn.BatchNorm2d(3), (2, 3, 2, 3)),
    (mn.BatchNorm2d(3, affine=False), (2, 3, 2, 3)),
    (mn.BatchNorm2d(3, track_running_stats=False), (2, 3, 2, 3)),
], ids=str)
def test_batchnorm_train_gradcheck(layer, shape):
    # Non-trivial gamma and beta, so their gradients are not masked by 1 and 0.
    if layer.affine:
        layer.weight.data[...] = rand(3, seed=1)
        layer.bias.data[...] = rand(3, seed=2)
    check_module_grads(layer, rand(*shape))


def test_batchnorm_eval_gradcheck():
    layer = mn.BatchNorm2d(3)
    layer.running_mean.data[...] = rand(3, seed=1)
    layer.running_var.data[...] = np.abs(rand(3, seed=2)) + 0.5
    layer.weight.data[...] = rand(3, seed=3)
    check_module_grads(layer.eval(), rand(2, 3, 2, 2))


def test_sequential_gradcheck():
    model = mn.Sequential([
        mn.Conv2d(1, 2, 3, padding=1), mn.BatchNorm2d(2), mn.Tanh(), mn.AvgPool2d(2),
        mn.Flatten(), mn.Linear(8, 3), mn.LogSoftmax(dim=1),
    ])
    check_module_grads(model, rand(3, 1, 4, 4))


def test_functional_gradcheck_with_weights_as_inputs():
    gradcheck(lambda x, w, b: F.linear(x, w, b), rand(4, 3), rand(2, 3, seed=1), rand(2, seed=2))
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
              rand(2, 2, 4, 5), rand(3, 2, 3, 3, seed=1), rand(3, seed=2))
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
              rand(4, 3, 2), rand(3, seed=1), rand(3, seed=2))


# ---------------------------------------------------------------- layers


def test_layer_output_shapes_and_default_dtype():
    x = Tensor(rand(2, 3, 8, 8))
    assert mn.Conv2d(3, 4, 3, stride=2, padding=1)(x).shape == (2, 4, 4, 4)
    assert mn.MaxPool2d(2)(x).shape == (2, 3, 4, 4)
    assert mn.AvgPool2d(3, stride=2, padding=1)(x).shape == (2, 3, 4, 4)
    assert mn.Flatten()(x).shape == (2, 192)
    assert mn.Linear(8, 5)(x).shape == (2, 3, 8, 5)
    for layer in [mn.Linear(3, 2), mn.Conv2d(1, 2, 3), mn.BatchNorm1d(2)]:
        assert all(p.dtype == np.float32 for p in layer.parameters())
        assert all(isinstance(p, mn.Parameter) and p.requires_grad for p in layer.parameters())
    assert mn.Linear(3, 2)(x[:, :, 0, :3]).dtype == np.float32


def test_layers_accept_numpy_arrays():
    x = rand(2, 3)
    out = mn.Linear(3, 2, dtype=F64)(x)
    assert isinstance(out, Tensor) and out.dtype == F64
    assert mn.ReLU()(np.array([-1.0, 2.0])).tolist() == [0.0, 2.0]
    assert mn.Flatten()(rand(2, 3, 4)).shape == (2, 12)


def test_dtype_kwarg_and_module_dtype_conversion():
    layer = mn.Linear(3, 2, dtype=F64)
    assert layer.weight.dtype == F64 and layer.bias.dtype == F64
    bn = mn.BatchNorm1d(2)
    weight = bn.weight
    bn.double()
    assert bn.weight is weight and weight.dtype == F64 and bn.running_var.dtype == F64
    assert bn.num_batches_tracked.dtype == np.int64  # integers are left alone
    bn.float()
    assert weight.dtype == np.float32
    assert bn.to("float64") is bn and bn.running_mean.dtype == F64
    assert bn.to("cpu") is bn
    with pytest.raises(TypeError):
        bn.to(np.int32)


def test_conv_and_pool_argument_errors():
    with pytest.raises(ValueError, match="pad should be at most half"):
        mn.MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="pad should be at most half"):
        F.avg_pool2d(Tensor(rand(1, 1, 4, 4)), 3, padding=2)
    with pytest.raises(ValueError):
        mn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        mn.Conv2d(2, 1, 3)(Tensor(rand(1, 3, 5, 5)))
    with pytest.raises(ValueError, match="3D .* or 4D"):
        mn.MaxPool2d(2)(Tensor(rand(4, 4)))


def test_softmax_layers_normalise_and_warn_without_dim():
    x = Tensor(rand(2, 3, 4))
    np.testing.assert_allclose(mn.Softmax(dim=1)(x).data.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(mn.LogSoftmax(dim=2)(x).data).sum(2), 1.0, rtol=1e-6)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = mn.Softmax()(x)  # 3-D: PyTorch's legacy rule picks dim 0
    np.testing.assert_allclose(out.data.sum(0), 1.0, rtol=1e-6)


def test_dropout_statistics_and_edge_probabilities():
    manual_seed(0)
    x = Tensor(np.ones((200, 100)))
    y = mn.Dropout(0.3)(x).data
    assert abs((y == 0).mean() - 0.3) < 0.02
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
    assert (mn.Dropout(1.0)(x).data == 0).all()
    assert mn.Dropout(0.0)(x) is x
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            mn.Dropout(p)
    manual_seed(3)
    a = mn.Dropout()(x).data
    manual_seed(3)
    np.testing.assert_array_equal(a, mn.Dropout()(x).data)


def test_batchnorm_running_stats_follow_pytorch_formulas():
    bn = mn.BatchNorm1d(3, momentum=0.2, dtype=F64)
    batches = [rand(6, 3, seed=s) * (s + 1) + s for s in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for b in batches:
        y = bn(Tensor(b, dtype=F64)).data
        # Normalised with the batch's biased variance...
        np.testing.assert_allclose(y, (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5), rtol=1e-10)
        # ...while the running variance takes the unbiased one.
        mean = 0.8 * mean + 0.2 * b.mean(0)
        var = 0.8 * var + 0.2 * b.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean.data, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, var, rtol=1e-12)
    assert int(bn.num_batches_tracked.item()) == 3
    bn.eval()
    x = rand(4, 3, seed=9)
    np.testing.assert_allclose(bn(Tensor(x, dtype=F64)).data, (x - mean) / np.sqrt(var + 1e-5),
                               rtol=1e-10)
    assert int(bn.num_batches_tracked.item()) == 3  # eval changes no statistic


def test_batchnorm_cumulative_average_when_momentum_is_none():
    bn = mn.BatchNorm2d(2, momentum=None, dtype=F64)
    batches = [rand(3, 2, 2, 2, seed=s) + s for s in range(4)]
    for b in batches:
        bn(Tensor(b, dtype=F64))
    expected = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)
    np.testing.assert_allclose(bn.running_mean.data, expected, rtol=1e-12)


def test_batchnorm_without_running_stats_uses_batch_stats_in_eval():
    bn = mn.BatchNorm1d(3, track_running_stats=False, affine=False).eval()
    assert list(bn.state_dict()) == [] and list(bn.buffers()) == []
    x = rand(5, 3)
    np.testing.assert_allclose(bn(x).data, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-5)


def test_batchnorm_input_errors():
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        mn.BatchNorm1d(3)(Tensor(rand(2, 3, 4, 4)))
    with pytest.raises(ValueError, match="expected 4D input"):
        mn.BatchNorm2d(3)(Tensor(rand(2, 3)))
    with pytest.raises(ValueError, match="3 channels"):
        mn.BatchNorm1d(4)(Tensor(rand(2, 3)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        mn.BatchNorm1d(3)(Tensor(rand(1, 3)))
    mn.BatchNorm1d(3).eval()(Tensor(rand(1, 3)))  # fine in evaluation


# ------------------------------------------------------------------ Module


class Net(mn.Module):
    def __init__(self):
        super().__init__()
        self.conv = mn.Conv2d(1, 2, 3)
        self.bn = mn.BatchNorm2d(2)
        self.head = mn.Sequential(mn.Flatten(), mn.Dropout(0.5), mn.Linear(8, 3))
        self.scale = mn.Parameter(np.ones(1))
        self.not_a_param = Tensor([1.0])

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu()) * self.scale


def test_named_parameters_buffers_children_modules():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "head.2.weight", "head.2.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [type(m).__name__ for m in net.children()] == ["Conv2d", "BatchNorm2d", "Sequential"]
    assert [n for n, _ in net.named_modules()] == [
        "", "conv", "bn", "head", "head.0", "head.1", "head.2"]
    assert len(list(net.parameters(recurse=False))) == 1
    assert net.scale.dtype == F64  # a float64 array keeps its dtype
    assert net(Tensor(rand(2, 1, 4, 4))).shape == (2, 3)


def test_shared_parameters_are_yielded_once():
    layer = mn.Linear(2, 2)
    model = mn.Sequential([layer, mn.ReLU(), layer])
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_setattr_rules():
    layer = mn.Linear(2, 2)
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = Tensor(np.zeros((2, 2)))
    layer.bias = None
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    layer.bias = mn.Parameter(np.zeros(2, dtype=np.float32))
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    del layer.bias
    assert not hasattr(layer, "bias")

    class Forgot(mn.Module):
        def __init__(self):
            self.w = mn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Forgot()
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        layer.nope
    with pytest.raises(NotImplementedError, match="forward"):
        mn.Module()(1)


def test_parameter_repr_and_construction():
    p = mn.Parameter([1.0, 2.0])
    assert p.dtype == np.float32 and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    shared = np.zeros(3)
    assert mn.Parameter(shared).data is shared
    assert mn.Parameter().shape == (0,)
    assert not mn.Parameter(np.zeros(2), requires_grad=False).requires_grad


def test_inplace_update_under_no_grad_keeps_the_parameter():
    model = mn.Sequential([mn.Linear(3, 2)])
    weight = model[0].weight
    model(Tensor(rand(4, 3))).sum().backward()
    before = weight.data.copy()
    with no_grad():
        model[0].weight -= 0.1 * model[0].weight.grad
    assert model[0].weight is weight and isinstance(weight, mn.Parameter)
    np.testing.assert_allclose(weight.data, before - 0.1 * weight.grad.data, rtol=1e-6)
    assert list(model.parameters())[0] is weight
    with pytest.raises(RuntimeError, match="in-place"):
        model[0].weight -= 0.1 * model[0].weight.grad


def test_zero_grad():
    model = mn.Sequential([mn.Linear(3, 2), mn.ReLU(), mn.Linear(2, 1)])
    model(Tensor(rand(4, 3))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_train_eval_is_recursive():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError):
        net.train("no")


def test_eval_makes_dropout_and_batchnorm_deterministic():
    net = Net().eval()
    x = Tensor(rand(3, 1, 4, 4))
    np.testing.assert_array_equal(net(x).data, net(x).data)
    assert int(net.bn.num_batches_tracked.item()) == 0


def test_repr_matches_pytorch_layout():
    model = mn.Sequential([mn.Linear(3, 2, bias=False), mn.ReLU(),
                           mn.Sequential(mn.Conv2d(1, 2, 3, stride=2)), mn.Softmax(dim=1)])
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=3, out_features=2, bias=False)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Conv2d(1, 2, kernel_size=(3, 3), stride=(2, 2))\n"
        "  )\n"
        "  (3): Softmax(dim=1)\n"
        ")"
    )
    assert repr(mn.BatchNorm2d(4)) == (
        "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)")
    assert repr(mn.Conv2d(1, 2, 3, padding=1, bias=False)) == (
        "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)")
    assert repr(mn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(mn.Dropout(0.2)) == "Dropout(p=0.2)"
    assert repr(mn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"


# -------------------------------------------------------------- state dict


def test_state_dict_round_trip():
    manual_seed(0)
    a = Net()
    a.train()
    a(Tensor(rand(4, 1, 4, 4)))  # move the running statistics off their defaults
    sd = a.state_dict()
    assert list(sd) == [
        "scale", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
        "bn.running_var", "bn.num_batches_tracked", "head.2.weight", "head.2.bias"]
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["conv.weight"].shape == (2, 1, 3, 3)
    assert sd["bn.num_batches_tracked"].dtype == np.int64

    manual_seed(1)
    b = Net()
    weight = b.conv.weight
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.conv.weight is weight  # copied into, not replaced
    x = Tensor(rand(2, 1, 4, 4))
    np.testing.assert_array_equal(a.eval()(x).data, b.eval()(x).data)
    np.testing.assert_array_equal(b.bn.running_var.data, a.bn.running_var.data)
    assert int(b.bn.num_batches_tracked.item()) == 1


def test_state_dict_is_a_snapshot():
    layer = mn.Linear(2, 2)
    sd = layer.state_dict()
    with no_grad():
        layer.weight += 1.0
    assert not np.allclose(sd["weight"], layer.weight.data)


def test_load_state_dict_errors_name_the_key():
    model = mn.Sequential([mn.Linear(3, 2), mn.ReLU(), mn.Linear(2, 1)])
    good = model.state_dict()

    bad = dict(good, **{"0.weight": np.zeros((3, 3))})
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight.*\(3, 3\).*\(2, 3\)"):
        model.load_state_dict(bad)
    missing = {k: v for k, v in good.items() if k != "2.bias"}
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "2.bias"'):
        model.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "extra"'):
        model.load_state_dict(dict(good, extra=np.zeros(1)))

    # A failed load leaves the model as it was.
    zeros = {k: np.zeros_like(v) for k, v in good.items()}
    zeros["2.weight"] = np.zeros((5, 5))
    with pytest.raises(RuntimeError):
        model.load_state_dict(zeros)
    np.testing.assert_array_equal(model[0].weight.data, good["0.weight"])

    result = model.load_state_dict(dict(missing, extra=np.zeros(1)), strict=False)
    assert result.missing_keys == ["2.bias"] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(bad, strict=False)


def test_load_state_dict_casts_and_accepts_tensors():
    layer = mn.Linear(2, 2)
    layer.load_state_dict({"weight": Tensor(np.eye(2), dtype=F64), "bias": [1, 2]})
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.eye(2))
    np.testing.assert_array_equal(layer.bias.data, [1.0, 2.0])


# -------------------------------------------------------------- Sequential


def test_sequential_construction_forms():
    l1, l2 = mn.Linear(3, 4), mn.Linear(4, 2)
    for model in (mn.Sequential([l1, mn.ReLU(), l2]), mn.Sequential(l1, mn.ReLU(), l2),
                  mn.Sequential((l1, mn.ReLU(), l2))):
        assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias",
                                                              "2.weight", "2.bias"]
    named = mn.Sequential(OrderedDict([("fc", l1), ("act", mn.ReLU()), ("out", l2)]))
    assert [n for n, _ in named.named_parameters()] == ["fc.weight", "fc.bias",
                                                          "out.weight", "out.bias"]
    assert named.fc is l1
    assert len(mn.Sequential()) == 0
    with pytest.raises(TypeError, match="entry 1 is a int"):
        mn.Sequential([l1, 3])


def test_sequential_indexing_slicing_iteration_append():
    layers = [mn.Linear(3, 4), mn.ReLU(), mn.Linear(4, 2), mn.Sigmoid()]
    model = mn.Sequential(layers)
    assert len(model) == 4 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[3]
    with pytest.raises(IndexError):
        model[4]
    head = model[:2]
    assert isinstance(head, mn.Sequential) and list(head) == layers[:2]
    assert head[0] is layers[0]  # slices share modules
    assert list(model[2:]._modules) == ["2", "3"]  # and keep their names, as PyTorch
    x = Tensor(rand(5, 3))
    np.testing.assert_allclose(model(x).data, model[2:](model[:2](x)).data)

    assert model.append(mn.Softmax(dim=1)) is model
    assert len(model) == 5 and "4.weight" not in model.state_dict()
    np.testing.assert_allclose(model(x).data.sum(1), 1.0, rtol=1e-6)
    model[1] = mn.Tanh()
    assert isinstance(model[1], mn.Tanh)
    del model[-1]
    assert len(model) == 4
    model.extend([mn.ReLU()])
    assert list(model._modules) == ["0", "1", "2", "3", "4"]


# ------------------------------------------------------------ initialisation


@pytest.mark.parametrize("layer, fan_in", [
    (mn.Linear(300, 200), 300),
    (mn.Conv2d(12, 40, 5), 12 * 25),
    (mn.Conv2d(6, 30, (3, 4), dtype=F64), 6 * 12),
])
def test_default_init_is_uniform_with_bound_one_over_sqrt_fan_in(layer, fan_in):
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.data
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # the full range is used
    assert abs(w.std() - bound / math.sqrt(3)) < 0.03 * bound
    assert abs(w.mean()) < 0.03 * bound
    b = layer.bias.data
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.8 * bound


def test_init_is_repeatable_with_manual_seed():
    manual_seed(5)
    a = mn.Sequential([mn.Conv2d(1, 2, 3), mn.Linear(4, 3)]).state_dict()
    manual_seed(5)
    b = mn.Sequential([mn.Conv2d(1, 2, 3), mn.Linear(4, 3)]).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_init_functions():
    init = mn.init
    t = Tensor(np.zeros((400, 200)))
    assert init.xavier_uniform_(t) is t
    bound = math.sqrt(6 / 600)
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.99 * bound
    init.kaiming_normal_(t, nonlinearity="relu")
    assert abs(t.data.std() - math.sqrt(2 / 200)) < 0.02 * math.sqrt(2 / 200)
    init.xavier_normal_(t, gain=init.calculate_gain("tanh"))
    assert abs(t.data.std() - 5 / 3 * math.sqrt(2 / 600)) < 0.02 * math.sqrt(2 / 600) * 5 / 3
    init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    assert np.abs(t.data).max() <= math.sqrt(6 / 400)
    init.normal_(t, 2.0, 0.5)
    assert abs(t.data.mean() - 2.0) < 0.01 and abs(t.data.std() - 0.5) < 0.01
    init.uniform_(t, -3, -2)
    assert t.data.min() >= -3 and t.data.max() <= -2
    assert not init.zeros_(t).data.any()
    assert (init.ones_(t).data == 1).all()
    assert (init.constant_(t, 0.5).data == 0.5).all()
    assert init.calculate_fan_in_and_fan_out(Tensor(np.zeros((8, 3, 2, 5)))) == (30, 80)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(Tensor(np.zeros(4)))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="Mode"):
        init.kaiming_uniform_(t, mode="fan_avg")
    rng = np.random.default_rng(0)
    a = init.uniform_(Tensor(np.zeros(5), dtype=F64), generator=rng).data.copy()
    assert np.array_equal(a, np.random.default_rng(0).uniform(0, 1, 5))


def test_no_torch_import_in_library():
    import subprocess
    import sys
    code = ("import sys, micrograd.nn, micrograd.nn.functional, micrograd.engine.batchnorm; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_deepcopy_and_pickle_give_independent_equal_models():
    import copy
    import pickle
    model = mn.Sequential([mn.Conv2d(1, 2, 3), mn.BatchNorm2d(2), mn.Flatten(), mn.Linear(8, 2)])
    x = Tensor(rand(2, 1, 4, 4))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone[0].weight is not model[0].weight
        assert isinstance(clone[3].weight, mn.Parameter)
        np.testing.assert_array_equal(clone.eval()(x).data, model.eval()(x).data)


@pytest.mark.parametrize("shape", [(7, 3), (1,), (4, 5, 3)])  # odd sizes: half a draw left
def test_dropout_masks_follow_the_seed_whatever_the_dtype(shape):
    masks = []
    for dtype in (np.float32, np.float64):
        manual_seed(5)
        masks.append(mn.Dropout(0.4)(Tensor(np.ones(shape), dtype=dtype)).data != 0)
    np.testing.assert_array_equal(*masks)
    manual_seed(5)
    # the draw is 32 bits a value, compared with p * 2^32
    from micrograd.engine.random import default_generator
    bits = default_generator().bit_generator.random_raw((int(np.prod(shape)) + 1) // 2)
    expected = bits.view(np.uint32)[:int(np.prod(shape))] >= round(0.4 * 2**32)
    np.testing.assert_array_equal(masks[0].ravel(), expected)
