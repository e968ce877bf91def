"""Deterministic train/validation/test splits and k-fold indices.

Splits are index arrays, so every dataset stays array-backed and is cut by
fancy indexing. Classification splits are stratified: each class keeps its
share in every split.
"""
from __future__ import annotations

import numpy as np


def _check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"split fractions must be non-negative and sum to 1, got {list(fractions)}"
        )
    return fractions


def _cut(indices, fractions):
    """Cut one shuffled index array into consecutive parts of the given fractions."""
    n = len(indices)
    bounds = np.round(np.cumsum(fractions) * n).astype(int)
    bounds[-1] = n
    return np.split(indices, bounds[:-1])


def split_indices(n, fractions=(0.8, 0.1, 0.1), seed=0, stratify=None):
    """Shuffle ``range(n)`` with ``seed`` and cut it into parts of ``fractions``.

    Args:
        n: number of samples.
        fractions: one fraction per split, summing to 1 (e.g. train, val, test).
        seed: the same seed always gives the same split.
        stratify: optional labels (length n); each class is cut separately so
            every split keeps the class proportions.

    Returns:
        A list of sorted int64 index arrays, one per fraction.

    Example::

        >>> train, val, test = split_indices(10, (0.6, 0.2, 0.2), seed=0)
        >>> len(train), len(val), len(test)
        (6, 2, 2)
    """
    fractions = _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    if stratify is None:
        parts = _cut(rng.permutation(n), fractions)
    else:
        labels = np.asarray(stratify)
        if len(labels) != n:
            raise ValueError(f"stratify has {len(labels)} labels for {n} samples")
        # Give each sample its fractional rank within its own class, then cut the
        # samples ordered by that rank: every split gets each class's share, and
        # the split sizes are exactly those of the unstratified cut.
        order = rng.permutation(n)
        rank = np.empty(n)
        for cls in np.unique(labels):
            members = order[labels[order] == cls]
            rank[members] = (np.arange(len(members)) + 0.5) / len(members)
        parts = _cut(order[np.argsort(rank[order], kind="stable")], fractions)
    return [np.sort(p).astype(np.int64) for p in parts]


def kfold_indices(n, k=5, seed=0, stratify=None):
    """Indices for k-fold cross-validation: a list of ``(train_idx, val_idx)`` pairs.

    Every sample is in exactly one validation fold; with ``stratify`` each fold
    keeps the class proportions.
    """
    if not 2 <= k <= n:
        raise ValueError(f"k must be between 2 and the number of samples ({n}), got {k}")
    rng = np.random.default_rng(seed)
    folds = [[] for _ in range(k)]
    if stratify is None:
        groups = [rng.permutation(n)]
    else:
        labels = np.asarray(stratify)
        groups = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    offset = 0
    for members in groups:
        # Deal members round-robin, continuing where the last class stopped, so
        # folds differ in size by at most one.
        for i, idx in enumerate(members):
            folds[(offset + i) % k].append(idx)
        offset += len(members)
    folds = [np.sort(np.asarray(f, dtype=np.int64)) for f in folds]
    everything = np.arange(n)
    return [(np.setdiff1d(everything, f), f) for f in folds]
