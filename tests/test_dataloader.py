"""micrograd.data's core: Dataset, TensorDataset, Subset, random_split, DataLoader."""
import json

import numpy as np
import pytest

import micrograd.tensor as mt
from micrograd.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split
from micrograd.engine.tensor import Tensor


def index_dataset(n):
    """Samples are their own indices (kept int64), so a batch shows the order."""
    return TensorDataset(Tensor(np.arange(n), dtype=np.int64))


def epoch_order(loader):
    return np.concatenate([batch[0].numpy() for batch in loader])


class PairList:
    """torchvision-style: a plain class (no base) of (np.ndarray, int) pairs."""

    def __init__(self, n=10, shape=(1, 4, 4)):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        self.labels = [int(k) for k in rng.integers(0, 10, size=n)]
        self.calls = 0

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        self.calls += 1
        return self.images[i], self.labels[i]


class CountingTensorDataset(TensorDataset):
    def __init__(self, *tensors):
        super().__init__(*tensors)
        self.item_calls = 0
        self.batch_calls = 0

    def __getitem__(self, index):
        self.item_calls += 1
        return super().__getitem__(index)

    def __getitems__(self, indices):
        self.batch_calls += 1
        return super().__getitems__(indices)


# ---------------------------------------------------------------- batching


def test_batches_have_shapes_and_dtypes():
    x = np.random.default_rng(0).random((10, 2, 3)).astype(np.float32)
    y = np.arange(10, dtype=np.int32)
    batches = list(DataLoader(TensorDataset(x, y), batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 2, 3), (4, 2, 3), (2, 2, 3)]
    assert [b[1].shape for b in batches] == [(4,), (4,), (2,)]
    for xb, yb in batches:
        assert isinstance(xb, Tensor) and isinstance(yb, Tensor)
        assert xb.dtype == np.float32 and yb.dtype == np.int32  # kept, as default_collate
        assert not xb.requires_grad
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


@pytest.mark.parametrize("x_dtype, want", [  # kept: no hidden cast (STYLE.md 15)
    (np.float64, np.float64), (np.float32, np.float32), (np.uint8, np.uint8),
    (np.int64, np.int64), (np.bool_, np.bool_),
])
def test_input_dtype(x_dtype, want):
    x = np.ones((6, 3), dtype=x_dtype)
    xb, _ = next(iter(DataLoader(TensorDataset(x, np.zeros(6, dtype=np.int64)), batch_size=6)))
    assert xb.dtype == want


@pytest.mark.parametrize("y_dtype, want", [
    (np.uint8, np.uint8), (np.int32, np.int32), (np.int64, np.int64),
    (np.float32, np.float32), (np.float64, np.float64),
])
def test_label_dtype(y_dtype, want):
    y = np.ones(6, dtype=y_dtype)
    _, yb = next(iter(DataLoader(TensorDataset(np.ones((6, 2)), y), batch_size=6)))
    assert yb.dtype == want


@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 4, False, [4, 4, 2]),
    (10, 4, True, [4, 4]),
    (8, 4, False, [4, 4]),
    (8, 4, True, [4, 4]),
    (3, 5, False, [3]),
    (3, 5, True, []),
    (0, 2, False, []),
    (10, 1, False, [1] * 10),
])
def test_partial_last_batch_and_drop_last(n, batch_size, drop_last, sizes):
    loader = DataLoader(index_dataset(n), batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(sizes)
    assert [len(b[0]) for b in loader] == sizes


def test_unshuffled_order_is_the_dataset_order():
    np.testing.assert_array_equal(epoch_order(DataLoader(index_dataset(7), batch_size=3)),
                                  np.arange(7))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_size should be a positive integer, got 0"):
        DataLoader(index_dataset(3), batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(index_dataset(3), batch_size=2.5)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(object())


# ---------------------------------------------------------------- shuffling


def test_shuffle_visits_every_index_once_and_changes_every_epoch():
    loader = DataLoader(index_dataset(50), batch_size=8, shuffle=True, seed=3)
    orders = [epoch_order(loader) for _ in range(3)]
    for order in orders:
        np.testing.assert_array_equal(np.sort(order), np.arange(50))
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[1], orders[2])
    assert not np.array_equal(orders[0], np.arange(50))


def test_shuffle_with_drop_last_visits_distinct_indices():
    loader = DataLoader(index_dataset(10), batch_size=4, shuffle=True, drop_last=True, seed=0)
    order = epoch_order(loader)
    assert len(order) == 8 and len(set(order.tolist())) == 8


def test_seed_makes_epochs_repeatable_and_independent_of_the_global_generator():
    mt.manual_seed(0)
    a = DataLoader(index_dataset(30), batch_size=7, shuffle=True, seed=11)
    first = [epoch_order(a) for _ in range(3)]
    before = json.dumps(mt.get_rng_state())
    mt.manual_seed(12345)
    b = DataLoader(index_dataset(30), batch_size=7, shuffle=True, seed=11)
    second = [epoch_order(b) for _ in range(3)]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    # The seeded loader did not draw from the global generator.
    after = DataLoader(index_dataset(30), batch_size=7, shuffle=True, seed=11)
    mt.manual_seed(0)
    epoch_order(after)
    assert json.dumps(mt.get_rng_state()) == before
    other = DataLoader(index_dataset(30), batch_size=7, shuffle=True, seed=12)
    assert not np.array_equal(epoch_order(other), first[0])


def test_without_seed_manual_seed_makes_shuffling_repeatable():
    loader = DataLoader(index_dataset(30), batch_size=4, shuffle=True)
    # Seeding after the loader is built must still govern it.
    mt.manual_seed(5)
    first = [epoch_order(loader) for _ in range(2)]
    mt.manual_seed(5)
    second = [epoch_order(loader) for _ in range(2)]
    for x, y in zip(first, second):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], first[1])


def test_a_new_iterator_starts_a_new_epoch():
    loader = DataLoader(index_dataset(20), batch_size=5, shuffle=True, seed=0)
    peeked = next(iter(loader))[0].numpy()
    order = epoch_order(loader)
    np.testing.assert_array_equal(np.sort(order), np.arange(20))
    assert not np.array_equal(order[:5], peeked)
    assert loader.state_dict()["epoch"] == 2


# ------------------------------------------------------------ plain datasets


def test_torchvision_style_dataset_of_array_int_pairs():
    ds = PairList(n=10)
    batches = list(DataLoader(ds, batch_size=4))
    assert ds.calls == 10  # no __getitems__: read sample by sample
    xb, yb = batches[0]
    assert xb.shape == (4, 1, 4, 4) and xb.dtype == np.uint8  # pixels kept as stored
    assert yb.shape == (4,) and yb.dtype == np.int64  # Python ints
    np.testing.assert_array_equal(xb.numpy(), ds.images[:4])
    assert yb.tolist() == ds.labels[:4]
    assert batches[-1][0].shape == (2, 1, 4, 4)


def test_dataset_subclass_and_single_values_and_triples():
    class Triples(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(3, i, dtype=np.float64), float(i) / 2, i

    x, t, y = next(iter(DataLoader(Triples(), batch_size=5)))
    assert (x.shape, x.dtype) == ((5, 3), np.float64)
    assert (t.dtype, y.dtype) == (np.float32, np.int64)  # Python floats get the engine's float32
    assert y.tolist() == [0, 1, 2, 3, 4]

    class Singles(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i], dtype=np.float32)

    batch = next(iter(DataLoader(Singles(), batch_size=3)))
    assert isinstance(batch, Tensor) and batch.shape == (3, 2)


def test_a_list_of_pairs_is_a_dataset():
    pairs = [(np.array([i, i + 1.0]), i % 3) for i in range(6)]
    xb, yb = next(iter(DataLoader(pairs, batch_size=6)))
    assert xb.shape == (6, 2) and xb.dtype == np.float64  # NumPy's default float is kept
    assert yb.tolist() == [0, 1, 2, 0, 1, 2]


def test_tensor_values_keep_their_dtype():
    tokens = Tensor(np.arange(12).reshape(6, 2), dtype=np.int64)
    xb, yb = next(iter(DataLoader(TensorDataset(tokens, np.arange(6)), batch_size=3)))
    assert xb.dtype == np.int64 and yb.dtype == np.int64
    samples = [(Tensor([1, 2], dtype=np.int32), 0), (Tensor([3, 4], dtype=np.int32), 1)]
    xb, _ = default_collate(samples)
    assert xb.dtype == np.int32 and xb.tolist() == [[1, 2], [3, 4]]


def test_collate_errors_are_clear():
    with pytest.raises(ValueError, match="shapes differ"):
        default_collate([(np.zeros(2), 0), (np.zeros(3), 1)])
    with pytest.raises(ValueError, match="different structure"):
        default_collate([(np.zeros(2), 0), np.zeros(2)])
    with pytest.raises(TypeError, match="cannot batch values of dtype"):
        default_collate([({"a": 1}, 0)])


# --------------------------------------------------------- vectorised path


def test_array_backed_dataset_is_batched_by_fancy_indexing():
    ds = CountingTensorDataset(np.random.default_rng(0).random((20, 3)), np.arange(20))
    loader = DataLoader(ds, batch_size=6, shuffle=True, seed=1)
    for _ in range(2):
        ys = np.concatenate([yb.numpy() for _, yb in loader])
        np.testing.assert_array_equal(np.sort(ys), np.arange(20))
    assert ds.item_calls == 0
    assert ds.batch_calls == 2 * len(loader)


def test_subset_of_an_array_backed_dataset_stays_vectorised():
    ds = CountingTensorDataset(np.arange(10) * 10.0, np.arange(10))
    xb, yb = next(iter(DataLoader(Subset(ds, [9, 3, 5]), batch_size=3)))
    assert ds.item_calls == 0 and ds.batch_calls == 1
    assert yb.tolist() == [9, 3, 5] and xb.tolist() == [90.0, 30.0, 50.0]


def test_getitems_returning_a_list_of_samples_is_collated():
    class TorchStyle:
        """torch's convention: __getitems__ returns a list of samples."""

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.array([i], dtype=np.float32), i

        def __getitems__(self, indices):
            return [self[int(i)] for i in indices]

    xb, yb = next(iter(DataLoader(TorchStyle(), batch_size=4)))
    assert xb.shape == (4, 1) and yb.tolist() == [0, 1, 2, 3]


def test_subset_of_a_plain_dataset():
    ds = PairList(n=8)
    xb, yb = next(iter(DataLoader(Subset(ds, [7, 0]), batch_size=2)))
    assert xb.shape == (2, 1, 4, 4) and yb.tolist() == [ds.labels[7], ds.labels[0]]
    assert Subset(ds, [7, 0])[1][1] == ds.labels[0]


# ---------------------------------------------------------- TensorDataset


def test_tensor_dataset_indexes_like_torch():
    x = np.arange(12.0).reshape(4, 3)
    ds = TensorDataset(x, Tensor([0, 1, 2, 3], dtype=np.int64))
    assert len(ds) == 4
    xi, yi = ds[2]
    np.testing.assert_array_equal(xi, x[2])
    assert isinstance(yi, Tensor) and yi.item() == 2
    (only,) = TensorDataset(x)[-1]
    np.testing.assert_array_equal(only, x[3])


def test_tensor_dataset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"Size mismatch between tensors: first dimensions \[4, 3\]"):
        TensorDataset(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="scalar"):
        TensorDataset(np.float32(1.0))


def test_dataset_is_abstract():
    class Incomplete(Dataset):
        def __len__(self):
            return 0

    with pytest.raises(TypeError):
        Incomplete()


# ------------------------------------------------------------ random_split


def test_random_split_sizes_disjoint_and_complete():
    ds = index_dataset(20)
    parts = random_split(ds, [12, 5, 3], seed=0)
    assert [len(p) for p in parts] == [12, 5, 3]
    seen = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(seen), np.arange(20))
    assert not np.array_equal(seen, np.arange(20))  # shuffled, not cut in order
    again = random_split(ds, [12, 5, 3], seed=0)
    for p, q in zip(parts, again):
        np.testing.assert_array_equal(p.indices, q.indices)
    assert int(parts[1][0][0].item()) == parts[1].indices[0]


def test_random_split_fractions():
    parts = random_split(index_dataset(10), [0.5, 0.3, 0.2], seed=1)
    assert [len(p) for p in parts] == [5, 3, 2]
    parts = random_split(index_dataset(11), [0.5, 0.5], seed=1)
    assert [len(p) for p in parts] == [6, 5]  # the leftover goes to the first split


def test_random_split_fractions_match_torch():
    torch = pytest.importorskip("torch")
    for n, fractions in [(10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]), (101, [0.7, 0.2, 0.1])]:
        ours = [len(p) for p in random_split(index_dataset(n), fractions, seed=0)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
        assert ours == theirs


def test_random_split_rejects_bad_lengths():
    with pytest.raises(ValueError, match="sum to 9, but the dataset holds 10"):
        random_split(index_dataset(10), [5, 4])
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        random_split(index_dataset(10), [0.5, 0.4])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(index_dataset(10), [12, -2])


def test_random_split_without_seed_follows_manual_seed():
    mt.manual_seed(3)
    a = random_split(index_dataset(10), [5, 5])
    mt.manual_seed(3)
    b = random_split(index_dataset(10), [5, 5])
    np.testing.assert_array_equal(a[0].indices, b[0].indices)


# ------------------------------------------------------------- resuming


def test_state_restore_reproduces_the_next_epochs_order():
    loader = DataLoader(index_dataset(40), batch_size=6, shuffle=True, seed=7)
    epoch_order(loader)
    state = json.loads(json.dumps(loader.state_dict()))  # survives a JSON checkpoint
    expected = [epoch_order(loader) for _ in range(2)]

    resumed = DataLoader(index_dataset(40), batch_size=6, shuffle=True, seed=999)
    with pytest.raises(ValueError, match="without a seed"):
        DataLoader(index_dataset(40), batch_size=6, shuffle=True).load_state_dict(state)
    resumed.load_state_dict(state)
    assert resumed.state_dict()["epoch"] == 1
    for want in expected:
        np.testing.assert_array_equal(epoch_order(resumed), want)


def test_state_restore_mid_epoch_continues_the_same_epoch():
    loader = DataLoader(index_dataset(23), batch_size=5, shuffle=True, seed=2)
    it = iter(loader)
    seen = [next(it)[0].numpy() for _ in range(2)]
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (0, 2)
    rest = np.concatenate([b[0].numpy() for b in it])
    following = epoch_order(loader)

    resumed = DataLoader(index_dataset(23), batch_size=5, shuffle=True, seed=2)
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(epoch_order(resumed), rest)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen + [rest])), np.arange(23))
    np.testing.assert_array_equal(epoch_order(resumed), following)


def test_state_during_the_last_batch_points_at_the_next_epoch():
    loader = DataLoader(index_dataset(6), batch_size=3, shuffle=True, seed=0)
    for _ in loader:
        state = loader.state_dict()
    assert (state["epoch"], state["batch"], state["epoch_seed"]) == (1, 0, None)


def test_state_restore_without_seed_uses_the_global_generator_state():
    loader = DataLoader(index_dataset(30), batch_size=4, shuffle=True)
    mt.manual_seed(1)
    epoch_order(loader)
    state, rng = loader.state_dict(), mt.get_rng_state()
    assert state["generator"] is None
    expected = epoch_order(loader)

    resumed = DataLoader(index_dataset(30), batch_size=4, shuffle=True)
    resumed.load_state_dict(state)
    mt.set_rng_state(rng)
    np.testing.assert_array_equal(epoch_order(resumed), expected)


def test_load_state_rejects_a_state_that_does_not_fit():
    loader = DataLoader(index_dataset(10), batch_size=5, seed=0)
    with pytest.raises(KeyError, match="missing"):
        loader.load_state_dict({"epoch": 0})
    state = loader.state_dict()
    state["batch"] = 3
    with pytest.raises(ValueError, match="3 batches into an epoch"):
        loader.load_state_dict(state)
