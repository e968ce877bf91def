"""Deterministic train/validation/test splits and k-fold indices.

Splits are index arrays, so every dataset stays array-backed and is cut by
fancy indexing. Classification splits are stratified: each class keeps its
share in every split.

Cross-validation goes through the same call: :class:`Fractions` (what
``SplitConfig.fractions()`` returns to every data kind) may name one fold, and
``split_indices`` then keeps the test split of the plain run and cuts the
train+val pool into folds, fold ``fold`` validating and the others training.
Every kind fits its preprocessing on the train part it gets, so a fold's
validation rows never reach its scaler, vocabulary or feature selection.
"""
from __future__ import annotations

import numpy as np

from .pipeline import PipelineError


def _check_fractions(fractions):
    fractions = tuple(float(f) for f in fractions)
    if any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"split fractions must be non-negative and sum to 1, got {list(fractions)}"
        )
    return fractions


class Fractions(tuple):
    """Split fractions, optionally naming one cross-validation fold.

    A plain tuple to every kind that passes it on (``Fractions((0.8, 0.1, 0.1))
    == (0.8, 0.1, 0.1)``); ``split_indices`` reads ``folds``, ``fold`` and
    ``repeat`` from it. ``folds=None`` is an ordinary split.
    """

    def __new__(cls, fractions, folds=None, fold=None, repeat=0):
        self = super().__new__(cls, fractions)
        self.folds, self.fold, self.repeat = folds, fold, repeat
        return self

    def __getnewargs__(self):
        return tuple(self), self.folds, self.fold, self.repeat

    def __repr__(self):
        plain = repr(tuple(self))
        if self.folds is None:
            return plain
        return f"{plain} fold {self.fold} of {self.folds} (repeat {self.repeat})"


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
            A :class:`Fractions` naming a fold (``folds`` K, ``fold`` i,
            ``repeat`` r) gives a cross-validation split instead: the test part
            is the plain split's, and the rest (the train+val pool) is cut into
            K folds (stratified like the split, seeded by ``seed + r``); fold i
            is the validation part, the other K - 1 folds the train part.
        seed: the same seed always gives the same split.
        stratify: optional labels (length n); each class is cut separately so
            every split keeps the class proportions.

    Returns:
        A list of sorted int64 index arrays, one per fraction.

    Example::

        >>> train, val, test = split_indices(10, (0.6, 0.2, 0.2), seed=0)
        >>> len(train), len(val), len(test)
        (6, 2, 2)
        >>> train, val, test = split_indices(10, Fractions((0.6, 0.2, 0.2), folds=4, fold=0))
        >>> len(train), len(val), len(test)
        (6, 2, 2)
    """
    folds = getattr(fractions, "folds", None)
    parts = _split(n, _check_fractions(fractions), seed, stratify)
    if folds is None:
        return parts
    return _fold_split(parts, folds, fractions.fold, getattr(fractions, "repeat", 0), seed,
                       stratify)


def _fold_split(parts, folds, fold, repeat, seed, stratify):
    """[train, val, test] of one fold: the plain split's last part (when there are three)
    stays the test part; the others are pooled and cut into ``folds`` folds."""
    if len(parts) not in (2, 3):
        raise ValueError(f"cross-validation needs train, val (and test) fractions, got "
                         f"{len(parts)} fractions")
    test = parts[2] if len(parts) == 3 else np.empty(0, np.int64)
    pool = np.sort(np.concatenate(parts[:2]))
    if fold is None or not 0 <= fold < folds:
        raise ValueError(f"fold must be between 0 and {folds - 1}, got {fold}")
    if not 2 <= folds <= len(pool):
        raise PipelineError(f"{folds} folds need at least {folds} samples outside the test "
                            f"split; there are {len(pool)}")
    labels = None if stratify is None else np.asarray(stratify)[pool]
    train, val = kfold_indices(len(pool), folds, seed=seed + repeat, stratify=labels)[fold]
    return [pool[train], pool[val], test]


def _split(n, fractions, seed, stratify):
    """The plain seeded (stratified) split of ``range(n)`` into ``fractions``."""
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
