"""micrograd.nn against PyTorch: same weights in, same outputs and gradients out.

Every layer is compared in float64 within rtol 1e-5, forward values and the
gradients of input and parameters, in training and evaluation modes; state
dicts move both ways between the libraries. Skipped where torch is missing.
"""
import numpy as np
import pytest

import micrograd.nn as mn
from micrograd.engine.random import manual_seed
from micrograd.engine.tensor import Tensor

from conftest import assert_torch_parity

torch = pytest.importorskip("torch")
tnn = torch.nn

RTOL, ATOL = 1e-5, 1e-10


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def to_numpy(state):
    return {k: v.detach().numpy() for k, v in state.items()}


def to_torch(state):
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def assert_parity(mg_layer, torch_layer, x, train=True, steps=1):
    """Load torch's weights into micrograd, then run ``steps`` steps on different
    batches, comparing outputs, the gradients of input and parameters, and the
    state dicts after each (conftest.assert_torch_parity)."""
    for step in range(steps):
        assert_torch_parity(mg_layer, torch_layer, x * (step + 1) + step, rtol=RTOL, atol=ATOL,
                            train=train, load_weights=step == 0, seed=99)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3)])
def test_linear(bias, shape):
    assert_parity(mn.Linear(3, 2, bias=bias), tnn.Linear(3, 2, bias=bias), rand(*shape))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=2, stride=3, padding=2, bias=False),
])
def test_conv2d(kwargs):
    assert_parity(mn.Conv2d(2, 3, **kwargs), tnn.Conv2d(2, 3, **kwargs), rand(2, 2, 7, 6))


def test_conv2d_unbatched():
    assert_parity(mn.Conv2d(2, 3, 3, padding=1), tnn.Conv2d(2, 3, 3, padding=1), rand(2, 5, 5))


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1)),
    dict(kernel_size=3, stride=1),
])
@pytest.mark.parametrize("kind", ["MaxPool2d", "AvgPool2d"])
def test_pooling(kind, kwargs):
    assert_parity(getattr(mn, kind)(**kwargs), getattr(tnn, kind)(**kwargs), rand(2, 3, 7, 6))


@pytest.mark.parametrize("make", [
    lambda nn: nn.Flatten(),
    lambda nn: nn.Flatten(0, 2),
    lambda nn: nn.ReLU(),
    lambda nn: nn.Sigmoid(),
    lambda nn: nn.Tanh(),
    lambda nn: nn.Softmax(dim=1),
    lambda nn: nn.Softmax(dim=-1),
    lambda nn: nn.LogSoftmax(dim=1),
    lambda nn: nn.LogSoftmax(dim=3),
])
def test_parameterless_layers(make):
    assert_parity(make(mn), make(tnn), rand(2, 3, 4, 5) * 3)


def test_dropout_eval():
    assert_parity(mn.Dropout(0.5), tnn.Dropout(0.5), rand(3, 4), train=False)


def test_dropout_train_has_pytorchs_statistics():
    # The two libraries draw different masks; what must agree is the rule.
    manual_seed(0)
    x = np.ones((100, 100))
    mine = mn.Dropout(0.4)(Tensor(x, dtype=np.float64)).data
    theirs = tnn.Dropout(0.4)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.unique(mine), np.unique(theirs), rtol=1e-12)
    np.testing.assert_allclose(np.unique(mine), [0.0, 1 / 0.6], rtol=1e-12)
    assert abs((mine == 0).mean() - (theirs == 0).mean()) < 0.03


@pytest.mark.parametrize("kind, shape", [
    ("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (3, 3, 4, 2)),
])
@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(momentum=0.3, eps=1e-3),
    dict(momentum=None),
    dict(affine=False),
    dict(track_running_stats=False),
])
def test_batchnorm_train_then_eval(kind, shape, kwargs):
    mine, theirs = getattr(mn, kind)(3, **kwargs), getattr(tnn, kind)(3, **kwargs)
    # Non-trivial gamma and beta, and three steps so the running statistics move.
    if theirs.affine:
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(rand(3, seed=1)))
            theirs.bias.copy_(torch.from_numpy(rand(3, seed=2)))
    assert_parity(mine, theirs, rand(*shape), train=True, steps=3)
    # Evaluation from the statistics gathered above: state carried over, no reload.
    xs = rand(*shape, seed=5)
    xt = torch.tensor(xs, requires_grad=True)
    xm = Tensor(xs, requires_grad=True, dtype=np.float64)
    out_t, out_m = theirs.eval()(xt), mine.eval()(xm)
    out_t.sum().backward()
    out_m.sum().backward()
    np.testing.assert_allclose(out_m.data, out_t.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------- whole models


def small_cnn(nn):
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Tanh(), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Sigmoid(),
        nn.Linear(8, 3), nn.LogSoftmax(dim=1),
    )


def test_model_gradients_match_in_training():
    torch.manual_seed(0)
    theirs = small_cnn(tnn)
    theirs[8].p = 0.0  # dropout masks differ between the libraries
    mine = small_cnn(mn)
    mine[8].p = 0.0
    assert_parity(mine, theirs, rand(4, 1, 8, 8), train=True, steps=2)


def test_state_dict_torch_to_micrograd():
    torch.manual_seed(1)
    theirs = small_cnn(tnn).train()
    theirs(torch.randn(5, 1, 8, 8))  # running statistics off their defaults
    theirs.eval()
    mine = small_cnn(mn)
    mine.load_state_dict(to_numpy(theirs.state_dict()))  # float32 into float32
    mine.eval()
    x = rand(3, 1, 8, 8).astype(np.float32)
    out_m = mine(Tensor(x))
    assert out_m.dtype == np.float32
    np.testing.assert_allclose(out_m.data, theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_state_dict_micrograd_to_torch():
    manual_seed(2)
    mine = small_cnn(mn)
    mine(Tensor(rand(5, 1, 8, 8)))
    mine.double().eval()
    theirs = small_cnn(tnn).double()
    result = theirs.load_state_dict(to_torch(mine.state_dict()))  # strict: names and shapes
    assert not result.missing_keys and not result.unexpected_keys
    theirs.eval()
    x = rand(3, 1, 8, 8)
    np.testing.assert_allclose(mine(Tensor(x, dtype=np.float64)).data,
                               theirs(torch.from_numpy(x)).detach().numpy(), rtol=RTOL, atol=ATOL)
    assert int(theirs[1].num_batches_tracked) == 1


def test_state_dict_names_shapes_and_dtypes_match_pytorch():
    mine, theirs = small_cnn(mn).state_dict(), small_cnn(tnn).state_dict()
    assert list(mine) == list(theirs)
    for name, value in theirs.items():
        assert mine[name].shape == tuple(value.shape), name
        assert mine[name].dtype == value.numpy().dtype, name


@pytest.mark.parametrize("make, fan_in", [
    (lambda nn: nn.Linear(200, 300), 200),
    (lambda nn: nn.Conv2d(8, 30, 3), 72),
])
def test_default_init_distribution_matches_pytorch(make, fan_in):
    manual_seed(0)
    torch.manual_seed(0)
    mine, theirs = make(mn), make(tnn)
    for name, p in theirs.named_parameters():
        ours = getattr(mine, name).data
        theirs_np = p.detach().numpy()
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(ours).max() <= bound and np.abs(theirs_np).max() <= bound
        if name == "weight":
            assert abs(ours.std() - theirs_np.std()) < 0.05 * bound


def test_repr_matches_pytorch():
    # BatchNorm is left out: recent PyTorch prints a `bias=` flag it did not have before.
    for make in [
        lambda nn: nn.Linear(3, 2),
        lambda nn: nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False),
        lambda nn: nn.Flatten(),
        lambda nn: nn.Softmax(dim=1),
        lambda nn: nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Tanh())),
    ]:
        assert repr(make(mn)) == repr(make(tnn))
