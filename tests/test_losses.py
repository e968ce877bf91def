"""Losses: central-difference gradients, PyTorch as oracle, and the shape rules."""
import numpy as np
import pytest
from gradcheck import gradcheck

from micrograd.engine.tensor import Tensor
from micrograd.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
)

REDUCTIONS = ["mean", "sum", "none"]
RTOL, ATOL = 1e-5, 1e-12
N, C = 5, 4


def rng(seed=0):
    return np.random.default_rng(seed)


def f64(a, requires_grad=False):
    return Tensor(a, requires_grad=requires_grad, dtype=np.float64)


# Fixed inputs shared by the gradient checks and the torch comparisons.
PRED = rng(1).standard_normal((N, 3))
REG_TARGET = rng(2).standard_normal((N, 3))
LOGITS = rng(3).standard_normal((N, C)) * 2
CLASSES = np.array([0, 3, 1, 1, 2])
SOFT = rng(4).dirichlet(np.ones(C), size=N)
PROBS = rng(5).uniform(0.05, 0.95, (N, 3))
BINARY = rng(6).integers(0, 2, (N, 3)).astype(np.float64)
COLUMN = rng(7).uniform(0.05, 0.95, (N, 1))
LABELS = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 1.5])
POS_WEIGHT = np.array([0.5, 2.0, 3.0])


# ------------------------------------------------------ central differences


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradcheck_in_prediction_and_target(reduction):
    gradcheck(lambda x, y: MSELoss(reduction)(x, y), PRED, REG_TARGET)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_gradcheck(reduction):
    gradcheck(lambda x: L1Loss(reduction)(x, REG_TARGET), PRED)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", [CLASSES, CLASSES.astype(np.float64), SOFT],
                         ids=["int", "float", "soft"])
def test_cross_entropy_gradcheck(reduction, target):
    gradcheck(lambda x: CrossEntropyLoss(reduction=reduction)(x, target), LOGITS)


def test_cross_entropy_weight_and_ignore_index_gradcheck():
    target = np.array([0, -1, 1, 3, -1])
    loss_fn = CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=-1)
    gradcheck(lambda x: loss_fn(x, target), LOGITS)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_one_column_gradcheck(reduction):
    gradcheck(lambda p: CrossEntropyLoss(reduction=reduction)(p, LABELS), COLUMN)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_gradcheck(reduction):
    gradcheck(lambda p: BCELoss(reduction=reduction)(p, BINARY), PROBS)
    gradcheck(lambda p: BCELoss(weight=POS_WEIGHT, reduction=reduction)(p, BINARY), PROBS)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_gradcheck(reduction):
    gradcheck(lambda x: BCEWithLogitsLoss(reduction=reduction)(x, BINARY), PRED)
    loss_fn = BCEWithLogitsLoss(reduction=reduction, pos_weight=POS_WEIGHT, weight=PROBS)
    gradcheck(lambda x: loss_fn(x, BINARY), PRED)


def test_bce_with_logits_gradient_at_zero_logit_is_sigmoid_minus_target():
    # Zero-initialised models start at x = 0, where max(x, 0) and |x| have kinks.
    x = f64(np.zeros(4), requires_grad=True)
    y = np.array([0.0, 1.0, 0.25, 1.0])
    BCEWithLogitsLoss(reduction="sum")(x, y).backward()
    np.testing.assert_allclose(x.grad.data, 0.5 - y)


# ------------------------------------------------------------ torch oracle


def compare_with_torch(ours, theirs, x, target, torch_target, seed=0):
    """Forward values and input gradients of ``ours`` and ``theirs`` agree."""
    torch = pytest.importorskip("torch")
    x_ours = f64(x, requires_grad=True)
    out = ours(x_ours, target)
    x_torch = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out_torch = theirs(x_torch, torch_target)
    assert out.shape == tuple(out_torch.shape)
    np.testing.assert_allclose(out.data, out_torch.detach().numpy(), rtol=RTOL, atol=ATOL)
    proj = rng(seed).standard_normal(out.shape)
    (out * f64(proj)).sum().backward()
    (out_torch * torch.tensor(proj)).sum().backward()
    np.testing.assert_allclose(x_ours.grad.data, x_torch.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_and_l1_match_torch(reduction):
    torch = pytest.importorskip("torch")
    target = torch.tensor(REG_TARGET)
    compare_with_torch(MSELoss(reduction), torch.nn.MSELoss(reduction=reduction),
                       PRED, REG_TARGET, target)
    compare_with_torch(L1Loss(reduction), torch.nn.L1Loss(reduction=reduction),
                       PRED, REG_TARGET, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float64, np.float32])
def test_cross_entropy_class_targets_match_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    compare_with_torch(CrossEntropyLoss(reduction=reduction),
                       torch.nn.CrossEntropyLoss(reduction=reduction),
                       LOGITS, Tensor(CLASSES, dtype=dtype), torch.tensor(CLASSES))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_soft_targets_match_torch(reduction):
    torch = pytest.importorskip("torch")
    one_hot = np.eye(C)[CLASSES]
    for target in (SOFT, one_hot):
        compare_with_torch(CrossEntropyLoss(reduction=reduction),
                           torch.nn.CrossEntropyLoss(reduction=reduction),
                           LOGITS, target, torch.tensor(target))
    compare_with_torch(CrossEntropyLoss(weight=CLASS_WEIGHT, reduction=reduction),
                       torch.nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHT),
                                                 reduction=reduction),
                       LOGITS, SOFT, torch.tensor(SOFT))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_weight_and_ignore_index_match_torch(reduction):
    torch = pytest.importorskip("torch")
    target = np.array([0, -1, 1, 3, 3])
    compare_with_torch(
        CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=-1, reduction=reduction),
        torch.nn.CrossEntropyLoss(weight=torch.tensor(CLASS_WEIGHT), ignore_index=-1,
                                  reduction=reduction),
        LOGITS, target, torch.tensor(target))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_spatial_logits_match_torch(reduction):
    torch = pytest.importorskip("torch")
    logits = rng(8).standard_normal((2, C, 3, 2))
    target = rng(9).integers(0, C, (2, 3, 2))
    compare_with_torch(CrossEntropyLoss(reduction=reduction),
                       torch.nn.CrossEntropyLoss(reduction=reduction),
                       logits, target, torch.tensor(target))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_shape", [(N,), (N, 1)])
def test_cross_entropy_one_column_is_torch_bce(reduction, label_shape):
    torch = pytest.importorskip("torch")
    bce = torch.nn.BCELoss(reduction=reduction)
    compare_with_torch(CrossEntropyLoss(reduction=reduction),
                       lambda p, y: bce(p.reshape(-1), y),
                       COLUMN, LABELS.reshape(label_shape), torch.tensor(LABELS))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    compare_with_torch(BCELoss(reduction=reduction), torch.nn.BCELoss(reduction=reduction),
                       PROBS, BINARY, torch.tensor(BINARY))
    compare_with_torch(BCELoss(weight=POS_WEIGHT, reduction=reduction),
                       torch.nn.BCELoss(weight=torch.tensor(POS_WEIGHT), reduction=reduction),
                       PROBS, PROBS[::-1].copy(), torch.tensor(PROBS[::-1].copy()))


def test_bce_at_zero_and_one_matches_torch_value():
    torch = pytest.importorskip("torch")
    p = np.array([0.0, 1.0, 0.0, 1.0])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    ours = BCELoss(reduction="none")(f64(p), y)
    theirs = torch.nn.BCELoss(reduction="none")(torch.tensor(p), torch.tensor(y))
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=RTOL)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    compare_with_torch(BCEWithLogitsLoss(reduction=reduction),
                       torch.nn.BCEWithLogitsLoss(reduction=reduction),
                       PRED * 3, BINARY, torch.tensor(BINARY))
    compare_with_torch(
        BCEWithLogitsLoss(weight=PROBS, pos_weight=POS_WEIGHT, reduction=reduction),
        torch.nn.BCEWithLogitsLoss(weight=torch.tensor(PROBS),
                                   pos_weight=torch.tensor(POS_WEIGHT), reduction=reduction),
        PRED * 3, PROBS[::-1].copy(), torch.tensor(PROBS[::-1].copy()))


def test_bce_with_logits_is_stable_for_huge_logits():
    torch = pytest.importorskip("torch")
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    compare_with_torch(BCEWithLogitsLoss(reduction="none"),
                       torch.nn.BCEWithLogitsLoss(reduction="none"), x, y, torch.tensor(y))


# ------------------------------------------------------------ shape rules


@pytest.mark.parametrize("loss_fn", [MSELoss(), L1Loss(), BCELoss(), BCEWithLogitsLoss()],
                         ids=repr)
def test_column_against_flat_target_is_the_same_values(loss_fn):
    column = COLUMN  # (N, 1), in (0, 1) so that BCELoss accepts it
    flat = column.reshape(-1)
    expected = loss_fn(f64(flat), LABELS).item()
    assert loss_fn(f64(column), LABELS).item() == pytest.approx(expected, rel=1e-12)
    assert loss_fn(f64(flat), LABELS.reshape(N, 1)).item() == pytest.approx(expected, rel=1e-12)


def test_reduction_none_keeps_the_prediction_shape():
    assert MSELoss(reduction="none")(f64(COLUMN), LABELS).shape == (N, 1)
    assert MSELoss(reduction="none")(f64(LABELS), COLUMN).shape == (N,)


@pytest.mark.parametrize("loss_fn", [MSELoss(), L1Loss(), BCELoss(), BCEWithLogitsLoss(),
                                     CrossEntropyLoss()], ids=repr)
def test_column_against_three_columns_names_both_shapes(loss_fn):
    with pytest.raises(ValueError, match=r"\(5, 1\).*\(5, 3\)"):
        loss_fn(f64(COLUMN), BINARY)


@pytest.mark.parametrize("loss_fn", [MSELoss(), L1Loss(), BCEWithLogitsLoss()], ids=repr)
def test_other_mismatches_raise_instead_of_broadcasting(loss_fn):
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(3,\)"):
        loss_fn(f64(PROBS), BINARY[0])
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        loss_fn(f64(LABELS), LABELS[:4])


def test_cross_entropy_target_shape_errors():
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(4,\)"):
        CrossEntropyLoss()(f64(LOGITS), CLASSES[:4])
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(5, 3\)"):
        CrossEntropyLoss()(f64(LOGITS), np.zeros((N, 3)))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        CrossEntropyLoss()(f64(LOGITS[0]), 1)


def test_cross_entropy_class_targets_as_column_are_accepted():
    expected = CrossEntropyLoss()(f64(LOGITS), CLASSES).item()
    assert CrossEntropyLoss()(f64(LOGITS), CLASSES.reshape(N, 1)).item() == pytest.approx(
        expected, rel=1e-12)


# -------------------------------------------------------- targets and values


@pytest.mark.parametrize("convert", [list, np.asarray, f64, lambda a: Tensor(a)],
                         ids=["list", "numpy", "tensor64", "tensor32"])
def test_targets_may_be_lists_arrays_or_tensors(convert):
    assert MSELoss()(f64(PRED), convert(REG_TARGET)).item() == pytest.approx(
        np.mean((PRED - REG_TARGET) ** 2), rel=1e-6)
    expected_ce = -np.mean(
        (LOGITS - np.log(np.exp(LOGITS).sum(1, keepdims=True)))[np.arange(N), CLASSES])
    assert CrossEntropyLoss()(f64(LOGITS), convert(CLASSES)).item() == pytest.approx(
        expected_ce, rel=1e-12)


def test_float32_predictions_give_float32_losses_and_gradients():
    for loss_fn, x, target in [(MSELoss(), PRED, REG_TARGET.tolist()),
                               (CrossEntropyLoss(), LOGITS, CLASSES),
                               (CrossEntropyLoss(), COLUMN, LABELS),
                               (BCELoss(), PROBS, f64(BINARY)),
                               (BCEWithLogitsLoss(), PRED, BINARY)]:
        x = Tensor(x, requires_grad=True)
        loss = loss_fn(x, target)
        loss.backward()
        assert loss.dtype == np.float32, loss_fn
        assert x.grad.dtype == np.float32, loss_fn


def test_one_column_outside_unit_interval_says_add_a_sigmoid():
    logits = COLUMN * 4 - 2
    with pytest.raises(ValueError, match="Sigmoid.*BCEWithLogitsLoss"):
        CrossEntropyLoss()(f64(logits), LABELS)


def test_one_column_targets_must_be_in_unit_interval():
    with pytest.raises(ValueError, match="0/1 targets"):
        CrossEntropyLoss()(f64(COLUMN), LABELS * 2)


def test_one_column_at_zero_and_one_is_finite():
    p = f64([[0.0], [1.0], [0.0], [1.0]], requires_grad=True)
    loss = CrossEntropyLoss()(p, [0, 1, 1, 0])
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() > 10
    assert np.all(np.isfinite(p.grad.data))


def test_one_column_matches_the_binary_log_loss_formula():
    expected = -np.mean(LABELS * np.log(COLUMN[:, 0]) + (1 - LABELS) * np.log(1 - COLUMN[:, 0]))
    assert CrossEntropyLoss()(f64(COLUMN), LABELS).item() == pytest.approx(expected, rel=1e-12)


def test_bce_rejects_values_outside_unit_interval():
    with pytest.raises(ValueError, match="Sigmoid.*BCEWithLogitsLoss"):
        BCELoss()(f64(PRED), BINARY)


def test_cross_entropy_rejects_fractional_and_out_of_range_classes():
    with pytest.raises(ValueError, match="whole numbers"):
        CrossEntropyLoss()(f64(LOGITS), CLASSES + 0.5)
    with pytest.raises(IndexError, match="target 4 is out of bounds for 4 classes"):
        CrossEntropyLoss()(f64(LOGITS), [0, 1, 4, 0, 0])
    with pytest.raises(IndexError, match="out of bounds"):
        CrossEntropyLoss()(f64(LOGITS), [0, -1, 1, 0, 0])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = f64([[1000.0, 0.0, -1000.0]], requires_grad=True)
    loss = CrossEntropyLoss()(logits, [2])
    loss.backward()
    assert loss.item() == pytest.approx(2000.0)
    np.testing.assert_allclose(logits.grad.data, [[1.0, 0.0, -1.0]], atol=1e-12)


def test_invalid_reduction_is_rejected():
    with pytest.raises(ValueError, match="Invalid reduction: 'avg'"):
        MSELoss(reduction="avg")


def test_losses_print_like_torch_modules():
    assert repr(MSELoss()) == "MSELoss(reduction='mean')"
    assert repr(CrossEntropyLoss(reduction="sum")) == "CrossEntropyLoss(reduction='sum')"


# ------------------------------------------- every target ignored (issue 10)

ALL_IGNORED = np.full(N, -1)


@pytest.mark.parametrize("weight", [None, CLASS_WEIGHT], ids=["unweighted", "weighted"])
def test_cross_entropy_all_ignored_has_nan_loss_and_zero_gradient(weight):
    # 'mean' divides by a total weight of 0: the loss is 0/0, as in PyTorch,
    # but no sample contributes, so the gradient is exactly 0, not NaN.
    x = f64(LOGITS, requires_grad=True)
    loss = CrossEntropyLoss(weight=weight, ignore_index=-1)(x, ALL_IGNORED)
    loss.backward()
    assert np.isnan(loss.item())
    assert np.array_equal(x.grad.data, np.zeros_like(LOGITS))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weight", [None, CLASS_WEIGHT], ids=["unweighted", "weighted"])
def test_cross_entropy_all_ignored_matches_torch(reduction, weight):
    torch = pytest.importorskip("torch")
    compare_with_torch(
        CrossEntropyLoss(weight=weight, ignore_index=-1, reduction=reduction),
        torch.nn.CrossEntropyLoss(weight=None if weight is None else torch.tensor(weight),
                                  ignore_index=-1, reduction=reduction),
        LOGITS, ALL_IGNORED, torch.tensor(ALL_IGNORED))
    spatial = rng(10).standard_normal((2, C, 3))
    ignored = np.full((2, 3), -1)
    compare_with_torch(CrossEntropyLoss(ignore_index=-1, reduction=reduction),
                       torch.nn.CrossEntropyLoss(ignore_index=-1, reduction=reduction),
                       spatial, ignored, torch.tensor(ignored))


def test_cross_entropy_zero_total_weight_stays_nan_like_torch():
    # Samples that count but whose class weights are all 0: PyTorch's gradient
    # is NaN here (0/0 per element), and so is ours; only ignored samples get 0.
    torch = pytest.importorskip("torch")
    weight = np.array([0.0, 0.0, 1.0, 1.0])
    target = np.array([0, 1, 0, 1, 0])
    compare_with_torch(CrossEntropyLoss(weight=weight),
                       torch.nn.CrossEntropyLoss(weight=torch.tensor(weight)),
                       LOGITS, target, torch.tensor(target))
