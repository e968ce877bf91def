"""The layer table (mn.LAYERS) and the optimiser and scheduler tables: every type a
config may name maps to a class, and each layer's plan (output shape, values
held) is what the built layer really produces and holds."""
import ast
import inspect
import typing

import numpy as np
import pytest

import micrograd.build as build
import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd import optim
from micrograd.build import ModelConfigError, build_model, build_optimizer, build_scheduler
from micrograd.config.schema import Config, LayerConfig, OptimizerConfig, SchedulerConfig
from micrograd.engine.tensor import Tensor


def variants(union):
    """{type name: its config model} for a discriminated union of the schema."""
    members = typing.get_args(typing.get_args(union)[0])
    return {name: model for model in members
            for name in typing.get_args(model.model_fields["type"].annotation)}


def options_of(model):
    return set(model.model_fields) - {"type"}


def test_every_config_layer_type_maps_to_a_class_and_back():
    assert set(variants(LayerConfig)) == set(mn.LAYERS)
    for name, cls in mn.LAYERS.items():
        assert issubclass(cls, mn.Module) and mn.layer_class(name) is cls
    with pytest.raises(KeyError, match="unknown layer type 'nope'"):
        mn.layer_class("nope")


def test_a_layer_type_registers_once_and_needs_a_plan():
    with pytest.raises(ValueError, match="already registered to Linear"):
        mn.register_layer("linear")(type("Other", (mn.Module,), {"plan": classmethod(
            lambda cls, in_shape: None)}))
    with pytest.raises(TypeError, match="no plan"):
        mn.register_layer("planless")(type("Planless", (mn.Module,), {}))
    assert "planless" not in mn.LAYERS


@pytest.mark.parametrize("name, model", sorted(variants(LayerConfig).items()))
def test_every_config_option_is_an_argument_of_the_layers_plan(name, model):
    parameters = inspect.signature(mn.LAYERS[name].plan).parameters
    assert options_of(model) <= set(parameters) - {"in_shape"}


# Per type: (sample shape, options) pairs, options as a config gives them.
PLAN_CASES = [
    ("linear", (5,), dict(out_features=3)),
    ("linear", (7,), dict(out_features=2, bias=False, in_features=7)),
    ("conv2d", (1, 9, 9), dict(out_channels=4, kernel_size=3)),
    ("conv2d", (3, 10, 7), dict(out_channels=2, kernel_size=3, stride=2, padding=1, bias=False)),
    ("conv2d", (2, 5, 5), dict(out_channels=3, kernel_size=5)),
    ("maxpool2d", (3, 9, 9), dict(kernel_size=2)),
    ("maxpool2d", (2, 8, 11), dict(kernel_size=3, stride=2, padding=1)),
    ("avgpool2d", (3, 7, 7), dict(kernel_size=2, stride=1)),
    ("avgpool2d", (1, 9, 6), dict(kernel_size=3, padding=1)),
    ("flatten", (2, 3, 4), {}),
    ("flatten", (6,), {}),
    ("relu", (2, 3, 3), {}),
    ("sigmoid", (4,), {}),
    ("tanh", (3, 2), {}),
    ("softmax", (5,), dict(dim=0)),
    ("softmax", (2, 3, 3), dict(dim=-3)),
    ("log_softmax", (4, 3), dict(dim=1)),
    ("dropout", (6,), dict(p=0.3)),
    ("batchnorm1d", (6,), dict(eps=1e-3, momentum=0.2)),
    ("batchnorm2d", (3, 4, 4), dict(num_features=3)),
    ("embedding", (5,), dict(embedding_dim=3, num_embeddings=10, padding_idx=0)),
    ("embedding_bag", (7,), dict(embedding_dim=4, num_embeddings=12, mode="mean", padding_idx=0)),
]


def test_the_plan_cases_cover_every_layer_type():
    assert {name for name, _, _ in PLAN_CASES} == set(mn.LAYERS)


@pytest.mark.parametrize("name, in_shape, options", PLAN_CASES)
def test_plan_matches_the_built_layer_run_on_zeros(name, in_shape, options):
    variants(LayerConfig)[name](type=name, **options)  # a valid config section
    plan = mn.LAYERS[name].plan(in_shape, **options)
    layer = plan.build()
    assert type(layer) is mn.LAYERS[name]
    layer.eval()  # dropout off: the shape is the point here
    dtype = np.int64 if name.startswith("embedding") else np.float32  # token ids
    out = layer(Tensor(np.zeros((2, *in_shape), dtype=dtype), dtype=dtype))
    assert out.shape == (2, *plan.output_shape)
    assert plan.values == sum(v.size for v in layer.state_dict().values())


def test_the_softmax_dim_of_a_config_counts_from_the_sample():
    x = Tensor(np.arange(6.0).reshape(1, 2, 3))
    for dim, axis in ((0, 1), (1, 2), (-1, 2), (-2, 1)):
        layer = mn.Softmax.plan((2, 3), dim=dim).build()
        np.testing.assert_allclose(layer(x).data.sum(axis=axis), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name, in_shape, options, fragments", [
    ("linear", (1, 4, 4), dict(out_features=3),
     ["a linear layer takes a flat vector", "shape 1x4x4", "add a 'flatten' layer"]),
    ("linear", (5,), dict(out_features=3, in_features=4),
     ["in_features is 4, but the input arriving there has 5", "remove in_features"]),
    ("conv2d", (5,), dict(out_channels=2, kernel_size=3), ["expects images", "shape 5"]),
    ("conv2d", (1, 4, 4), dict(out_channels=2, kernel_size=3, in_channels=3),
     ["in_channels is 3, but the input arriving there has 1"]),
    ("conv2d", (1, 2, 8), dict(out_channels=2, kernel_size=3),
     ["input of shape 1x2x8 is too small for this kernel", "output would be 2x0x6"]),
    ("maxpool2d", (1, 1, 1), dict(kernel_size=2), ["too small for this kernel"]),
    ("avgpool2d", (1, 8, 8), dict(kernel_size=2, padding=2), ["pad should be at most half"]),
    ("softmax", (4,), dict(dim=1), ["dim 1 is out of range", "use 0 to 0 or -1 to -1"]),
    ("batchnorm1d", (2, 3), {}, ["a batchnorm1d layer takes a flat vector"]),
    ("batchnorm2d", (3, 4, 4), dict(num_features=4), ["num_features is 4", "has 3"]),
])
def test_a_shape_a_layer_cannot_take_is_refused_by_its_plan(name, in_shape, options, fragments):
    with pytest.raises(mn.LayerShapeError) as info:
        mn.LAYERS[name].plan(in_shape, **options)
    for fragment in fragments:
        assert fragment in str(info.value)


def config(layers, optimizer="adam", scheduler=None):
    return Config.model_validate({
        "data": {"type": "synthetic"}, "model": {"layers": layers}, "loss": "mse",
        "optimizer": optimizer, "scheduler": scheduler})


def test_build_model_names_the_layer_whose_plan_refuses_the_shape():
    cfg = config([{"type": "flatten"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 3}])
    with pytest.raises(ModelConfigError, match=r"^model\.layers\.1 \(conv2d\): expects images"):
        build_model(cfg, (1, 8, 8))


def test_build_model_fuses_and_its_rows_keep_the_layers_as_listed():
    cfg = config([{"type": "conv2d", "out_channels": 2, "kernel_size": 3}, {"type": "relu"},
                  {"type": "avgpool2d"}, {"type": "flatten"},
                  {"type": "linear", "out_features": 1}])
    model, rows = build_model(cfg, (1, 8, 8))
    assert [type(m).__name__ for m in model] == [
        "ConvReLUAvgPool2d", "Identity", "Identity", "Identity", "FlattenLinear"]
    assert [type(r.layer) for r in rows] == [mn.Conv2d, mn.ReLU, mn.AvgPool2d, mn.Flatten,
                                             mn.Linear]
    assert [r.output_shape for r in rows] == [(2, 6, 6), (2, 6, 6), (2, 3, 3), (18,), (1,)]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert model[0].weight is rows[0].layer.weight


# ------------------------------------------------- optimisers and schedulers


@pytest.mark.parametrize("table, union", [(optim.OPTIMIZERS, OptimizerConfig),
                                          (optim.SCHEDULERS, SchedulerConfig)])
def test_every_config_optimizer_and_scheduler_type_maps_to_a_class(table, union):
    assert set(variants(union)) == set(table)
    for name, model in variants(union).items():
        parameters = set(inspect.signature(table[name]).parameters)
        # The config spells PyTorch's T_max in lower case.
        assert {o if o != "t_max" else "T_max" for o in options_of(model)} <= parameters


@pytest.mark.parametrize("section, cls, expected", [
    ({"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True},
     optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)),
    ({"type": "adam"}, optim.Adam, dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)),
    ({"type": "adamw", "betas": [0.8, 0.9]}, optim.AdamW,
     dict(betas=(0.8, 0.9), weight_decay=1e-2)),
    ({"type": "rmsprop", "alpha": 0.9, "centered": True}, optim.RMSprop,
     dict(lr=0.01, alpha=0.9, centered=True)),
])
def test_build_optimizer_passes_the_config_keys_as_arguments(section, cls, expected):
    opt = build_optimizer(config([{"type": "linear", "out_features": 1}], section),
                          [mn.Parameter(np.zeros(2))])
    assert type(opt) is cls
    group = opt.param_groups[0]
    for key, value in expected.items():
        assert group[key] == value, key


@pytest.mark.parametrize("section, cls, attrs", [
    ({"type": "step", "step_size": 3, "gamma": 0.5}, optim.StepLR,
     dict(step_size=3, gamma=0.5)),
    ({"type": "exponential", "gamma": 0.9}, optim.ExponentialLR, dict(gamma=0.9)),
    ({"type": "cosine"}, optim.CosineAnnealingLR, dict(T_max=10, eta_min=0.0)),
    ({"type": "cosine", "t_max": 4, "eta_min": 1e-4}, optim.CosineAnnealingLR,
     dict(T_max=4, eta_min=1e-4)),
    ({"type": "plateau", "factor": 0.5, "patience": 2}, optim.ReduceLROnPlateau,
     dict(mode="min", factor=0.5, patience=2)),
])
def test_build_scheduler_passes_the_config_keys_as_arguments(section, cls, attrs):
    cfg = config([{"type": "linear", "out_features": 1}], scheduler=section)
    sched = build_scheduler(cfg, build_optimizer(cfg, [mn.Parameter(np.zeros(2))]))
    assert type(sched) is cls
    for key, value in attrs.items():
        assert getattr(sched, key) == value, key
    assert build_scheduler(config([{"type": "linear", "out_features": 1}]), None) is None


# ------------------------------------------------------ no names outside the table


def test_build_model_reads_the_layer_table_and_nothing_else(monkeypatch):
    class Doubling(mn.Module):  # stands in for a layer type added later
        @classmethod
        def plan(cls, in_shape):
            return mn.LayerPlan((2 * in_shape[0],), 0, cls)

        def forward(self, x):
            return mt.cat([x, x], dim=1)

    monkeypatch.setitem(mn.LAYERS, "tanh", Doubling)
    model, rows = build_model(config([{"type": "tanh"}, {"type": "linear", "out_features": 1}]),
                              (3,))
    assert type(rows[0].layer) is Doubling and rows[1].layer.in_features == 6
    assert model(Tensor(np.ones((4, 3), dtype=np.float32))).shape == (4, 1)


def test_build_names_no_layer_optimizer_or_scheduler_type():
    strings = {node.value for node in ast.walk(ast.parse(inspect.getsource(build)))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not strings & (set(mn.LAYERS) | set(optim.OPTIMIZERS) | set(optim.SCHEDULERS))
