"""Optimisers, schedulers and gradient clipping: PyTorch's trajectories, state dicts, errors."""
import json
import math
import re

import numpy as np
import pytest

from micrograd.engine.tensor import Tensor
from micrograd.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    ReduceLROnPlateau,
    RMSprop,
    StepLR,
    clip_grad_norm_,
    clip_grad_value_,
)

RTOL = 1e-5
STEPS = 20

# A small least-squares problem with fixed data: loss = mean((X w + b - y)^2).
_rng = np.random.default_rng(0)
X = _rng.standard_normal((12, 3))
Y = X @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.1 * _rng.standard_normal(12)
W0 = _rng.standard_normal(3)
B0 = np.array([0.1])

VARIANTS = [
    (SGD, {}),
    (SGD, dict(lr=0.05)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (SGD, dict(lr=0.05, weight_decay=0.1)),
    (SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adam, {}),
    (Adam, dict(lr=0.1)),
    (Adam, dict(lr=0.1, weight_decay=0.1)),
    (Adam, dict(lr=0.1, amsgrad=True)),
    (Adam, dict(lr=0.05, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.05, amsgrad=True)),
    (AdamW, {}),
    (AdamW, dict(lr=0.1)),
    (AdamW, dict(lr=0.1, weight_decay=0.5, amsgrad=True)),
    (RMSprop, {}),
    (RMSprop, dict(lr=0.01, alpha=0.9)),
    (RMSprop, dict(lr=0.01, centered=True)),
    (RMSprop, dict(lr=0.01, momentum=0.9)),
    (RMSprop, dict(lr=0.01, weight_decay=0.1)),
    (RMSprop, dict(lr=0.005, alpha=0.95, momentum=0.5, centered=True, weight_decay=0.1)),
]


def variant_id(variant):
    cls, kwargs = variant
    return cls.__name__ + "".join(f"-{k}={v}" for k, v in kwargs.items())


def f64(a, requires_grad=False):
    return Tensor(a, requires_grad=requires_grad, dtype=np.float64)


def least_squares(w, b):
    residual = f64(X) @ w + b - f64(Y)
    return (residual * residual).mean()


def make_params(w=W0, b=B0):
    return f64(w, requires_grad=True), f64(b, requires_grad=True)


def run(optimizer, w, b, steps):
    """``steps`` updates; the parameters (w then b) after each."""
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        least_squares(w, b).backward()
        optimizer.step()
        trajectory.append(np.concatenate([w.data, b.data]))
    return np.array(trajectory)


def torch_trajectory(cls, kwargs, steps=STEPS, groups=None):
    torch = pytest.importorskip("torch")
    w = torch.tensor(W0, requires_grad=True)
    b = torch.tensor(B0, requires_grad=True)
    x, y = torch.tensor(X), torch.tensor(Y)
    params = [w, b] if groups is None else groups(w, b)
    optimizer = getattr(torch.optim, cls.__name__)(params, **kwargs)
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        ((x @ w + b - y) ** 2).mean().backward()
        optimizer.step()
        trajectory.append(torch.cat([w, b]).detach().numpy().copy())
    return np.array(trajectory)


# ------------------------------------------------------------ trajectories


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_trajectory_matches_torch(variant):
    cls, kwargs = variant
    expected = torch_trajectory(cls, kwargs)
    w, b = make_params()
    np.testing.assert_allclose(run(cls([w, b], **kwargs), w, b, STEPS), expected, rtol=RTOL)


@pytest.mark.parametrize("cls", [SGD, Adam, RMSprop])
def test_param_groups_match_torch(cls):
    kwargs = dict(lr=0.02, momentum=0.9) if cls is not Adam else dict(lr=0.02)
    expected = torch_trajectory(
        cls, kwargs, groups=lambda w, b: [{"params": [w], "lr": 0.1}, {"params": b}])
    w, b = make_params()
    optimizer = cls([{"params": [w], "lr": 0.1}, {"params": b}], **kwargs)
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert optimizer.param_groups[1]["lr"] == 0.02
    np.testing.assert_allclose(run(optimizer, w, b, STEPS), expected, rtol=RTOL)


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_optimiser_actually_decreases_the_loss(variant):
    # Holds without torch: every variant makes progress on a convex problem.
    cls, kwargs = variant
    kwargs = {**kwargs, "lr": kwargs.get("lr", 1e-3) * 5}
    w, b = make_params()
    before = least_squares(w, b).item()
    run(cls([w, b], **kwargs), w, b, STEPS)
    assert least_squares(w, b).item() < before


def test_sgd_matches_the_formula_by_hand():
    w, b = make_params()
    least_squares(w, b).backward()
    grad_w = w.grad.data.copy()
    SGD([w, b], lr=0.1, weight_decay=0.01).step()
    np.testing.assert_allclose(w.data, W0 - 0.1 * (grad_w + 0.01 * W0), rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_lr():
    # With bias correction, step 1 is lr * g / (|g| + eps'): lr times the sign of g.
    w, b = make_params()
    least_squares(w, b).backward()
    grad_w = w.grad.data.copy()
    Adam([w, b], lr=0.01).step()
    np.testing.assert_allclose(w.data, W0 - 0.01 * np.sign(grad_w), rtol=1e-6)


# --------------------------------------------------------------- mechanics


@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_updates_in_place_and_skips_params_without_grad(variant):
    cls, kwargs = variant
    w, b = make_params()
    unused = f64([1.0, 2.0], requires_grad=True)
    data_w, data_b = w.data, b.data
    optimizer = cls([w, b, unused], **kwargs)
    least_squares(w, b).backward()
    grad_w = w.grad.data.copy()
    optimizer.step()
    assert w.data is data_w and b.data is data_b
    assert not np.array_equal(w.data, W0)
    np.testing.assert_array_equal(w.grad.data, grad_w)  # the gradient is left alone
    np.testing.assert_array_equal(unused.data, [1.0, 2.0])
    assert unused not in optimizer.state
    assert w._ctx is None and not w.grad.requires_grad


def test_float32_parameters_stay_float32():
    w = Tensor(W0, requires_grad=True)
    b = Tensor(B0, requires_grad=True)
    for cls in (SGD, Adam, AdamW, RMSprop):
        optimizer = cls([w, b], lr=0.01)
        optimizer.zero_grad()
        residual = Tensor(X) @ w + b - Tensor(Y)
        (residual * residual).mean().backward()
        optimizer.step()
        assert w.dtype == np.float32 and b.dtype == np.float32
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, np.ndarray):
                    assert value.dtype == np.float32


def test_zero_grad_sets_to_none_or_zeros():
    w, b = make_params()
    optimizer = SGD([w, b], lr=0.1)
    least_squares(w, b).backward()
    grad = w.grad
    optimizer.zero_grad(set_to_none=False)
    assert w.grad is grad and np.all(grad.data == 0)
    optimizer.zero_grad()
    assert w.grad is None and b.grad is None


def test_step_with_closure_returns_the_loss():
    w, b = make_params()
    optimizer = Adam([w, b], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = least_squares(w, b)
        loss.backward()
        return loss

    first = optimizer.step(closure).item()
    assert optimizer.step(closure).item() < first


def test_params_may_be_a_generator_or_a_single_group_dict():
    w, b = make_params()
    assert len(SGD((p for p in (w, b)), lr=0.1).param_groups[0]["params"]) == 2
    assert SGD([{"params": w}], lr=0.1).param_groups[0]["params"] == [w]


def test_add_param_group_fills_defaults():
    w, b = make_params()
    optimizer = Adam([w], lr=0.1, betas=(0.8, 0.9))
    optimizer.add_param_group({"params": [b], "lr": 0.5})
    assert optimizer.param_groups[1]["lr"] == 0.5
    assert optimizer.param_groups[1]["betas"] == (0.8, 0.9)


# ----------------------------------------------------------- state dicts


def json_round_trip(state_dict):
    """As a checkpoint might store it: arrays as lists, keys as strings."""
    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    return json.loads(json.dumps(state_dict, default=default))


@pytest.mark.parametrize("through_json", [False, True], ids=["dict", "json"])
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_state_dict_round_trip_continues_identically(variant, through_json):
    cls, kwargs = variant
    w, b = make_params()
    optimizer = cls([w, b], **kwargs)
    expected = run(optimizer, w, b, STEPS)

    w, b = make_params()
    optimizer = cls([w, b], **kwargs)
    run(optimizer, w, b, STEPS // 2)
    saved = optimizer.state_dict()
    if through_json:
        saved = json_round_trip(saved)
    run(optimizer, w, b, 3)  # must not change the snapshot

    w2, b2 = make_params(expected[STEPS // 2 - 1, :3], expected[STEPS // 2 - 1, 3:])
    # Built with other hyper-parameters: load_state_dict restores them.
    resumed = cls([w2, b2], lr=0.123)
    resumed.load_state_dict(saved)
    default_lr = cls(list(make_params())).defaults["lr"]
    assert resumed.param_groups[0]["lr"] == kwargs.get("lr", default_lr)
    np.testing.assert_allclose(run(resumed, w2, b2, STEPS - STEPS // 2),
                               expected[STEPS // 2:], rtol=1e-12)


def test_state_dict_layout_is_torch_like():
    w, b = make_params()
    optimizer = Adam([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1, amsgrad=True)
    run(optimizer, w, b, 2)
    saved = optimizer.state_dict()
    assert [g["params"] for g in saved["param_groups"]] == [[0], [1]]
    assert saved["param_groups"][1]["lr"] == 0.5
    assert set(saved["state"]) == {0, 1}
    assert saved["state"][0]["step"] == 2
    assert set(saved["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert saved["state"][0]["exp_avg"] is not optimizer.state[w]["exp_avg"]


def test_load_state_dict_rejects_a_different_layout():
    w, b = make_params()
    saved = SGD([w, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="parameter group"):
        SGD([w], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="parameter groups"):
        SGD([{"params": [w]}, {"params": [b]}], lr=0.1).load_state_dict(saved)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("cls, kwargs, message", [
    (SGD, dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (SGD, dict(momentum=-0.5), "Invalid momentum value: -0.5"),
    (SGD, dict(weight_decay=-1), "Invalid weight_decay value: -1"),
    (SGD, dict(nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (SGD, dict(nesterov=True, momentum=0.9, dampening=0.1), "dampening=0.1"),
    (Adam, dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (Adam, dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (Adam, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (Adam, dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (AdamW, dict(lr=float("nan")), "Invalid learning rate: nan"),
    (AdamW, dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (RMSprop, dict(lr=-0.01), "Invalid learning rate: -0.01"),
    (RMSprop, dict(alpha=-0.9), "Invalid alpha value: -0.9"),
    (RMSprop, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (RMSprop, dict(momentum=-0.1), "Invalid momentum value: -0.1"),
    (RMSprop, dict(weight_decay=-0.2), "Invalid weight_decay value: -0.2"),
])
def test_invalid_hyper_parameters_are_named(cls, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(list(make_params()), **kwargs)


def test_invalid_hyper_parameter_in_a_group_is_named():
    w, b = make_params()
    with pytest.raises(ValueError, match=re.escape("Invalid learning rate: -2")):
        SGD([{"params": [w]}, {"params": [b], "lr": -2}], lr=0.1)


def test_bad_parameter_lists_are_rejected():
    w, b = make_params()
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        SGD(w, lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [w]}, {"params": [w, b]}], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([w * 2], lr=0.1)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        SGD([np.zeros(3)], lr=0.1)


# -------------------------------------------------------------- schedulers


def plateau_metrics(epochs=30):
    """Improves, stalls, improves a little, stalls: exercises patience and cooldown."""
    values = [1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.69999, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    values += [0.5 - 0.001 * i for i in range(5)] + [0.9] * 20
    return values[:epochs]


SCHEDULERS = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10, eta_min=0.001)),
    ("CosineAnnealingLR", dict(T_max=30)),
    ("ReduceLROnPlateau", dict(patience=2)),
    ("ReduceLROnPlateau", dict(patience=1, factor=0.5, cooldown=2, min_lr=[0.02, 0.001])),
    ("ReduceLROnPlateau", dict(mode="max", patience=0, threshold=0.05, threshold_mode="abs")),
    ("ReduceLROnPlateau", dict(patience=1, threshold=0.01, eps=0.02)),
]
OURS = {"StepLR": StepLR, "ExponentialLR": ExponentialLR,
        "CosineAnnealingLR": CosineAnnealingLR, "ReduceLROnPlateau": ReduceLROnPlateau}


def scheduler_id(case):
    return case[0] + "".join(f"-{k}={v}" for k, v in case[1].items())


def two_groups(lib):
    w = lib.zeros(2, requires_grad=True)
    b = lib.zeros(1, requires_grad=True)
    return [{"params": [w]}, {"params": [b], "lr": 0.05}]


def lr_sequence(scheduler, optimizer, epochs, plateau, start=0):
    sequence = []
    for epoch in range(start, start + epochs):
        optimizer.step()
        if plateau:
            scheduler.step(plateau_metrics()[epoch])
        else:
            scheduler.step()
        sequence.append(scheduler.get_last_lr())
        assert sequence[-1] == [g["lr"] for g in optimizer.param_groups]
    return sequence


@pytest.mark.parametrize("case", SCHEDULERS, ids=scheduler_id)
def test_scheduler_lr_sequence_matches_torch(case):
    torch = pytest.importorskip("torch")
    import micrograd.engine.ops as ops

    name, kwargs = case
    plateau = name == "ReduceLROnPlateau"
    theirs_opt = torch.optim.SGD(two_groups(torch), lr=0.1)
    theirs = getattr(torch.optim.lr_scheduler, name)(theirs_opt, **kwargs)
    ours_opt = SGD(two_groups(ops), lr=0.1)
    ours = OURS[name](ours_opt, **kwargs)
    assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    np.testing.assert_allclose(lr_sequence(ours, ours_opt, 30, plateau),
                               lr_sequence(theirs, theirs_opt, 30, plateau), rtol=RTOL)


def test_scheduler_values_by_formula():
    # Without torch: the closed forms of the three epoch-based schedules.
    import micrograd.engine.ops as ops

    for cls, kwargs, formula in [
        (StepLR, dict(step_size=7, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 7)),
        (ExponentialLR, dict(gamma=0.9), lambda t: 0.1 * 0.9**t),
        (CosineAnnealingLR, dict(T_max=10, eta_min=0.001),
         lambda t: 0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi * t / 10))),
    ]:
        optimizer = SGD(two_groups(ops), lr=0.1)
        scheduler = cls(optimizer, **kwargs)
        lrs = [lr[0] for lr in lr_sequence(scheduler, optimizer, 30, plateau=False)]
        np.testing.assert_allclose(lrs, [formula(t) for t in range(1, 31)], rtol=1e-9,
                                   err_msg=cls.__name__)


def test_reduce_on_plateau_by_hand():
    import micrograd.engine.ops as ops

    optimizer = SGD(two_groups(ops), lr=0.1)
    scheduler = ReduceLROnPlateau(optimizer, patience=1, factor=0.5)
    lrs = []
    for metric in [1.0, 1.0, 1.0, 0.5, 0.6, 0.7, 0.7]:
        scheduler.step(Tensor(metric))
        lrs.append(scheduler.get_last_lr()[0])
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025]


@pytest.mark.parametrize("case", SCHEDULERS, ids=scheduler_id)
def test_scheduler_state_dict_round_trip(case):
    import micrograd.engine.ops as ops

    name, kwargs = case
    plateau = name == "ReduceLROnPlateau"
    optimizer = SGD(two_groups(ops), lr=0.1)
    expected = lr_sequence(OURS[name](optimizer, **kwargs), optimizer, 30, plateau)

    optimizer = SGD(two_groups(ops), lr=0.1)
    scheduler = OURS[name](optimizer, **kwargs)
    lr_sequence(scheduler, optimizer, 12, plateau)
    saved_opt = json_round_trip(optimizer.state_dict())
    saved = json.loads(json.dumps(scheduler.state_dict()))

    optimizer = SGD(two_groups(ops), lr=0.7)
    scheduler = OURS[name](optimizer, **kwargs)
    optimizer.load_state_dict(saved_opt)
    scheduler.load_state_dict(saved)
    assert scheduler.get_last_lr() == expected[11]
    assert lr_sequence(scheduler, optimizer, 18, plateau, start=12) == expected[12:]


@pytest.mark.parametrize("make, message", [
    (lambda opt: StepLR(opt, step_size=0), "Invalid step_size: 0"),
    (lambda opt: CosineAnnealingLR(opt, T_max=0), "Invalid T_max: 0"),
    (lambda opt: ReduceLROnPlateau(opt, factor=1.0), "Invalid factor: 1.0"),
    (lambda opt: ReduceLROnPlateau(opt, mode="up"), "Invalid mode: 'up'"),
    (lambda opt: ReduceLROnPlateau(opt, threshold_mode="x"), "Invalid threshold_mode: 'x'"),
    (lambda opt: ReduceLROnPlateau(opt, min_lr=[0.1, 0.2]), "Invalid min_lr"),
])
def test_invalid_scheduler_arguments(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make(SGD(list(make_params()), lr=0.1))


def test_scheduler_needs_an_optimizer():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        StepLR(object(), step_size=2)


# ---------------------------------------------------------- gradient clipping


def params_with_grads(lib, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for shape in [(3, 4), (4,), (2,)]:
        if lib is None:
            p = f64(rng.standard_normal(shape), requires_grad=True)
            p.grad = f64(rng.standard_normal(shape) * 3)
        else:
            p = lib.tensor(rng.standard_normal(shape), requires_grad=True)
            p.grad = lib.tensor(rng.standard_normal(shape) * 3)
        params.append(p)
    params[2].grad = None  # a parameter without a gradient is skipped
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    ours, theirs = params_with_grads(None), params_with_grads(torch)
    norm = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert float(norm) == pytest.approx(expected.item(), rel=RTOL)
    for p, q in zip(ours, theirs):
        if q.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=RTOL)


def test_clip_grad_norm_by_hand():
    params = params_with_grads(None)
    grads = [p.grad.data.copy() for p in params[:2]]
    total = math.sqrt(sum(float((g**2).sum()) for g in grads))
    grad_arrays = [p.grad.data for p in params[:2]]
    norm = clip_grad_norm_(iter(params), max_norm=1.0)
    assert norm.item() == pytest.approx(total, rel=1e-12)
    clipped = math.sqrt(sum(float((p.grad.data**2).sum()) for p in params[:2]))
    assert clipped == pytest.approx(1.0, rel=1e-5)
    assert all(p.grad.data is g for p, g in zip(params, grad_arrays))  # in place
    # Below the limit nothing changes.
    assert float(clip_grad_norm_(params, max_norm=10.0)) == pytest.approx(clipped, rel=1e-12)
    assert math.sqrt(sum(float((p.grad.data**2).sum()) for p in params[:2])) == pytest.approx(
        clipped, rel=1e-6)


def test_clip_grad_norm_single_tensor_no_grads_and_nonfinite():
    w = f64([3.0, 4.0], requires_grad=True)
    assert float(clip_grad_norm_(w, 1.0)) == 0.0
    w.grad = f64([3.0, 4.0])
    assert float(clip_grad_norm_(w, 1.0)) == pytest.approx(5.0)
    np.testing.assert_allclose(w.grad.data, [0.6, 0.8], rtol=1e-6)
    w.grad = f64([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(w, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = params_with_grads(None), params_with_grads(torch)
    clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, q in zip(ours[:2], theirs[:2]):
        np.testing.assert_allclose(p.grad.data, q.grad.numpy(), rtol=RTOL)


def test_clip_grad_value_by_hand():
    params = params_with_grads(None)
    expected = [np.clip(p.grad.data, -0.5, 0.5) for p in params[:2]]
    clip_grad_value_(params, 0.5)
    for p, e in zip(params, expected):
        np.testing.assert_array_equal(p.grad.data, e)
