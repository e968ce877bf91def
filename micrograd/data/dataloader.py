"""DataLoader: a dataset in batches of engine Tensors, reshuffled every epoch."""
from __future__ import annotations

import numpy as np

from micrograd.engine.random import default_generator
from micrograd.engine.tensor import DEFAULT_DTYPE, Tensor

from .sparse import CSRMatrix


class DataLoader:
    """Iterate over ``dataset`` in batches of Tensors.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__`` (a :class:`Dataset`,
            a torchvision dataset, a list of pairs). Datasets with
            ``__getitems__(indices)`` (such as :class:`TensorDataset`) are batched
            by fancy indexing their arrays; any other is read sample by sample.
        batch_size: samples per batch.
        shuffle: visit the samples in a new random order every epoch.
        drop_last: skip the last batch when it holds fewer than ``batch_size`` samples.
        seed: shuffle with a private generator seeded so, making the orders of all
            epochs repeatable whatever else draws random numbers. ``None`` draws from
            ``micrograd.engine.random``'s generator, which ``mt.manual_seed`` seeds.

    Shape:
        A dataset item of ``(array of shape S, label)`` gives batches
        ``(x, y)`` with ``x.shape == (B, *S)`` and ``y.shape == (B,)``, where ``B``
        is ``batch_size`` (the last batch may be smaller unless ``drop_last``).
        Items that are one value give one Tensor per batch; tuples of ``k`` values
        give ``k``-tuples of Tensors.

    Dtypes:
        Kept, as PyTorch's ``default_collate`` keeps them: every field of a batch
        has the dtype of its values, inputs and targets alike (float64 stays
        float64, int64 token ids stay int64 for an ``Embedding``, uint8 pixels stay
        uint8). Python numbers have no dtype of their own: ints become int64,
        floats the engine's float32, bools bool. Nothing is cast to float here; a
        float layer given integers says so (see ``micrograd.nn.functional``).
        Rows of a :class:`~micrograd.data.sparse.CSRMatrix` (sparse text vectors)
        are densified here, one batch at a time, in their own dtype.

    ``len(loader)`` is the number of batches per epoch. ``state_dict()`` and
    ``load_state_dict()`` save and restore where the loader is in its sequence of
    epochs, mid-epoch included, for resuming a run exactly. The state follows
    the most recent iterator; a new ``iter(loader)`` starts a new epoch.

    Example::

        >>> ds = TensorDataset(np.random.rand(100, 3), np.arange(100) % 2)
        >>> loader = DataLoader(ds, batch_size=32, shuffle=True, seed=0)
        >>> len(loader)
        4
        >>> x, y = next(iter(loader))
        >>> x.shape, x.dtype, y.shape, y.dtype
        ((32, 3), dtype('float64'), (32,), dtype('int64'))
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed=None):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader needs a dataset with __len__ and __getitem__, got {type(dataset).__name__}"
            )
        if (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                or batch_size < 1):
            raise ValueError(f"batch_size should be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self._generator = np.random.default_rng(seed) if seed is not None else None
        self._epoch = 0           # epochs finished (or abandoned part way)
        self._batch = 0           # batches of the current epoch handed out
        self._epoch_seed = None   # seeds the current epoch's order; None when unshuffled
        self._in_epoch = False
        self._resume = False      # the next iterator continues a loaded epoch

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self._resume:
            self._resume = False
        else:
            if self._in_epoch:
                self._epoch += 1
            self._batch = 0
            self._epoch_seed = self._draw_epoch_seed()
            self._in_epoch = True
        return self._batches(self._epoch_order(self._epoch_seed), self._batch)

    def _draw_epoch_seed(self):
        # Each epoch's permutation comes from a seed drawn here, rather than from
        # the generator directly, so that a mid-epoch checkpoint holds one integer
        # instead of the whole permutation.
        if not self.shuffle:
            return None
        # The global generator is looked up now, not in __init__, because
        # mt.manual_seed replaces it: seeding after building the loader must count.
        generator = self._generator if self._generator is not None else default_generator()
        return int(generator.integers(2**63 - 1))

    def _epoch_order(self, epoch_seed):
        n = len(self.dataset)
        if epoch_seed is None:
            return np.arange(n)
        return np.random.default_rng(epoch_seed).permutation(n)

    def _batches(self, order, start):
        count = len(self)
        for b in range(start, count):
            batch = self._fetch(order[b * self.batch_size:(b + 1) * self.batch_size])
            # Counted before the yield: while the caller trains on this batch, a
            # checkpoint must already say it was handed out.
            self._batch = b + 1
            if self._batch == count:
                self._end_epoch()
            yield batch
        if count == 0:
            self._end_epoch()

    def _end_epoch(self):
        self._epoch += 1
        self._batch = 0
        self._epoch_seed = None
        self._in_epoch = False

    def _fetch(self, indices):
        getitems = getattr(self.dataset, "__getitems__", None)
        if getitems is not None:
            return _batch_to_tensors(getitems(indices))
        return default_collate([self.dataset[int(i)] for i in indices])

    # ------------------------------------------------------------ resuming

    def state_dict(self) -> dict:
        """Where the loader stands, as plain JSON-able data.

        ``epoch``: epochs finished; ``batch``: batches of the next epoch already
        handed out; ``epoch_seed``: that epoch's shuffling seed (``None`` between
        epochs or without shuffling); ``generator``: the private generator's state
        (``None`` without ``seed=``: the global generator is saved with
        ``mt.get_rng_state()`` instead, as it is shared with everything else).
        """
        return {
            "epoch": self._epoch,
            "batch": self._batch,
            "epoch_seed": self._epoch_seed,
            "generator": None if self._generator is None else self._generator.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``: the next iterator yields the batches that would
        have followed when ``state_dict()`` was taken."""
        missing = {"epoch", "batch", "epoch_seed", "generator"} - set(state)
        if missing:
            raise KeyError(f"DataLoader state is missing {sorted(missing)}")
        if (state["generator"] is None) != (self._generator is None):
            saved = "without a seed" if state["generator"] is None else "with a seed"
            this = "has none" if self._generator is None else f"has seed={self.seed!r}"
            raise ValueError(
                f"the state comes from a DataLoader {saved}, but this one {this}; "
                "build it the same way (a loader without a seed shuffles with the global "
                "generator, which mt.set_rng_state restores)"
            )
        batch = int(state["batch"])
        if not 0 <= batch <= len(self):
            raise ValueError(
                f"the state is {batch} batches into an epoch, but this loader has {len(self)} per epoch"
            )
        if state["generator"] is not None:
            self._generator.bit_generator.state = state["generator"]
        self._epoch = int(state["epoch"])
        self._batch = batch
        self._epoch_seed = None if state["epoch_seed"] is None else int(state["epoch_seed"])
        self._in_epoch = self._resume = batch > 0 or self._epoch_seed is not None
        if batch == len(self) and batch > 0:
            self._end_epoch()
            self._resume = False

    def __repr__(self):
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed!r})")


# ---------------------------------------------------------------- collation


def default_collate(samples):
    """Stack a list of ``B`` samples into a batch of Tensors.

    A sample is one value (array, number or Tensor) or a tuple/list of them; values
    of shape ``S`` stack to ``(B, *S)``, with the dtypes that :class:`DataLoader`
    documents. Returns one Tensor, or a tuple of Tensors, one per field.

    Example::

        >>> x, y = default_collate([(np.zeros(3), 1), (np.ones(3), 0)])
        >>> x.shape, y.tolist()
        ((2, 3), [1, 0])
    """
    if len(samples) == 0:
        raise ValueError("cannot collate an empty list of samples")
    first = samples[0]
    if not isinstance(first, (tuple, list)):
        return _to_tensor(_stack(samples, None))
    width = len(first)
    for sample in samples:
        if not isinstance(sample, (tuple, list)) or len(sample) != width:
            raise ValueError(
                f"cannot batch samples of different structure: the first has {width} fields, "
                f"another is {type(sample).__name__} {sample!r:.80}"
            )
    return tuple(_to_tensor(_stack([s[k] for s in samples], k)) for k in range(width))


def _batch_to_tensors(batch):
    """Tensors from what ``__getitems__`` returned (see micrograd.data.dataset)."""
    if isinstance(batch, list):
        return default_collate(batch)
    if isinstance(batch, tuple):
        return tuple(_to_tensor(v) for v in batch)
    return _to_tensor(batch)


def _stack(values, field):
    """One field of every sample as one array (or one Tensor if they all are)."""
    if all(isinstance(v, Tensor) for v in values):
        return Tensor._wrap(np.stack([v.data for v in values]))
    if all(type(v) is float for v in values):
        # Python floats carry no dtype to keep: they get the engine's, not float64.
        return np.array(values, dtype=DEFAULT_DTYPE)
    if all(type(v) is int for v in values):
        # Labels and token ids: int64, PyTorch's index dtype, on every platform.
        return np.array(values, dtype=np.int64)
    arrays = [np.asarray(v) for v in values]
    try:
        return np.stack(arrays)
    except ValueError:
        shapes = sorted({a.shape for a in arrays})
        where = "samples" if field is None else f"field {field} of the samples"
        raise ValueError(f"cannot batch {where}: their shapes differ, {shapes[:4]}") from None


def _to_tensor(value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, CSRMatrix):
        return Tensor._wrap(value.toarray())
    array = np.asarray(value)
    # dtype.kind rather than np.issubdtype: this runs for every field of every
    # batch, and issubdtype costs a microsecond a call.
    if array.dtype.kind not in "biufc":
        raise TypeError(
            f"cannot batch values of dtype {array.dtype}; a dataset item should be an array, "
            "a number, or a tuple of them"
        )
    return Tensor._wrap(array)
