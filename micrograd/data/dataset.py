"""Datasets: anything with ``__len__`` and ``__getitem__``, as in PyTorch.

A dataset may also offer the batch protocol, ``__getitems__(indices)``: given a
1-D int64 array of indices it returns the whole batch at once, a tuple of
arrays (or one array) whose first dimension is ``len(indices)``. Array-backed
datasets implement it with one fancy index per array, so the
:class:`~micrograd.data.dataloader.DataLoader` never loops over samples in
Python for them. A ``__getitems__`` that returns a ``list`` is read as PyTorch
reads it: a list of samples, still to be collated.
"""
from __future__ import annotations

import abc
import math
import operator
from collections.abc import Sequence

import numpy as np

from micrograd.engine.random import default_generator
from micrograd.engine.tensor import Tensor

from .sparse import CSRMatrix


class Dataset(abc.ABC):
    """A map-style dataset: ``len(ds)`` samples, ``ds[i]`` for ``0 <= i < len(ds)``.

    Subclasses write ``__len__`` and ``__getitem__``; an item is usually an
    ``(array, label)`` pair, as torchvision datasets return. Subclasses whose
    samples live in arrays should also write ``__getitems__`` (see the module
    docstring) so batches are gathered without a Python loop.

    Example::

        >>> class Squares(Dataset):
        ...     def __len__(self):
        ...         return 10
        ...     def __getitem__(self, i):
        ...         return np.array([i], dtype=np.float32), i * i
        >>> Squares()[3]
        (array([3.], dtype=float32), 9)
    """

    @abc.abstractmethod
    def __len__(self) -> int:
        ...

    @abc.abstractmethod
    def __getitem__(self, index):
        ...


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors or arrays: ``ds[i]`` is
    ``(a[i], b[i], ...)``.

    Args:
        *tensors: Tensors or anything ``numpy.asarray`` accepts, each of shape
            ``(N, ...)`` with the same ``N``. Arrays and Tensors keep their dtype,
            here and in the DataLoader's batches: int64 token ids stay int64 for
            an ``Embedding``, float32 features stay float32. A
            :class:`~micrograd.data.sparse.CSRMatrix` stays sparse: its rows come
            back as ``CSRMatrix`` and the DataLoader densifies each batch.

    Rows of a Tensor come back as Tensors, rows of an array as NumPy values.
    No data is copied on construction; ``arrays`` holds the stored arrays.

    Example::

        >>> x = np.zeros((100, 3), dtype=np.float32)
        >>> y = np.arange(100) % 2
        >>> ds = TensorDataset(x, y)
        >>> x5, y5 = ds[5]
        >>> len(ds), x5.shape, int(y5)
        (100, (3,), 1)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor or array")
        # A sparse matrix is kept as it is: np.asarray would densify all of it.
        arrays = tuple(t.data if isinstance(t, Tensor) else
                       t if isinstance(t, CSRMatrix) else np.asarray(t) for t in tensors)
        for position, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(
                    f"TensorDataset argument {position} is a scalar; every argument needs "
                    "a first dimension that indexes the samples"
                )
        lengths = [len(a) for a in arrays]
        if len(set(lengths)) > 1:
            raise ValueError(
                f"Size mismatch between tensors: first dimensions {lengths}; every tensor "
                "in a TensorDataset must hold the same number of samples"
            )
        self.arrays = arrays
        # Rows of Tensor arguments go back out as Tensors, which the loader
        # leaves at the dtype the caller chose.
        self._is_tensor = tuple(isinstance(t, Tensor) for t in tensors)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return self._take(index)

    def __getitems__(self, indices):
        """The batch of samples ``indices`` (an int array), by one fancy index per array."""
        return self._take(np.asarray(indices))

    def _take(self, index):
        return tuple(Tensor._wrap(np.asarray(a[index])) if is_tensor else a[index]
                     for a, is_tensor in zip(self.arrays, self._is_tensor))

    def __repr__(self):
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Args:
        dataset: any dataset.
        indices: a sequence of ints, shape ``(M,)``; ``subset[i]`` is
            ``dataset[indices[i]]``.

    Batching stays vectorised when ``dataset`` has ``__getitems__``.

    Example::

        >>> ds = TensorDataset(np.arange(10))
        >>> [int(Subset(ds, [7, 2])[i][0]) for i in range(2)]
        [7, 2]
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset indices must be one-dimensional, got shape {self.indices.shape}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[operator.index(index)])]

    def __getitems__(self, indices):
        inner = self.indices[np.asarray(indices)]
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return getitems(inner)
        # A list of samples: the loader collates them one by one.
        return [self.dataset[int(i)] for i in inner]


def random_split(dataset, lengths: Sequence, seed=None) -> list[Subset]:
    """Split ``dataset`` at random into disjoint :class:`Subset` s of the given lengths.

    Args:
        dataset: any dataset of ``N`` samples.
        lengths: ints summing to ``N``, or fractions summing to 1 (the samples left
            over by rounding down go one each to the first splits, as in PyTorch).
        seed: seeds a private generator, so the split does not depend on (or move)
            the global one; ``None`` draws from ``micrograd.engine.random``'s
            generator, which ``mt.manual_seed`` makes repeatable.

    Example::

        >>> train, val = random_split(TensorDataset(np.arange(10)), [0.8, 0.2], seed=0)
        >>> len(train), len(val)
        (8, 2)
    """
    n = len(dataset)
    lengths = list(lengths)
    if any(isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating))
           for k in lengths):
        raise TypeError(f"random_split lengths must be ints or fractions, got {lengths}")
    if any(k < 0 for k in lengths):
        raise ValueError(f"random_split lengths must be non-negative, got {lengths}")
    # Fractions only when one of them is a float: [0, 1] means counts, not 0% and 100%.
    if any(isinstance(k, (float, np.floating)) for k in lengths):
        if not math.isclose(sum(lengths), 1.0):
            raise ValueError(f"random_split fractions must sum to 1, got {lengths} (sum {sum(lengths)})")
        counts = [math.floor(n * k) for k in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    lengths = [int(k) for k in lengths]
    if sum(lengths) != n:
        raise ValueError(
            f"random_split lengths sum to {sum(lengths)}, but the dataset holds {n} samples"
        )
    generator = np.random.default_rng(seed) if seed is not None else default_generator()
    order = generator.permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]
