"""Table lookups: rows of a weight picked by integer indices, and their gradient.

``Embedding`` is ``weight[indices]``; its backward adds each output row's
gradient into the row it came from (``scatter_add_rows``). ``EmbeddingBag``
reduces the rows of each bag (sum, mean or max) in the same node, a deliberate
primitive rather than a composition: masking out padding and dividing by each
bag's own count would otherwise keep a second (N, L, D) array in the graph,
and ``max`` needs its argmax in backward.
"""
from __future__ import annotations

import numpy as np

from .autograd import Function

#: Occurrences per index handled by plain fancy-index adds in scatter_add_rows;
#: the rest of a frequent index's rows are summed by one np.add.reduceat.
_LEVELS = 4


def check_indices(indices: np.ndarray, num_embeddings: int, what: str = "indices") -> None:
    """Raise unless ``indices`` is an integer array with every value in [0, num_embeddings)."""
    if indices.dtype.kind not in "iu":
        raise RuntimeError(
            f"Expected tensor for argument #1 '{what}' to have an integer dtype "
            f"(int64 or int32, as PyTorch's Long or Int), but got {indices.dtype}: "
            "embedding indices are row numbers; cast them with .long() if they are "
            "whole numbers stored as floats"
        )
    if indices.size == 0:
        return
    low, high = indices.min(), indices.max()
    if low < 0 or high >= num_embeddings:
        bad = int(low) if low < 0 else int(high)
        raise IndexError(
            f"index {bad} is out of range in self: the table has {num_embeddings} rows, "
            f"so indices must be in [0, {num_embeddings - 1}]"
        )


def renorm_rows_(weight: np.ndarray, indices: np.ndarray, max_norm: float, norm_type: float) -> None:
    """Scale, in place, each row of ``weight`` that ``indices`` use and whose
    ``norm_type``-norm exceeds ``max_norm`` down to norm ``max_norm``
    (``torch.embedding_renorm_``, with its 1e-7 guard)."""
    rows = np.unique(indices)
    norms = np.linalg.norm(weight[rows].astype(np.float64), ord=norm_type, axis=1)
    over = norms > max_norm
    if over.any():
        scale = max_norm / (norms[over] + 1e-7)
        weight[rows[over]] *= scale[:, None].astype(weight.dtype)


def scatter_add_rows(index: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """A (num_rows, D) array whose row r is the sum of ``values[i]`` over ``index[i] == r``.

    ``np.add.at`` does this, but one element at a time: slow before NumPy 1.25
    and still 2x slower after on a (16384, 64) gradient into a 25,000-row table.
    Here the k-th occurrences of every index are distinct, so each of the first
    ``_LEVELS`` of them is one vectorised ``out[idx] += rows``; the remaining
    occurrences (of frequent indices only) are contiguous once sorted and are
    summed by one ``np.add.reduceat``.
    """
    out = np.zeros((num_rows, values.shape[1]), dtype=values.dtype)
    if index.size == 0:
        return out
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    counts = np.diff(np.r_[starts, len(index)])
    rank = np.arange(len(index)) - np.repeat(starts, counts)
    most = int(counts.max())
    for k in range(min(_LEVELS, most)):
        pick = order[rank == k]
        out[index[pick]] += values[pick]
    if most > _LEVELS:
        rest = order[rank >= _LEVELS]
        rest_index = index[rest]
        first = np.flatnonzero(np.r_[True, rest_index[1:] != rest_index[:-1]])
        out[rest_index[first]] += np.add.reduceat(values[rest], first, axis=0)
    return out


class Embedding(Function):
    """``weight[indices]``: (V, D) and integer (*) give (*, D).

    The gradient of row ``padding_idx`` is zero; ``scale_grad_by_freq`` divides
    each occurrence's gradient by how often its index appears in ``indices``.
    """

    fresh_grads = True

    def forward(self, weight, indices=None, padding_idx=None, scale_grad_by_freq=False):
        self.num_rows = weight.shape[0]
        self.indices, self.padding_idx = indices, padding_idx
        self.scale_grad_by_freq = scale_grad_by_freq
        return weight[indices]

    def backward(self, g):
        index = self.indices.reshape(-1)
        rows = g.reshape(len(index), -1)
        if self.scale_grad_by_freq:
            counts = np.bincount(index, minlength=self.num_rows)
            rows = rows / counts[index][:, None].astype(rows.dtype)
        grad = scatter_add_rows(index, rows, self.num_rows)
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return (grad,)


class EmbeddingBag(Function):
    """Each row of integer ``indices`` (N, L) is a bag: reduce its rows of
    ``weight`` (V, D) to one (D,) vector by ``mode`` 'sum', 'mean' or 'max'.

    Entries where ``mask`` (N, L) is False (padding) take no part; a bag with no
    entries gives zeros in every mode, and its gradient goes nowhere.
    """

    fresh_grads = True

    def forward(self, weight, indices=None, mask=None, mode="mean"):
        n, length = indices.shape
        self.num_rows, self.indices, self.mask, self.mode = weight.shape[0], indices, mask, mode
        rows = weight[indices]                                   # (N, L, D)
        if mode == "max":
            masked = np.where(mask[:, :, None], rows, -np.inf)
            self.argmax = masked.argmax(axis=1)                  # (N, D)
            out = np.take_along_axis(rows, self.argmax[:, None, :], axis=1)[:, 0]
            self.empty = ~mask.any(axis=1)
            out[self.empty] = 0
            return out
        weights = mask.astype(weight.dtype)
        if mode == "mean":
            counts = weights.sum(axis=1, keepdims=True)
            weights /= np.maximum(counts, 1)
        self.weights = weights                                   # (N, L)
        # A batched (1, L) @ (L, D) per bag: one pass, no (N, L, D) temporary.
        return np.matmul(weights[:, None, :], rows)[:, 0]

    def backward(self, g):
        index = self.indices
        if self.mode == "max":
            d = g.shape[1]
            g = np.where(self.empty[:, None], 0, g)
            winners = np.take_along_axis(index, self.argmax, axis=1)   # (N, D) rows that won
            flat = (winners * d + np.arange(d)).reshape(-1)
            grad = np.bincount(flat, weights=g.reshape(-1), minlength=self.num_rows * d)
            return (grad.reshape(self.num_rows, d).astype(g.dtype),)
        rows = self.weights[:, :, None] * g[:, None, :]                # (N, L, D)
        keep = self.mask.reshape(-1)
        return (scatter_add_rows(index.reshape(-1)[keep], rows.reshape(-1, g.shape[1])[keep],
                                 self.num_rows),)
