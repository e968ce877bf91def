"""Scores for predictions: classification (accuracy, precision, recall, F1, the
confusion matrix) and regression (MSE, RMSE, MAE, R²).

Plain NumPy with scikit-learn's semantics, so numbers can be checked against
it. Every function takes NumPy arrays, lists, or anything with a ``.data``
ndarray (a micrograd ``Tensor``). Classification functions take class labels,
not scores: take ``logits.argmax(1)`` first. A zero denominator gives 0.0,
sklearn's default ``zero_division=0``, with no warning and no NaN.

``classification_report`` and ``regression_report`` return flat dicts of plain
Python values, ready for ``json.dumps``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "accuracy",
    "confusion_matrix",
    "precision",
    "recall",
    "f1",
    "classification_report",
    "mse",
    "rmse",
    "mae",
    "r2",
    "regression_report",
    "VALIDATION_METRICS",
    "GOAL",
    "improved",
]

#: The figures training computes on the validation split, per task, besides the loss.
VALIDATION_METRICS = {
    "classification": ("accuracy", "f1_macro"),
    "regression": ("mse", "rmse", "mae", "r2"),
}
#: Which way is better for each figure a run can monitor (``train.monitor``).
GOAL = {"loss": "min", "mse": "min", "rmse": "min", "mae": "min",
        "accuracy": "max", "f1_macro": "max", "r2": "max"}


def improved(metric: str, value: float, best) -> bool:
    """Whether ``value`` of ``metric`` beats ``best`` (None: nothing to beat yet)."""
    if best is None:
        return True
    return value < best if GOAL[metric] == "min" else value > best

_AVERAGES = (None, "binary", "micro", "macro", "weighted")


def _as_array(x):
    """An ndarray from an array, a list, or an object holding one in ``.data``."""
    # ndarray has a ``.data`` too (its raw buffer), so it must not be unwrapped.
    if not isinstance(x, np.ndarray):
        x = getattr(x, "data", x)
    return np.asarray(x)


def _check_same_length(y_true, y_pred):
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true and y_pred have different lengths: y_true has shape "
            f"{np.shape(y_true)}, y_pred has shape {np.shape(y_pred)}"
        )
    if len(y_true) == 0:
        raise ValueError("y_true and y_pred are empty: a metric needs at least one sample")


# ---------------------------------------------------------------- classification


def _as_labels(y, name):
    """A 1-D label array from shape (N,) or (N, 1); integral floats become int64."""
    y = _as_array(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"{name} must hold one class label per sample, shape (N,) or (N, 1); "
            f"got shape {y.shape} (for scores or logits, take argmax over classes first)"
        )
    if y.dtype.kind == "f":
        # Tensors hold float32 by default, so labels often arrive as 0.0, 1.0, ...
        if not np.all(np.mod(y, 1) == 0):
            raise ValueError(
                f"{name} must hold class labels, got non-integer values such as "
                f"{y[np.mod(y, 1) != 0][0]!r}"
            )
        y = y.astype(np.int64)
    return y


def _prepare_labels(y_true, y_pred):
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    _check_same_length(t, p)
    return t, p


def _resolve_labels(t, p, labels, num_classes):
    """The classes to score, in order: ``labels``, ``range(num_classes)``, or those seen."""
    if labels is not None and num_classes is not None:
        raise ValueError("pass labels or num_classes, not both")
    if num_classes is not None:
        if (
            isinstance(num_classes, bool)
            or not isinstance(num_classes, (int, np.integer))
            or num_classes < 1
        ):
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        for name, y in (("y_true", t), ("y_pred", p)):
            if y.dtype.kind not in "iub":
                raise ValueError(f"num_classes needs integer labels, {name} has dtype {y.dtype}")
            outside = (y < 0) | (y >= num_classes)
            if outside.any():
                raise ValueError(
                    f"{name} holds label {y[outside][0]}, outside 0..{num_classes - 1} "
                    f"for num_classes={num_classes}"
                )
        return np.arange(num_classes)
    if labels is not None:
        labels = _as_array(labels).ravel()
        if labels.size == 0:
            raise ValueError("labels is empty")
        if np.unique(labels).size != labels.size:
            raise ValueError(f"labels holds duplicates: {labels.tolist()}")
        return labels
    return np.union1d(t, p)


def _index_of(y, labels):
    """Position of each value of ``y`` in ``labels``; -1 where it is not there."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.clip(np.searchsorted(sorted_labels, y), 0, len(labels) - 1)
    return np.where(sorted_labels[pos] == y, order[pos], -1)


def _counts(t, p, labels):
    """Per class: true positives, predicted count (tp + fp), true count (tp + fn, the support)."""
    n = len(labels)
    ti, pi = _index_of(t, labels), _index_of(p, labels)
    hit = (t == p) & (ti >= 0)
    tp = np.bincount(ti[hit], minlength=n)
    pred_count = np.bincount(pi[pi >= 0], minlength=n)
    true_count = np.bincount(ti[ti >= 0], minlength=n)
    return tp, pred_count, true_count


def _divide(num, den):
    """num / den elementwise, 0.0 where den == 0 (sklearn's zero_division=0)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _weighted_mean(values, weights):
    total = weights.sum()
    return float((values * weights).sum() / total) if total > 0 else 0.0


def _score(kind, y_true, y_pred, average, labels, num_classes, pos_label):
    """Shared body of precision, recall and F1: each is a ratio of class counts."""
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    t, p = _prepare_labels(y_true, y_pred)
    labels = _resolve_labels(t, p, labels, num_classes)
    if average == "binary":
        present = np.union1d(t, p)
        if present.size > 2:
            raise ValueError(
                f"average='binary' needs at most two classes, got {present.size}: "
                f"{present.tolist()}; use average='macro', 'weighted', 'micro' or None"
            )
        if pos_label not in present and present.size == 2:
            raise ValueError(
                f"pos_label={pos_label!r} is not a label in the data: {present.tolist()}"
            )
        # As sklearn: binary scores pos_label alone (labels / num_classes were only checked).
        labels = np.asarray([pos_label])

    tp, pred_count, true_count = _counts(t, p, labels)
    if kind == "precision":
        num, den = tp, pred_count
    elif kind == "recall":
        num, den = tp, true_count
    else:  # f1 = 2 tp / (2 tp + fp + fn), and 2 tp + fp + fn = predicted + true counts
        num, den = 2 * tp, pred_count + true_count

    if average == "micro":
        return float(_divide(num.sum(), den.sum()))
    per_class = _divide(num, den)
    if average is None:
        return per_class
    if average == "binary":
        return float(per_class[0])
    if average == "macro":
        return float(per_class.mean())
    return _weighted_mean(per_class, true_count)


def accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose predicted label equals the true label.

    .. math:: \\text{accuracy} = \\frac{1}{N} \\sum_i [\\hat y_i = y_i]

    Args:
        y_true, y_pred: class labels, shape (N,) or (N, 1).

    Example::

        >>> accuracy([0, 1, 2, 2], [0, 2, 2, 2])
        0.75
    """
    t, p = _prepare_labels(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, *, labels=None, num_classes=None) -> np.ndarray:
    """Counts of (true, predicted) label pairs, as sklearn: rows are true, columns predicted.

    ``C[i, j]`` is the number of samples of class ``labels[i]`` predicted as
    ``labels[j]``; the diagonal holds the correct predictions.

    Args:
        y_true, y_pred: class labels, shape (N,) or (N, 1).
        labels: the classes, in row/column order; samples whose true or
            predicted label is not among them are left out. Default: every
            label seen in ``y_true`` or ``y_pred``, sorted.
        num_classes: shorthand for ``labels=range(num_classes)``, which keeps
            a class absent from both arrays; a label outside that range is an
            error.

    Returns:
        int64 array of shape (C, C).

    Example::

        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2])
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    t, p = _prepare_labels(y_true, y_pred)
    labels = _resolve_labels(t, p, labels, num_classes)
    n = len(labels)
    ti, pi = _index_of(t, labels), _index_of(p, labels)
    keep = (ti >= 0) & (pi >= 0)
    return np.bincount(ti[keep] * n + pi[keep], minlength=n * n).reshape(n, n).astype(np.int64)


_AVERAGE_DOC = """
    Args:
        y_true, y_pred: class labels, shape (N,) or (N, 1).
        average: how per-class scores become one number:

            - ``None``: no averaging, an array with one score per class;
            - ``'macro'`` (default): unweighted mean over classes;
            - ``'weighted'``: mean weighted by each class's support (its
              number of true samples);
            - ``'micro'``: computed from the counts summed over classes (for
              single-label multi-class data with every class, equals accuracy);
            - ``'binary'``: the score of class ``pos_label`` alone; the data
              must hold at most two classes.

            sklearn's default is ``'binary'``; ``'macro'`` is ours because
            most models here are multi-class.
        labels: the classes to score and, for ``average=None``, their order.
            Default: every label seen in ``y_true`` or ``y_pred``, sorted.
        num_classes: shorthand for ``labels=range(num_classes)``, so a class
            absent from both arrays still counts (as 0) in the average.
        pos_label: the positive class for ``average='binary'``.

    A class with a zero denominator scores 0.0 (sklearn's ``zero_division=0``).

    Returns:
        a float, or for ``average=None`` a float64 array of shape (C,).
"""


def precision(y_true, y_pred, *, average="macro", labels=None, num_classes=None, pos_label=1):
    """Of the samples predicted as a class, the fraction that truly are.

    .. math:: \\text{precision}_c = \\frac{TP_c}{TP_c + FP_c}
    {average}
    Example::

        >>> precision([0, 1, 1, 0], [0, 1, 0, 0], average=None)   # class 0: 2/3, class 1: 1/1
        array([0.66666667, 1.        ])
        >>> precision([0, 1, 1, 0], [0, 1, 0, 0], average="binary")
        1.0
    """
    return _score("precision", y_true, y_pred, average, labels, num_classes, pos_label)


def recall(y_true, y_pred, *, average="macro", labels=None, num_classes=None, pos_label=1):
    """Of the samples truly in a class, the fraction predicted as it.

    .. math:: \\text{recall}_c = \\frac{TP_c}{TP_c + FN_c}
    {average}
    Example::

        >>> recall([0, 1, 1, 0], [0, 1, 0, 0], average=None)   # class 0: 2/2, class 1: 1/2
        array([1. , 0.5])
        >>> recall([0, 1, 1, 0], [0, 1, 0, 0], average="macro")
        0.75
    """
    return _score("recall", y_true, y_pred, average, labels, num_classes, pos_label)


def f1(y_true, y_pred, *, average="macro", labels=None, num_classes=None, pos_label=1):
    """Harmonic mean of precision and recall.

    .. math::
        F1_c = \\frac{2 P_c R_c}{P_c + R_c} = \\frac{2\\,TP_c}{2\\,TP_c + FP_c + FN_c}

    ``'macro'`` averages the per-class F1 scores (it is not the F1 of the
    macro precision and recall), as sklearn does.
    {average}
    Example::

        >>> f1([0, 1, 1, 0], [0, 1, 0, 0], average="binary")   # 2*1 / (2*1 + 0 + 1)
        0.6666666666666666
    """
    return _score("f1", y_true, y_pred, average, labels, num_classes, pos_label)


for _fn in (precision, recall, f1):
    _fn.__doc__ = _fn.__doc__.replace("{average}", _AVERAGE_DOC)
del _fn


def _label_name(label):
    return str(label.item() if isinstance(label, np.generic) else label)


def classification_report(
    y_true, y_pred, class_names=None, *, labels=None, num_classes=None
) -> dict:
    """Accuracy, averaged and per-class scores, and the confusion matrix, in one flat dict.

    Every key is a string and every value a Python int, float, or list, so
    the dict goes straight to ``json.dumps``. Keys:

    - ``accuracy``;
    - ``precision_macro``, ``recall_macro``, ``f1_macro``;
    - ``precision_weighted``, ``recall_weighted``, ``f1_weighted``;
    - ``precision/<name>``, ``recall/<name>``, ``f1/<name>``, ``support/<name>``
      for each class (support: its number of true samples);
    - ``support``: the number of samples;
    - ``class_names``: the class names, in confusion-matrix order;
    - ``confusion_matrix``: nested list, rows true and columns predicted.

    Args:
        y_true, y_pred: class labels, shape (N,) or (N, 1).
        class_names: a name per class. Without ``labels`` or ``num_classes``
            the classes are ``0 .. len(class_names) - 1``, so ``class_names[i]``
            names label ``i``. Default: the labels themselves, as strings.
        labels, num_classes: the classes to report, as in :func:`precision`.

    Example::

        >>> report = classification_report([0, 1, 1, 0], [0, 1, 0, 0], class_names=["cat", "dog"])
        >>> report["accuracy"], report["recall/dog"], report["confusion_matrix"]
        (0.75, 0.5, [[2, 0], [1, 1]])
    """
    t, p = _prepare_labels(y_true, y_pred)
    if class_names is not None and labels is None and num_classes is None:
        num_classes = len(class_names)
    labels = _resolve_labels(t, p, labels, num_classes)
    if class_names is None:
        names = [_label_name(label) for label in labels]
    else:
        names = [str(name) for name in class_names]
        if len(names) != len(labels):
            raise ValueError(f"got {len(names)} class_names for {len(labels)} classes")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct, got {names}")

    tp, pred_count, true_count = _counts(t, p, labels)
    per_class = {
        "precision": _divide(tp, pred_count),
        "recall": _divide(tp, true_count),
        "f1": _divide(2 * tp, pred_count + true_count),
    }
    report = {"accuracy": float(np.mean(t == p))}
    for metric, scores in per_class.items():
        report[f"{metric}_macro"] = float(scores.mean())
    for metric, scores in per_class.items():
        report[f"{metric}_weighted"] = _weighted_mean(scores, true_count)
    for metric, scores in per_class.items():
        for name, score in zip(names, scores):
            report[f"{metric}/{name}"] = float(score)
    for name, count in zip(names, true_count):
        report[f"support/{name}"] = int(count)
    report["support"] = len(t)
    report["class_names"] = names
    report["confusion_matrix"] = confusion_matrix(t, p, labels=labels).tolist()
    return report


# ---------------------------------------------------------------- regression


def _prepare_values(y_true, y_pred):
    """float64 arrays of shape (N, k): (N,) and (N, 1) both become (N, 1)."""
    t, p = _as_array(y_true), _as_array(y_pred)
    for name, y in (("y_true", t), ("y_pred", p)):
        if y.ndim not in (1, 2):
            raise ValueError(f"{name} must have shape (N,) or (N, k), got shape {y.shape}")
    _check_same_length(t, p)
    t2 = t.reshape(len(t), -1).astype(np.float64)
    p2 = p.reshape(len(p), -1).astype(np.float64)
    if t2.shape != p2.shape:
        raise ValueError(
            f"y_true and y_pred do not match: y_true has shape {t.shape}, "
            f"y_pred has shape {p.shape}"
        )
    return t2, p2


def mse(y_true, y_pred) -> float:
    """Mean squared error.

    .. math:: \\text{MSE} = \\frac{1}{N} \\sum_i (y_i - \\hat y_i)^2

    Args:
        y_true, y_pred: shape (N,) or (N, 1), interchangeably; or (N, k) for k
            outputs, averaged uniformly over outputs (sklearn's
            ``multioutput='uniform_average'``).

    Example::

        >>> mse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])   # (0 + 0 + 4) / 3
        1.3333333333333333
    """
    t, p = _prepare_values(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the units of ``y``.

    .. math:: \\text{RMSE} = \\sqrt{\\frac{1}{N} \\sum_i (y_i - \\hat y_i)^2}

    Args:
        y_true, y_pred: as :func:`mse`. For k outputs, the mean of the k
            per-output RMSEs (as sklearn's ``root_mean_squared_error``).

    Example::

        >>> rmse([0.0, 0.0], [3.0, -3.0])   # sqrt((9 + 9) / 2)
        3.0
    """
    t, p = _prepare_values(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((t - p) ** 2, axis=0))))


def mae(y_true, y_pred) -> float:
    """Mean absolute error.

    .. math:: \\text{MAE} = \\frac{1}{N} \\sum_i |y_i - \\hat y_i|

    Args:
        y_true, y_pred: as :func:`mse`.

    Example::

        >>> mae([1.0, 2.0, 3.0], [2.0, 2.0, 1.0])   # (1 + 0 + 2) / 3
        1.0
    """
    t, p = _prepare_values(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination, R², as sklearn's ``r2_score``.

    .. math::
        R^2 = 1 - \\frac{\\sum_i (y_i - \\hat y_i)^2}{\\sum_i (y_i - \\bar y)^2}

    1.0 is a perfect fit, 0.0 is as good as predicting the mean, and it can
    be negative. When ``y_true`` is constant the fraction is undefined:
    perfect predictions score 1.0 and any others 0.0 (sklearn's
    ``force_finite=True``); a single sample counts as constant.

    Args:
        y_true, y_pred: as :func:`mse`; for k outputs, the mean of the k
            per-output scores.

    Example::

        >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])   # 1 - 1 / ((1 - 2)**2 + 0 + (3 - 2)**2)
        0.5
    """
    t, p = _prepare_values(y_true, y_pred)
    residual = np.sum((t - p) ** 2, axis=0)
    total = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    # Where total == 0: 1.0 if residual == 0 too, else 0.0.
    scores = np.where(residual == 0, 1.0, 0.0)
    defined = total != 0
    scores[defined] = 1.0 - residual[defined] / total[defined]
    return float(scores.mean())


def regression_report(y_true, y_pred) -> dict:
    """``mse``, ``rmse``, ``mae`` and ``r2`` as a dict of Python floats.

    Example::

        >>> regression_report([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
        {'mse': 0.3333333333333333, 'rmse': 0.5773502691896257, 'mae': 0.3333333333333333, 'r2': 0.5}
    """
    return {
        "mse": mse(y_true, y_pred),
        "rmse": rmse(y_true, y_pred),
        "mae": mae(y_true, y_pred),
        "r2": r2(y_true, y_pred),
    }
