"""Mostly-zero matrices kept as their nonzero cells: compressed sparse rows (CSR).

A bag-of-words or TF-IDF matrix holds one row per sentence and one column per
vocabulary word, but a sentence uses a few dozen of tens of thousands of words:
100,000 sentences over 25,000 words are 10 GB dense in float32 and about 25 MB
as CSR. :class:`CSRMatrix` is three plain NumPy arrays, the layout of
``scipy.sparse.csr_matrix`` (no SciPy needed): row ``i``'s nonzero values are
``data[indptr[i]:indptr[i + 1]]``, in the columns ``indices[indptr[i]:indptr[i + 1]]``.

It answers what the rest of micrograd asks of a split's inputs - ``len``,
``shape``, ``dtype``, rows by slice, index array or mask - and the
:class:`~micrograd.data.dataloader.DataLoader` and ``inference.predict_outputs``
densify one batch at a time (:func:`densify`), so the model never sees it.
``np.asarray(m)`` gives the dense matrix (for tests and small data).
"""
from __future__ import annotations

import operator

import numpy as np


class CSRMatrix:
    """A 2-D float matrix stored as compressed sparse rows.

    Args:
        data: the nonzero values, row by row (``nnz`` values; their dtype is the
            matrix's: float32 for text vectors).
        indices: int64 column of each value, ascending within a row.
        indptr: int64 ``(rows + 1,)``: row ``i`` is ``data[indptr[i]:indptr[i + 1]]``.
        shape: ``(rows, columns)``.

    Indexing by rows gives a ``CSRMatrix`` (a slice, an int array, a bool mask)
    or a dense 1-D row (an int); ``toarray()`` densifies.

    Example::

        >>> m = CSRMatrix.from_cells([0, 1, 1], [2, 0, 2], [5.0, 1.0, 2.0], (2, 3))
        >>> m.toarray().tolist()
        [[0.0, 0.0, 5.0], [1.0, 0.0, 2.0]]
        >>> m[[1]].toarray().tolist(), m.nnz
        ([[1.0, 0.0, 2.0]], 3)
    """

    ndim = 2

    def __init__(self, data, indices, indptr, shape):
        self.data = np.asarray(data)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.shape = (int(shape[0]), int(shape[1]))
        if self.indptr.shape != (self.shape[0] + 1,) or self.data.shape != self.indices.shape:
            raise ValueError(
                f"inconsistent CSR arrays: indptr {self.indptr.shape} for {self.shape[0]} rows, "
                f"data {self.data.shape}, indices {self.indices.shape}"
            )

    @classmethod
    def from_cells(cls, rows, cols, values, shape, dtype=np.float32) -> "CSRMatrix":
        """From (row, column, value) cells; they must be sorted by row then column
        and unique (as ``np.unique`` of ``row * columns + column`` gives them)."""
        rows = np.asarray(rows, dtype=np.int64)
        indptr = np.zeros(int(shape[0]) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=int(shape[0])), out=indptr[1:])
        return cls(np.asarray(values, dtype=dtype), cols, indptr, shape)

    @classmethod
    def from_dense(cls, array) -> "CSRMatrix":
        """The nonzero cells of a dense 2-D array, keeping its dtype."""
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(f"CSRMatrix needs a 2-D array, got shape {array.shape}")
        rows, cols = np.nonzero(array)
        return cls.from_cells(rows, cols, array[rows, cols], array.shape, dtype=array.dtype)

    # ------------------------------------------------------------ array-like

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def nnz(self) -> int:
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, tuple):
            # (rows, columns): the rows densified, then the columns picked.
            rows, *rest = index
            picked = self[rows]
            dense = picked.toarray() if isinstance(picked, CSRMatrix) else picked
            return dense[(slice(None), *rest)] if dense.ndim == 2 else dense[tuple(rest)]
        if isinstance(index, slice):
            start, stop, step = index.indices(self.shape[0])
            if step == 1:
                stop = max(start, stop)
                lo, hi = self.indptr[start], self.indptr[stop]
                return CSRMatrix(self.data[lo:hi], self.indices[lo:hi],
                                 self.indptr[start:stop + 1] - lo, (stop - start, self.shape[1]))
            return self.take(np.arange(start, stop, step))
        if isinstance(index, (int, np.integer)):
            i = operator.index(index)
            if not -self.shape[0] <= i < self.shape[0]:
                raise IndexError(f"row {i} is out of range for {self.shape[0]} rows")
            return self.take(np.array([i]))._dense()[0]
        index = np.asarray(index)
        if index.dtype == bool:
            if index.shape != (self.shape[0],):
                raise IndexError(f"boolean index of shape {index.shape} for {self.shape[0]} rows")
            index = np.flatnonzero(index)
        return self.take(index)

    def take(self, rows) -> "CSRMatrix":
        """The rows ``rows`` (int array, negatives count from the end), in that order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = self.shape[0]
        if rows.size and (rows.min() < -n or rows.max() >= n):
            raise IndexError(f"row index out of range for {n} rows")
        rows = np.where(rows < 0, rows + n, rows)
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # position k of the new arrays reads old position starts[row] + (k - indptr[row])
        gather = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return CSRMatrix(self.data[gather], self.indices[gather], indptr,
                         (len(rows), self.shape[1]))

    def toarray(self) -> np.ndarray:
        """The dense ``shape`` array, in the values' dtype."""
        return self._dense()

    def _dense(self):
        out = np.zeros(self.shape, dtype=self.dtype)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def __array__(self, dtype=None, copy=None):
        dense = self._dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def sum(self, axis=None):
        """The sum of all values, or per column (``axis=0``) or per row (``axis=1``),
        accumulated in float64 like a float32 ``ndarray.sum`` would not be:
        exact for counts."""
        if axis is None:
            return self.data.sum(dtype=np.float64)
        if axis in (0, -2):
            return np.bincount(self.indices, weights=self.data, minlength=self.shape[1])
        if axis in (1, -1):
            rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
            return np.bincount(rows, weights=self.data, minlength=self.shape[0])
        raise ValueError(f"axis {axis!r} is out of range for a 2-D matrix")

    def __repr__(self):
        return f"CSRMatrix(shape={self.shape}, nnz={self.nnz}, dtype={self.dtype})"


def densify(batch):
    """A batch as a dense array: a :class:`CSRMatrix` densified, anything else as is."""
    return batch.toarray() if isinstance(batch, CSRMatrix) else batch
