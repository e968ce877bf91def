"""Metrics: hand-computed values on small examples, and equality with scikit-learn."""

import doctest
import json

import numpy as np
import pytest

import micrograd.metrics as M
from micrograd.engine.tensor import Tensor

# ---------------------------------------------------------------- classification, by hand

# Binary. Per sample:   0  1  2  3  4  5
BIN_TRUE = [1, 1, 1, 0, 0, 1]
BIN_PRED = [1, 0, 1, 0, 1, 1]
# class 1: tp = {0, 2, 5} = 3, fp = {4} = 1, fn = {1} = 1 -> P = 3/4, R = 3/4, F1 = 6/8
# class 0: tp = {3} = 1,       fp = {1} = 1, fn = {4} = 1 -> P = 1/2, R = 1/2, F1 = 2/4
# support: class 0 -> 2, class 1 -> 4; correct = 4 of 6


def test_binary_by_hand():
    assert M.accuracy(BIN_TRUE, BIN_PRED) == pytest.approx(4 / 6)
    np.testing.assert_array_equal(M.confusion_matrix(BIN_TRUE, BIN_PRED), [[1, 1], [1, 3]])
    for fn, class0, class1 in [
        (M.precision, 1 / 2, 3 / 4),
        (M.recall, 1 / 2, 3 / 4),
        (M.f1, 2 / 4, 6 / 8),
    ]:
        np.testing.assert_allclose(fn(BIN_TRUE, BIN_PRED, average=None), [class0, class1])
        assert fn(BIN_TRUE, BIN_PRED, average="binary") == pytest.approx(class1)
        assert fn(BIN_TRUE, BIN_PRED, average="binary", pos_label=0) == pytest.approx(class0)
        assert fn(BIN_TRUE, BIN_PRED, average="macro") == pytest.approx((class0 + class1) / 2)
        assert fn(BIN_TRUE, BIN_PRED, average="weighted") == pytest.approx(
            (2 * class0 + 4 * class1) / 6
        )
        # micro, single-label: every miss is one fp and one fn, so all three equal accuracy
        assert fn(BIN_TRUE, BIN_PRED, average="micro") == pytest.approx(4 / 6)


# Multi-class, class 2 never predicted. Per sample: 0  1  2  3  4  5
MC_TRUE = [0, 0, 1, 1, 2, 2]
MC_PRED = [0, 1, 1, 1, 0, 0]
# class 0: tp = {0} = 1, predicted {0, 4, 5} = 3, true 2 -> P = 1/3, R = 1/2, F1 = 2*1/(3+2) = 0.4
# class 1: tp = {2, 3} = 2, predicted {1, 2, 3} = 3, true 2 -> P = 2/3, R = 1, F1 = 2*2/(3+2) = 0.8
# class 2: tp = 0, predicted 0, true 2 -> P = 0/0 -> 0, R = 0, F1 = 0/(0+2) = 0
MC_PRECISION = [1 / 3, 2 / 3, 0.0]
MC_RECALL = [1 / 2, 1.0, 0.0]
MC_F1 = [0.4, 0.8, 0.0]


def test_multiclass_by_hand_with_a_class_never_predicted():
    assert M.accuracy(MC_TRUE, MC_PRED) == pytest.approx(3 / 6)
    np.testing.assert_array_equal(
        M.confusion_matrix(MC_TRUE, MC_PRED), [[1, 1, 0], [0, 2, 0], [2, 0, 0]]
    )
    for fn, expected in [(M.precision, MC_PRECISION), (M.recall, MC_RECALL), (M.f1, MC_F1)]:
        per_class = fn(MC_TRUE, MC_PRED, average=None)
        assert np.all(np.isfinite(per_class))
        np.testing.assert_allclose(per_class, expected)
        assert fn(MC_TRUE, MC_PRED, average="macro") == pytest.approx(np.mean(expected))
        # every support is 2, so weighted equals macro here
        assert fn(MC_TRUE, MC_PRED, average="weighted") == pytest.approx(np.mean(expected))
        assert fn(MC_TRUE, MC_PRED, average="micro") == pytest.approx(3 / 6)
    # the default average is macro: (1/3 + 2/3 + 0) / 3
    assert M.precision(MC_TRUE, MC_PRED) == pytest.approx(1 / 3)


def test_zero_division_gives_zero_without_warnings():
    with np.errstate(all="raise"):  # a 0/0 that reached NumPy would raise here
        np.testing.assert_array_equal(M.precision([0, 0], [1, 1], average=None), [0.0, 0.0])
        np.testing.assert_array_equal(M.recall([0, 0], [1, 1], average=None), [0.0, 0.0])
        assert M.f1([0, 0], [0, 0], average="binary") == 0.0  # no positive anywhere: 0 / 0
        # the supports sum to 0
        assert M.precision([0, 1], [0, 0], average="weighted", labels=[2]) == 0.0


def test_num_classes_keeps_absent_classes():
    # class 3 absent from both: a zero row and column, and a 0 in the macro mean
    cm = M.confusion_matrix(MC_TRUE, MC_PRED, num_classes=4)
    assert cm.shape == (4, 4) and cm[3].sum() == 0 and cm[:, 3].sum() == 0
    np.testing.assert_allclose(
        M.precision(MC_TRUE, MC_PRED, average=None, num_classes=4), MC_PRECISION + [0.0]
    )
    # (1/3 + 2/3 + 0 + 0) / 4
    assert M.precision(MC_TRUE, MC_PRED, num_classes=4) == pytest.approx(1 / 4)
    # support 0 weighs nothing
    assert M.f1(MC_TRUE, MC_PRED, average="weighted", num_classes=4) == pytest.approx(
        np.mean(MC_F1)
    )


def test_labels_choose_and_order_the_classes():
    np.testing.assert_allclose(
        M.recall(MC_TRUE, MC_PRED, average=None, labels=[2, 0]), [0.0, 1 / 2]
    )
    # samples whose true or predicted label is not listed drop out of the matrix
    np.testing.assert_array_equal(
        M.confusion_matrix(MC_TRUE, MC_PRED, labels=[1, 0]), [[2, 0], [1, 1]]
    )


def test_labels_as_floats_tensors_and_column_vectors():
    expected = M.f1(MC_TRUE, MC_PRED, average=None)
    as_tensor = Tensor(MC_TRUE)  # float32 by default
    as_column = np.array(MC_PRED).reshape(-1, 1)
    np.testing.assert_allclose(M.f1(as_tensor, as_column, average=None), expected)
    assert M.accuracy(as_tensor, Tensor(MC_PRED, dtype=np.int64)) == pytest.approx(0.5)
    report = M.classification_report(as_tensor, as_column)
    assert report["class_names"] == ["0", "1", "2"]  # not "0.0"


def test_string_labels():
    y_true, y_pred = ["cat", "dog", "dog"], ["cat", "cat", "dog"]
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred), [[1, 0], [1, 1]])
    assert M.precision(y_true, y_pred, average="binary", pos_label="dog") == 1.0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: M.accuracy([0, 1, 1], [0, 1]), r"\(3,\).*\(2,\)"),
        (lambda: M.f1([0, 1], [[0, 1], [1, 0]]), r"shape \(2, 2\).*argmax"),
        (lambda: M.accuracy([], []), "at least one sample"),
        (lambda: M.precision([0.0, 0.5], [0, 1]), "non-integer"),
        (lambda: M.precision([0, 1, 2], [0, 1, 2], average="binary"), "at most two classes"),
        (lambda: M.precision([0, 2], [0, 2], average="binary"), "pos_label=1"),
        (lambda: M.recall([0, 1], [0, 1], average="samples"), "average must be one of"),
        (lambda: M.recall([0, 3], [0, 1], num_classes=3), r"y_true holds label 3, outside 0\.\.2"),
        (lambda: M.recall([0, 1], [0, 1], num_classes=0), "positive integer"),
        (lambda: M.recall([0, 1], [0, 1], num_classes=2, labels=[0, 1]), "not both"),
        (lambda: M.confusion_matrix([0, 1], [0, 1], labels=[0, 0]), "duplicates"),
        (
            lambda: M.classification_report([0, 1, 2], [0, 1, 2], class_names=["a", "b"]),
            r"outside 0\.\.1",
        ),
        (
            lambda: M.classification_report([0, 1], [0, 1], ["a", "b", "c"], labels=[0, 1]),
            "3 class_names",
        ),
        (lambda: M.classification_report([0, 1], [0, 1], ["a", "a"]), "distinct"),
    ],
)
def test_classification_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_classification_report_by_hand():
    report = M.classification_report(MC_TRUE, MC_PRED, class_names=["cat", "dog", "eel"])
    per_class_keys = {
        f"{m}/{c}" for m in ("precision", "recall", "f1", "support") for c in ("cat", "dog", "eel")
    }
    assert (
        set(report)
        == {
            "accuracy",
            "precision_macro",
            "recall_macro",
            "f1_macro",
            "precision_weighted",
            "recall_weighted",
            "f1_weighted",
            "support",
            "class_names",
            "confusion_matrix",
        }
        | per_class_keys
    )
    assert report["accuracy"] == pytest.approx(0.5)
    assert report["precision_macro"] == pytest.approx(1 / 3)
    assert report["recall_macro"] == pytest.approx(1 / 2)
    assert report["f1_weighted"] == pytest.approx(0.4)
    assert report["precision/dog"] == pytest.approx(2 / 3)
    assert report["f1/eel"] == 0.0
    assert report["support/cat"] == 2 and report["support"] == 6
    assert report["class_names"] == ["cat", "dog", "eel"]
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [2, 0, 0]]


def test_classification_report_is_plain_json():
    report = M.classification_report(BIN_TRUE, np.array(BIN_PRED, dtype=np.int32))
    assert all(type(key) is str for key in report)
    for key, value in report.items():
        if key in ("class_names", "confusion_matrix"):
            assert type(value) is list
        else:
            assert type(value) in (int, float), key
    assert all(type(v) is int for row in report["confusion_matrix"] for v in row)
    assert json.loads(json.dumps(report)) == report


# ---------------------------------------------------------------- regression, by hand

# sklearn's documentation example.
REG_TRUE = [3.0, -0.5, 2.0, 7.0]
REG_PRED = [2.5, 0.0, 2.0, 8.0]
# errors 0.5, -0.5, 0, -1 -> squared 0.25 + 0.25 + 0 + 1 = 1.5, absolute 0.5 + 0.5 + 0 + 1 = 2
# mean of y_true = 11.5 / 4 = 2.875; deviations 0.125, -3.375, -0.875, 4.125
# total sum of squares = 0.015625 + 11.390625 + 0.765625 + 17.015625 = 29.1875


def test_regression_by_hand():
    assert M.mse(REG_TRUE, REG_PRED) == pytest.approx(1.5 / 4)
    assert M.rmse(REG_TRUE, REG_PRED) == pytest.approx(np.sqrt(1.5 / 4))
    assert M.mae(REG_TRUE, REG_PRED) == pytest.approx(2 / 4)
    assert M.r2(REG_TRUE, REG_PRED) == pytest.approx(1 - 1.5 / 29.1875)


def test_r2_with_constant_targets():
    assert M.r2([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == 1.0  # perfect
    assert M.r2([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == 0.0  # undefined otherwise: 0, not -inf
    assert M.r2([5.0], [4.0]) == 0.0  # one sample is constant
    assert M.r2([1.0, 2.0], [3.0, 0.0]) == pytest.approx(1 - 8 / 0.5)  # can go far below 0


def test_regression_shapes_are_interchangeable():
    column = np.array(REG_PRED).reshape(-1, 1)
    expected = M.regression_report(REG_TRUE, REG_PRED)
    assert M.regression_report(np.array(REG_TRUE).reshape(-1, 1), REG_PRED) == pytest.approx(
        expected
    )
    assert M.regression_report(Tensor(REG_TRUE), column) == pytest.approx(expected)
    # two outputs: each column scored alone, then averaged
    y_true = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    y_pred = np.array([[1.0, 3.0], [2.0, 0.0], [4.0, 0.0]])
    assert M.mse(y_true, y_pred) == pytest.approx((1 / 3 + 9 / 3) / 2)
    assert M.rmse(y_true, y_pred) == pytest.approx((np.sqrt(1 / 3) + np.sqrt(9 / 3)) / 2)
    assert M.r2(y_true, y_pred) == pytest.approx((0.5 + 0.0) / 2)  # second column constant


def test_regression_report():
    report = M.regression_report(REG_TRUE, REG_PRED)
    assert list(report) == ["mse", "rmse", "mae", "r2"]
    assert all(type(v) is float for v in report.values())
    assert report["mae"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], r"\(3,\).*\(2,\)"),
        (np.zeros((3, 1)), np.zeros((4, 1)), r"\(3, 1\).*\(4, 1\)"),
        (np.zeros(3), np.zeros((3, 2)), r"\(3,\).*\(3, 2\)"),
        (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), r"shape \(2, 2, 2\)"),
        ([], [], "at least one sample"),
    ],
)
@pytest.mark.parametrize("fn", [M.mse, M.rmse, M.mae, M.r2, M.regression_report])
def test_regression_errors(fn, y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        fn(y_true, y_pred)


def test_docstring_examples():
    failed, attempted = doctest.testmod(M, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert attempted > 10 and failed == 0


# ---------------------------------------------------------------- against scikit-learn

rng = np.random.default_rng(0)
# (y_true, y_pred, sklearn labels argument, our keyword arguments)
CLASS_CASES = {
    "binary": (rng.integers(0, 2, 50), rng.integers(0, 2, 50), None, {}),
    "5_classes": (rng.integers(0, 5, 80), rng.integers(0, 5, 80), None, {}),
    # class 3 only in y_true, class 4 absent: zero divisions in both directions
    "absent_classes": (
        rng.integers(0, 4, 40),
        rng.integers(0, 3, 40),
        [0, 1, 2, 3, 4],
        {"num_classes": 5},
    ),
    "label_subset": (rng.integers(0, 4, 60), rng.integers(0, 4, 60), [3, 1], {"labels": [3, 1]}),
    "sparse_labels": (rng.choice([-1, 7, 20], 30), rng.choice([-1, 7, 20], 30), None, {}),
}
SKLEARN_FNS = {"precision": "precision_score", "recall": "recall_score", "f1": "f1_score"}


@pytest.mark.parametrize("average", [None, "macro", "weighted", "micro"])
@pytest.mark.parametrize("name", SKLEARN_FNS)
@pytest.mark.parametrize("case", CLASS_CASES)
def test_scores_match_sklearn(case, name, average):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, sk_labels, kwargs = CLASS_CASES[case]
    expected = getattr(sk_metrics, SKLEARN_FNS[name])(
        y_true, y_pred, average=average, labels=sk_labels, zero_division=0
    )
    np.testing.assert_allclose(
        getattr(M, name)(y_true, y_pred, average=average, **kwargs), expected, atol=1e-12
    )


@pytest.mark.parametrize("pos_label", [0, 1])
@pytest.mark.parametrize("name", SKLEARN_FNS)
def test_binary_scores_match_sklearn(name, pos_label):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, _, _ = CLASS_CASES["binary"]
    expected = getattr(sk_metrics, SKLEARN_FNS[name])(
        y_true, y_pred, average="binary", pos_label=pos_label
    )
    assert getattr(M, name)(y_true, y_pred, average="binary", pos_label=pos_label) == pytest.approx(
        expected
    )


@pytest.mark.parametrize("case", CLASS_CASES)
def test_accuracy_and_confusion_matrix_match_sklearn(case):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, sk_labels, kwargs = CLASS_CASES[case]
    assert M.accuracy(y_true, y_pred) == pytest.approx(sk_metrics.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(
        M.confusion_matrix(y_true, y_pred, **kwargs),
        sk_metrics.confusion_matrix(y_true, y_pred, labels=sk_labels),
    )


@pytest.mark.parametrize("case", ["binary", "5_classes", "absent_classes"])
def test_classification_report_matches_sklearn(case):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred, sk_labels, kwargs = CLASS_CASES[case]
    ours = M.classification_report(y_true, y_pred, **kwargs)
    theirs = sk_metrics.classification_report(
        y_true, y_pred, labels=sk_labels, output_dict=True, zero_division=0
    )
    assert ours["accuracy"] == pytest.approx(sk_metrics.accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        for metric, sk_metric in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
        ):
            assert ours[f"{metric}_{average}"] == pytest.approx(theirs[f"{average} avg"][sk_metric])
    for name in ours["class_names"]:
        for metric, sk_metric in (
            ("precision", "precision"),
            ("recall", "recall"),
            ("f1", "f1-score"),
        ):
            assert ours[f"{metric}/{name}"] == pytest.approx(theirs[name][sk_metric])
        assert ours[f"support/{name}"] == theirs[name]["support"]


REG_CASES = {
    "vector": (rng.standard_normal(50), rng.standard_normal(50)),
    "column_vs_vector": (rng.standard_normal((40, 1)), rng.standard_normal(40)),
    "good_fit": (np.linspace(0, 1, 30), np.linspace(0, 1, 30) + 0.01 * rng.standard_normal(30)),
    "three_outputs": (rng.standard_normal((25, 3)), rng.standard_normal((25, 3))),
    "constant_column": (np.c_[np.ones(20), rng.standard_normal(20)], rng.standard_normal((20, 2))),
}
SKLEARN_REG_FNS = {
    "mse": "mean_squared_error",
    "rmse": "root_mean_squared_error",
    "mae": "mean_absolute_error",
    "r2": "r2_score",
}


@pytest.mark.parametrize("name", SKLEARN_REG_FNS)
@pytest.mark.parametrize("case", REG_CASES)
def test_regression_matches_sklearn(case, name):
    sk_metrics = pytest.importorskip("sklearn.metrics")
    sk_fn = getattr(sk_metrics, SKLEARN_REG_FNS[name], None)
    if sk_fn is None:
        pytest.skip(f"this scikit-learn has no {SKLEARN_REG_FNS[name]}")
    y_true, y_pred = REG_CASES[case]
    if y_true.ndim != y_pred.ndim:  # sklearn wants matching shapes; ours accepts (N, 1) with (N,)
        expected = sk_fn(y_true.ravel(), y_pred.ravel())
    else:
        expected = sk_fn(y_true, y_pred)
    assert getattr(M, name)(y_true, y_pred) == pytest.approx(expected, rel=1e-12, abs=1e-12)
