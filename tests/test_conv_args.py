"""Conv2d's PyTorch arguments: dilation, groups (depthwise included), padding='same'
and 'valid', padding_mode, and F.pad; against PyTorch in float64 (values and all
gradients), against central differences without it, and through YAML configs."""
import numpy as np
import pytest
from gradcheck import gradcheck

import micrograd.nn as mn
import micrograd.nn.functional as F
from micrograd.build import build_model
from micrograd.config.loader import validate
from micrograd.engine.tensor import Tensor

from conftest import LINEAR, assert_torch_parity, run, write_config

RTOL = 1e-6
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CONV_CASES = [
    dict(kernel_size=3, dilation=2),
    dict(kernel_size=(3, 2), dilation=(2, 3), stride=(2, 1), padding=(2, 1)),
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=4, padding="same", dilation=1),        # even kernel: odd cell bottom/right
    dict(kernel_size=(2, 3), padding="same", dilation=(3, 2)),
    dict(kernel_size=3, padding="valid", stride=2),
    dict(kernel_size=3, groups=2),
    dict(kernel_size=3, groups=2, dilation=2, padding=2, stride=2, bias=False),
    dict(kernel_size=3, padding=1, padding_mode="reflect"),
    dict(kernel_size=3, padding=(2, 1), padding_mode="replicate", stride=2),
    dict(kernel_size=3, padding=2, padding_mode="circular", dilation=2),
    dict(kernel_size=4, padding="same", padding_mode="reflect", groups=2),
]


@pytest.mark.parametrize("kwargs", CONV_CASES, ids=str)
def test_conv2d_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    assert_torch_parity(mn.Conv2d(4, 6, **kwargs), torch.nn.Conv2d(4, 6, **kwargs),
                        rand(2, 4, 9, 8))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),                                    # depthwise
    dict(kernel_size=3, padding="same", dilation=2),
    dict(kernel_size=(2, 3), stride=2, padding=1, bias=False),
    dict(kernel_size=3, padding=1, padding_mode="replicate"),
])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_depthwise_conv2d_matches_torch(kwargs, multiplier):
    torch = pytest.importorskip("torch")
    assert_torch_parity(mn.Conv2d(5, 5 * multiplier, groups=5, **kwargs),
                        torch.nn.Conv2d(5, 5 * multiplier, groups=5, **kwargs), rand(3, 5, 8, 7))


def test_unbatched_input_and_the_functional_form():
    torch = pytest.importorskip("torch")
    x, w, b = rand(4, 7, 7), rand(6, 2, 3, 3, seed=1), rand(6, seed=2)
    ours = F.conv2d(x, w, b, 1, "same", 2, 2)
    theirs = torch.nn.functional.conv2d(*map(torch.tensor, (x, w, b)), 1, "same", 2, 2)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=RTOL)


@pytest.mark.parametrize("groups, c, o", [(1, 3, 2), (2, 4, 6), (3, 3, 3), (3, 3, 6)])
def test_grouped_conv_gradcheck(groups, c, o):
    # The suite's own ground truth: no torch needed (depthwise when c == groups).
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(1, 2),
                                       groups=groups),
              rand(2, c, 6, 7), rand(o, c // groups, 3, 2, seed=1), rand(o, seed=2))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_torch_and_gradcheck(mode):
    x = rand(2, 3, 4, 5)
    pads = (2, 1, 3, 0)
    gradcheck(lambda t: F.pad(t, pads, mode=mode), x)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.pad(xt, pads, mode=mode)
    xm = Tensor(x, requires_grad=True, dtype=np.float64)
    ym = F.pad(xm, pads, mode=mode)
    np.testing.assert_array_equal(ym.data, yt.detach().numpy())
    proj = rand(*yt.shape, seed=3)
    (yt * torch.from_numpy(proj)).sum().backward()
    (ym * Tensor(proj, dtype=np.float64)).sum().backward()
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-12)


def test_weight_shape_and_init_follow_groups():
    m = mn.Conv2d(8, 4, 3, groups=4)
    assert m.weight.shape == (4, 2, 3, 3)
    bound = 1 / np.sqrt(2 * 3 * 3)  # fan_in = in/groups * kh * kw
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.bias.data).max() <= bound
    assert np.abs(m.weight.data).max() > 0.5 * bound


@pytest.mark.parametrize("kwargs, message", [
    (dict(groups=3), "in_channels must be divisible by groups"),
    (dict(groups=2, out=3), "out_channels must be divisible by groups"),
    (dict(groups=0), "groups must be a positive integer"),
    (dict(padding="same", stride=2), "padding='same' is not supported for strided"),
    (dict(padding="full"), "Invalid padding string 'full'"),
    (dict(padding_mode="mirror"), "padding_mode must be one of"),
    (dict(dilation=0), "dilation should be greater than zero"),
    (dict(stride=0), "stride should be greater than zero"),
    (dict(padding=-1), "padding must be non-negative"),
])
def test_bad_arguments_are_one_line_value_errors(kwargs, message):
    out = kwargs.pop("out", 4)
    with pytest.raises(ValueError, match=message):
        mn.Conv2d(4, out, 3, **kwargs)


def test_functional_errors():
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\) for weight \(2, 2, 3, 3\) and groups=2"):
        F.conv2d(rand(1, 3, 5, 5), rand(2, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="Padding size should be less than"):
        F.pad(rand(1, 1, 3, 3), (3, 0, 0, 0), mode="reflect")
    with pytest.raises(ValueError, match="wrapping around more than once"):
        F.pad(rand(1, 1, 3, 3), (4, 0, 0, 0), mode="circular")
    with pytest.raises(ValueError, match="Unrecognised padding mode"):
        F.pad(rand(1, 1, 3, 3), (1, 1, 1, 1), mode="mirror")


def test_repr_shows_the_arguments_set():
    m = mn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2, bias=False,
                  padding_mode="reflect")
    assert repr(m) == ("Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=same, "
                       "dilation=(2, 2), groups=2, bias=False, padding_mode=reflect)")
    assert repr(mn.Conv2d(1, 2, 3)) == "Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))"


# ------------------------------------------------------------------------ YAML


def conv_config(**options):
    layers = [dict(type="conv2d", out_channels=4, **options),
              {"type": "flatten"}, {"type": "linear", "out_features": 2}]
    return validate({"data": {"type": "mnist", "sample": True},
                     "model": {"input_shape": [2, 9, 8], "layers": layers},
                     "loss": "cross_entropy", "optimizer": {"type": "sgd"}})


@pytest.mark.parametrize("options, shape, params", [
    (dict(padding="same", dilation=2), (4, 9, 8), 4 * 2 * 9 + 4),
    (dict(groups=2, padding="valid"), (4, 7, 6), 4 * 1 * 9 + 4),
    (dict(padding=[1, 2], padding_mode="circular", dilation=[1, 2]), (4, 9, 8), 4 * 2 * 9 + 4),
    (dict(kernel_size=[2, 4], padding="same", padding_mode="reflect"), (4, 9, 8),
     4 * 2 * 8 + 4),
    (dict(stride=[2, 1], dilation=3, bias=False), (4, 2, 2), 4 * 2 * 9),
])
def test_yaml_options_plan_and_build(options, shape, params):
    kernel = options.pop("kernel_size", 3)
    model, rows = build_model(conv_config(kernel_size=kernel, **options))
    assert rows[0].output_shape == shape and rows[0].params == params
    out = model(Tensor(rand(2, 2, 9, 8).astype(np.float32)))
    assert out.shape == (2, 2)


@pytest.mark.parametrize("options, fragment", [
    (dict(groups=3), "in_channels must be divisible by groups"),
    (dict(padding="same", stride=2), "padding='same' is not supported"),
    (dict(padding=28, padding_mode="reflect"), "Padding size should be less than"),
    (dict(dilation=14), "too small for this kernel"),
])
def test_yaml_errors_are_config_errors(tmp_path, options, fragment):
    config = {**LINEAR, "data": {"type": "mnist", "sample": True},
              "model": {"layers": [dict(type="conv2d", out_channels=4, kernel_size=3, **options),
                                   {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
              "loss": "cross_entropy"}
    result = run(["summary", str(write_config(tmp_path, config))], tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "model.layers.0 (conv2d)" in result.output and fragment in result.output


def test_yaml_rejects_unknown_values(tmp_path):
    config = {**LINEAR, "data": {"type": "mnist", "sample": True},
              "model": {"layers": [dict(type="conv2d", out_channels=4, kernel_size=3,
                                        padding_mode="mirror"), {"type": "flatten"},
                                   {"type": "linear", "out_features": 10}]},
              "loss": "cross_entropy"}
    result = run(["summary", str(write_config(tmp_path, config))], tmp_path)
    assert result.exit_code == 2 and "padding_mode" in result.output


def test_summary_shows_the_new_arguments(tmp_path):
    config = {**LINEAR, "data": {"type": "mnist", "sample": True},
              "model": {"layers": [
                  dict(type="conv2d", out_channels=4, kernel_size=3, padding="same", dilation=2,
                       padding_mode="replicate"),
                  dict(type="conv2d", out_channels=8, kernel_size=3, groups=4),
                  {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "ceil_mode": True},
                  {"type": "flatten"}, {"type": "linear", "out_features": 10}]},
              "loss": "cross_entropy"}
    result = run(["summary", str(write_config(tmp_path, config))], tmp_path)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "4x28x28" in out and "8x26x26" in out and "8x13x13" in out
    assert "dilation=(2, 2)" in out and "padding_mode=replicate" in out and "groups=4" in out
    assert "ceil_mode=True" in out
