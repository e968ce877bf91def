"""CrossEntropyLoss(label_smoothing=): PyTorch's values and gradients, alone and with
weight= and ignore_index=, for class-index and probability targets, and from YAML."""
import numpy as np
import pytest

import micrograd.tensor as mt
from micrograd.build import build_loss
from micrograd.config.loader import validate
from micrograd.engine.tensor import Tensor
from micrograd.losses import cross_entropy

from conftest import LINEAR, run, write_config


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


TARGET = np.array([0, 2, 1, -100, 3, 2])
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("spatial", [False, True])
def test_class_targets_match_torch(reduction, weighted, ignore, smoothing, spatial):
    torch = pytest.importorskip("torch")
    x = rand(6, 4, 3) if spatial else rand(6, 4)
    target = TARGET if ignore else np.abs(TARGET) % 4
    if spatial:
        target = np.stack([target, np.roll(target, 1), np.roll(target, 2)], axis=1)
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT) if weighted else None,
                                   **kwargs)(xt, torch.tensor(target))
    xm = Tensor(x, requires_grad=True, dtype=np.float64)
    lm = mt.CrossEntropyLoss(weight=WEIGHT if weighted else None, **kwargs)(xm, target)
    np.testing.assert_allclose(lm.data, lt.detach().numpy(), rtol=1e-6, atol=1e-12)
    proj = rand(*lt.shape, seed=1)
    (lt * torch.tensor(proj)).sum().backward()
    (lm * Tensor(proj, dtype=np.float64)).sum().backward()
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_probability_targets_match_torch(weighted):
    torch = pytest.importorskip("torch")
    x, q = rand(5, 3), np.random.default_rng(2).dirichlet(np.ones(3), 5)
    w = np.array([1.0, 0.5, 2.0]) if weighted else None
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(xt, torch.tensor(q), None if w is None else
                                           torch.tensor(w), label_smoothing=0.2)
    xm = Tensor(x, requires_grad=True, dtype=np.float64)
    lm = cross_entropy(xm, q, w, label_smoothing=0.2)
    lt.backward()
    lm.backward()
    np.testing.assert_allclose(lm.data, lt.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(xm.grad.data, xt.grad.numpy(), rtol=1e-6, atol=1e-12)


def test_bad_label_smoothing_and_one_column():
    with pytest.raises(ValueError, match="label_smoothing must be between 0.0 and 1.0"):
        mt.CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="label_smoothing has no meaning for one output"):
        cross_entropy(Tensor([[0.3], [0.8]]), [0, 1], label_smoothing=0.1)
    assert repr(mt.CrossEntropyLoss(label_smoothing=0.1)) == (
        "CrossEntropyLoss(reduction='mean', label_smoothing=0.1)")


BLOBS = {"data": {"type": "synthetic", "kind": "blobs", "n": 40},
         "model": {"layers": [{"type": "linear", "out_features": 2}]},
         "optimizer": {"type": "sgd"}, "train": {"epochs": 1, "batch_size": 8}}


def test_yaml_label_smoothing_reaches_the_loss():
    loss = build_loss(validate({**BLOBS, "loss": {"type": "cross_entropy",
                                                  "label_smoothing": 0.1}}))
    assert loss.label_smoothing == 0.1
    assert build_loss(validate({**BLOBS, "loss": "cross_entropy"})).label_smoothing == 0.0


@pytest.mark.parametrize("loss, fragment", [
    ({"type": "cross_entropy", "label_smoothing": 1.5}, "label_smoothing"),
    ({"type": "mse", "label_smoothing": 0.1}, "label_smoothing"),
])
def test_yaml_errors_are_config_errors(tmp_path, loss, fragment):
    result = run(["train", str(write_config(tmp_path, {**LINEAR, "loss": loss})), "-q"],
                 tmp_path)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and fragment in result.output
