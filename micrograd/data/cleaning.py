"""Cleaning and feature selection on plain arrays: duplicates, outliers, scores.

NumPy only, no notion of files or configs: a data kind calls these on what it
has read (``tabular.load_tabular`` does, on the train split for everything
that is fitted) and stores what they return in its pipeline.

- ``find_duplicates``: exact duplicate rows (features and label equal) and
  conflicts (equal features, different labels).
- ``outlier_bounds``: the (low, high) bounds of one column by a rule - 'iqr'
  (Tukey's fences), 'zscore' (mean +- factor std) or 'mad' (median +- factor
  * 1.4826 * median absolute deviation, the robust z-score of Iglewicz and
  Hoaglin); values outside are outliers, to clip or drop.
- ``robust_center_scale``: median and interquartile range (``scaling: robust``).
- ``select_features``: a variance threshold and the k best features by a score
  against the target (``feature_scores``: 'correlation' or 'mutual_info' for
  regression, 'anova_f' or 'chi2' for classification).

Example::

    >>> import numpy as np
    >>> outlier_bounds(np.array([1.0, 2, 3, 4, 100]), "iqr")
    (-1.0, 7.0)
"""
from __future__ import annotations

import numpy as np

OUTLIER_METHODS = ("iqr", "zscore", "mad")
#: The usual factor of each rule: Tukey's 1.5 IQR, 3 standard deviations, and a
#: robust z-score of 3.5 (Iglewicz and Hoaglin).
DEFAULT_FACTORS = {"iqr": 1.5, "zscore": 3.0, "mad": 3.5}
SCORES = ("auto", "correlation", "mutual_info", "anova_f", "chi2")
REGRESSION_SCORES = ("correlation", "mutual_info")
CLASSIFICATION_SCORES = ("anova_f", "chi2", "mutual_info")
_MAD_TO_STD = 1.4826  # MAD * 1.4826 estimates the std of normal data
_MI_BINS = 10  # quantile bins for a continuous feature or target in mutual_info


# ----------------------------------------------------------------- duplicates


def row_groups(columns) -> np.ndarray:
    """One int64 code per row; rows share a code exactly when they are equal in every column.

    ``columns`` is a sequence of equal-length 1-D arrays (text or numbers); integer
    columns are taken as codes already (equal exactly when their values are).
    Which code a group gets is unspecified.
    """
    codes = [_as_codes(np.asarray(c)) for c in columns]
    if not codes:
        raise ValueError("row_groups needs at least one column")
    small = all(c.size == 0 or (c.min() >= -2**31 and c.max() < 2**31) for c in codes)
    table = np.stack(codes, axis=1, dtype=np.int32 if small else np.int64)
    # Each row's bytes as one opaque value: np.unique then sorts whole rows with
    # memcmp instead of comparing column by column as axis=0 does.
    rows = table.view(np.dtype((np.void, table.itemsize * table.shape[1]))).reshape(-1)
    return np.unique(rows, return_inverse=True)[1].reshape(-1).astype(np.int64)


def _as_codes(column):
    """Integer codes of a column: integers as they are, anything else by np.unique."""
    if np.issubdtype(column.dtype, np.integer):
        return column.reshape(-1)
    if column.dtype == bool:
        return column.astype(np.int64).reshape(-1)
    return np.unique(column, return_inverse=True)[1].reshape(-1).astype(np.int64)


def find_duplicates(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate mask, conflict mask) over the rows.

    ``duplicate`` marks every repeat of an earlier row with the same features
    and the same label (the first occurrence is not marked); ``conflict`` marks
    every row whose features also occur with a different label (all of them,
    repeats included: the data cannot say which label is right).

    Example::

        >>> f = [np.array(["a", "a", "a", "b"])]
        >>> dup, conflict = find_duplicates(f, np.array(["1", "1", "2", "1"]))
        >>> dup.tolist(), conflict.tolist()
        ([False, True, False, False], [True, True, True, False])
    """
    labels = np.asarray(labels)
    feature_group = row_groups(features)
    full_group = row_groups([feature_group, labels])
    first = np.zeros(len(labels), bool)
    first[np.unique(full_group, return_index=True)[1]] = True
    labels_per_group = np.bincount(feature_group[first], minlength=feature_group.max() + 1)
    return ~first, labels_per_group[feature_group] > 1


# ------------------------------------------------------------------- outliers


def outlier_bounds(values, method="iqr", factor=None) -> tuple[float, float]:
    """(low, high) outside which a value of this column is an outlier.

    NaN (missing) values are ignored. A column whose spread is 0 by the rule
    (an IQR or MAD of 0, as in a column that is mostly zeros, or a constant
    column) gets no bounds, ``(-inf, inf)``: the rule cannot tell its outliers
    from the rest.

    Args:
        values: 1-D numbers (the train split's).
        method: 'iqr' (``[q1 - f*IQR, q3 + f*IQR]``, f = 1.5), 'zscore'
            (``mean +- f*std``, f = 3) or 'mad' (``median +- f*1.4826*MAD``,
            f = 3.5).
        factor: f; ``None`` takes the method's default (``DEFAULT_FACTORS``).
    """
    if method not in OUTLIER_METHODS:
        raise ValueError(f"Invalid outlier method: {method!r} (expected one of "
                         f"{', '.join(OUTLIER_METHODS)})")
    factor = DEFAULT_FACTORS[method] if factor is None else float(factor)
    if not factor > 0:
        raise ValueError(f"Invalid outlier factor: {factor!r} (must be above 0)")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return -np.inf, np.inf
    if method == "iqr":
        q1, q3 = np.percentile(x, [25, 75])
        low, high, spread = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1), q3 - q1
    elif method == "zscore":
        mean, spread = x.mean(), x.std()
        low, high = mean - factor * spread, mean + factor * spread
    else:
        median = np.median(x)
        spread = _MAD_TO_STD * np.median(np.abs(x - median))
        low, high = median - factor * spread, median + factor * spread
    if not spread > 0:
        return -np.inf, np.inf
    return float(low), float(high)


def outside(values, low, high) -> np.ndarray:
    """Mask of values below ``low`` or above ``high`` (NaN is never outside)."""
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (x < low) | (x > high)


# -------------------------------------------------------------------- scaling


def robust_center_scale(values) -> tuple[float, float]:
    """(median, interquartile range) of the non-NaN values, for ``scaling: robust``.

    An IQR of 0 (a column that is mostly one value) falls back to the standard
    deviation, then to 1 for a constant column: dividing by 1 would leave such a
    column in its raw units.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return 0.0, 1.0
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    scale = q3 - q1
    if not scale > 0:
        scale = x.std()
    return float(median), float(scale) if scale > 0 else 1.0


# ------------------------------------------------------------------ selection


def feature_scores(x, y, score, task) -> np.ndarray:
    """One score per column of ``x`` (N, F) against ``y``; higher is more useful.

    - 'correlation' (regression): ``|Pearson r|`` with the target.
    - 'mutual_info': a plug-in estimate in nats on binned values (a feature
      with at most 10 distinct values keeps them, as a one-hot column does;
      others, and a regression target, are cut into 10 quantile bins).
    - 'anova_f' (classification): the one-way ANOVA F statistic of the
      feature across classes.
    - 'chi2' (classification): the chi-squared statistic of the feature's sum
      per class against its expectation, on the feature shifted to be
      non-negative (``x - min(x)``), as scikit-learn's ``chi2`` on counts.
    - 'auto': correlation for regression, anova_f for classification.

    A constant feature scores 0.
    """
    if score not in SCORES:
        raise ValueError(f"Invalid score: {score!r} (expected one of {', '.join(SCORES)})")
    if score == "auto":
        score = "correlation" if task == "regression" else "anova_f"
    allowed = REGRESSION_SCORES if task == "regression" else CLASSIFICATION_SCORES
    if score not in allowed:
        raise ValueError(f"score {score!r} does not apply to {task}; use one of "
                         f"{', '.join(allowed)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if score == "correlation":
        scores = _abs_correlation(x, y.astype(np.float64))
    elif score == "mutual_info":
        y_bins = _bins(y.astype(np.float64)) if task == "regression" else _codes(y)
        scores = np.array([_mutual_info(_bins(x[:, j]), y_bins) for j in range(x.shape[1])])
    elif score == "anova_f":
        scores = _anova_f(x, _codes(y))
    else:
        scores = _chi2(x - x.min(axis=0, initial=np.inf), _codes(y))
    # a feature that separates the classes perfectly has an infinite F: the best
    return np.nan_to_num(scores, nan=0.0, posinf=np.finfo(np.float64).max, neginf=0.0)


def select_features(x, y, names, *, task, variance_threshold=None, k=None, score="auto"):
    """Which columns of ``x`` (N, F) to keep: ``(kept indices, {removed name: why})``.

    First every feature whose variance on ``x`` is at most ``variance_threshold``
    goes (a constant column, a one-hot indicator of a rare category: its
    variance is p(1-p)); then, when ``k`` is given, the ``k`` best of the rest
    by ``feature_scores`` stay (ties go to the earlier feature). Kept indices
    are in their original order. Each feature is judged alone, a one-hot
    indicator too: a categorical column may keep some of its categories.
    """
    x = np.asarray(x, dtype=np.float64)
    names = list(names)
    keep = np.arange(x.shape[1])
    removed: dict[str, str] = {}
    if variance_threshold is not None:
        variance = x.var(axis=0) if len(x) else np.zeros(x.shape[1])
        low = variance <= variance_threshold
        for j in np.flatnonzero(low):
            removed[names[j]] = f"variance {variance[j]:.4g} <= {variance_threshold:g}"
        keep = keep[~low]
    if k is not None and k < len(keep):
        scores = feature_scores(x[:, keep], y, score, task)
        order = np.argsort(-scores, kind="stable")
        label = score if score != "auto" else ("correlation" if task == "regression"
                                               else "anova_f")
        cutoff = scores[order[k - 1]]
        for j in order[k:]:
            removed[names[keep[j]]] = (f"{label} {scores[j]:.4g}, not in the {k} best "
                                       f"(lowest kept {cutoff:.4g})")
        keep = np.sort(keep[order[:k]])
    return keep.astype(np.int64), removed


def _codes(y):
    return np.unique(y, return_inverse=True)[1].reshape(-1)


def _abs_correlation(x, y):
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    denominator = np.sqrt((xc ** 2).sum(axis=0) * (yc ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.abs(xc.T @ yc) / denominator, 0.0)


def _bins(values):
    """Discrete codes: the distinct values when there are few, else quantile bins."""
    distinct = np.unique(values)
    if len(distinct) <= _MI_BINS:
        return np.searchsorted(distinct, values)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, _MI_BINS + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def _mutual_info(a, b):
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1.0)
    joint /= joint.sum()
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())


def _anova_f(x, classes):
    n, n_classes = len(classes), classes.max() + 1
    if n_classes < 2 or n <= n_classes:
        return np.zeros(x.shape[1])
    counts = np.bincount(classes, minlength=n_classes).astype(np.float64)
    onehot = np.eye(n_classes)[classes]
    means = (onehot.T @ x) / np.maximum(counts, 1)[:, None]
    between = (counts[:, None] * (means - x.mean(axis=0)) ** 2).sum(axis=0)
    within = ((x - means[classes]) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (between / (n_classes - 1)) / (within / (n - n_classes))
    return np.where(within > 0, f, np.where(between > 0, np.inf, 0.0))


def _chi2(x, classes):
    onehot = np.eye(classes.max() + 1)[classes]
    observed = onehot.T @ x
    expected = onehot.mean(axis=0)[:, None] * x.sum(axis=0)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(expected > 0, (observed - expected) ** 2 / expected, 0.0)
    return terms.sum(axis=0)
