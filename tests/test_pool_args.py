"""MaxPool2d's dilation and ceil_mode, AvgPool2d's ceil_mode, count_include_pad and
divisor_override: against PyTorch in float64 (values and input gradients), against
central differences without it, and through YAML configs."""
import numpy as np
import pytest
from gradcheck import gradcheck

import micrograd.nn as mn
import micrograd.nn.functional as F
from micrograd.build import build_model
from micrograd.config.loader import validate
from micrograd.engine.tensor import Tensor

from conftest import LINEAR, assert_torch_parity, run, write_config

ATOL = 1e-12  # pooling moves values: only rounding in the sums


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


MAX_CASES = [
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    # 7 rows: the last window would start in the right padding, so PyTorch drops it.
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=2, dilation=2),
    dict(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 0), dilation=(3, 1), ceil_mode=True),
]
AVG_CASES = [
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=2, divisor_override=3),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=5),
    dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), ceil_mode=True),
]


@pytest.mark.parametrize("size", [(7, 8), (6, 6)])
@pytest.mark.parametrize("kwargs", MAX_CASES, ids=str)
def test_max_pool2d_matches_torch(kwargs, size):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, *size)
    assert_torch_parity(mn.MaxPool2d(**kwargs), torch.nn.MaxPool2d(**kwargs), x, atol=ATOL)
    assert_torch_parity(lambda t: F.max_pool2d(t, **kwargs),
                        lambda t: torch.nn.functional.max_pool2d(t, **kwargs), x, atol=ATOL)


@pytest.mark.parametrize("size", [(7, 8), (6, 6)])
@pytest.mark.parametrize("kwargs", AVG_CASES, ids=str)
def test_avg_pool2d_matches_torch(kwargs, size):
    torch = pytest.importorskip("torch")
    x = rand(2, 3, *size)
    assert_torch_parity(mn.AvgPool2d(**kwargs), torch.nn.AvgPool2d(**kwargs), x, atol=ATOL)
    assert_torch_parity(lambda t: F.avg_pool2d(t, **kwargs),
                        lambda t: torch.nn.functional.avg_pool2d(t, **kwargs), x, atol=ATOL)


@pytest.mark.parametrize("kwargs", AVG_CASES[1:4], ids=str)
def test_avg_pool2d_gradcheck(kwargs):
    gradcheck(lambda t: F.avg_pool2d(t, **kwargs), rand(1, 2, 7, 6))


def test_max_pool2d_gradcheck():
    gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1, dilation=2, ceil_mode=True), rand(1, 2, 8, 7))


def test_float32_stays_float32():
    x = rand(1, 2, 7, 7).astype(np.float32)
    assert F.avg_pool2d(x, 2, ceil_mode=True, count_include_pad=False).dtype == np.float32
    assert F.max_pool2d(x, 2, dilation=2, ceil_mode=True).dtype == np.float32


@pytest.mark.parametrize("build, message", [
    (lambda: mn.MaxPool2d(2, return_indices=True), "not supported: micrograd has no max_unpool2d"),
    (lambda: mn.MaxPool2d(3, padding=2), "pad should be at most half of effective kernel"),
    (lambda: mn.MaxPool2d(2, dilation=0), "dilation should be greater than zero"),
    (lambda: mn.AvgPool2d(2, divisor_override=0), "divisor must be not zero"),
    (lambda: F.max_pool2d(rand(1, 1, 2, 2), 3), "Output size is too small"),
])
def test_bad_arguments_are_value_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_dilation_widens_the_allowed_padding():
    # PyTorch's rule: the padding is at most half of the dilated kernel.
    assert mn.MaxPool2d(2, padding=1, dilation=3)(Tensor(rand(1, 1, 6, 6))).shape == (1, 1, 3, 3)


def test_repr_shows_the_arguments_set():
    assert repr(mn.MaxPool2d(3, 2, dilation=2, ceil_mode=True)) == (
        "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=2, ceil_mode=True)")
    assert repr(mn.AvgPool2d(2, count_include_pad=False, divisor_override=3)) == (
        "AvgPool2d(kernel_size=2, stride=2, padding=0, count_include_pad=False, "
        "divisor_override=3)")
    assert repr(mn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"


def pool_config(layer):
    return validate({"data": {"type": "mnist", "sample": True},
                     "model": {"input_shape": [2, 7, 8],
                               "layers": [layer, {"type": "flatten"},
                                          {"type": "linear", "out_features": 2}]},
                     "loss": "cross_entropy", "optimizer": {"type": "sgd"}})


@pytest.mark.parametrize("layer, shape", [
    (dict(type="maxpool2d", kernel_size=3, stride=2, ceil_mode=True), (2, 3, 4)),
    (dict(type="maxpool2d", kernel_size=2, dilation=[2, 1]), (2, 3, 4)),
    (dict(type="avgpool2d", kernel_size=[3, 2], stride=2, padding=1, ceil_mode=True,
          count_include_pad=False), (2, 4, 5)),
    (dict(type="avgpool2d", kernel_size=2, divisor_override=3), (2, 3, 4)),
])
def test_yaml_options_plan_and_build(layer, shape):
    model, rows = build_model(pool_config(layer))
    assert rows[0].output_shape == shape
    assert model(Tensor(rand(2, 2, 7, 8).astype(np.float32))).shape == (2, 2)


@pytest.mark.parametrize("layer, fragment", [
    (dict(type="maxpool2d", kernel_size=2, padding=2), "pad should be at most half"),
    (dict(type="avgpool2d", kernel_size=2, dilation=2), "dilation"),
    (dict(type="maxpool2d", kernel_size=2, count_include_pad=False), "count_include_pad"),
])
def test_yaml_errors_are_config_errors(tmp_path, layer, fragment):
    config = {**LINEAR, "data": {"type": "mnist", "sample": True},
              "model": {"layers": [layer, {"type": "flatten"},
                                   {"type": "linear", "out_features": 10}]},
              "loss": "cross_entropy"}
    result = run(["summary", str(write_config(tmp_path, config))], tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and fragment in result.output
