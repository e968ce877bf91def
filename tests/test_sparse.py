"""Sparse text vectors: CSRMatrix against dense indexing, and the sparse path of
load_text, the DataLoader and predict_outputs against the dense one, value for value."""
import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.tensor as mt
from micrograd.data import DataLoader, Subset, TensorDataset
from micrograd.data.sparse import CSRMatrix, densify
from micrograd.data.text import TextPipeline, load_text, tokenize
from micrograd.inference import predict_outputs


def random_dense(rng, n=40, v=30, density=0.1):
    x = rng.random((n, v)).astype(np.float32)
    x[rng.random((n, v)) > density] = 0
    x[3] = 0  # an empty row
    return x


def test_csr_round_trips_and_answers_like_the_dense_array():
    rng = np.random.default_rng(0)
    x = random_dense(rng)
    m = CSRMatrix.from_dense(x)
    assert m.shape == x.shape and len(m) == len(x) and m.dtype == np.float32 and m.ndim == 2
    assert m.nnz == np.count_nonzero(x)
    np.testing.assert_array_equal(m.toarray(), x)
    np.testing.assert_array_equal(np.asarray(m), x)
    np.testing.assert_allclose(m.sum(), x.sum(dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(m.sum(axis=0), x.sum(axis=0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(m.sum(axis=1), x.sum(axis=1, dtype=np.float64), rtol=1e-12)
    index = rng.integers(-len(x), len(x), size=25)
    mask = rng.random(len(x)) < 0.5
    for key in (index, mask, slice(5, 17), slice(None, None, 3), slice(30, 10), [], [3, 3, 0]):
        picked = m[key]
        assert isinstance(picked, CSRMatrix)
        np.testing.assert_array_equal(picked.toarray(), x[key].reshape(-1, x.shape[1]))
    np.testing.assert_array_equal(m[7], x[7])
    np.testing.assert_array_equal(m[-1], x[-1])
    assert m[2, 5] == x[2, 5]
    np.testing.assert_array_equal(m[1:4, 2:6], x[1:4, 2:6])
    with pytest.raises(IndexError):
        m[len(x)]
    with pytest.raises(IndexError):
        m[[0, len(x)]]


def test_inconsistent_arrays_are_refused():
    with pytest.raises(ValueError, match="inconsistent CSR arrays"):
        CSRMatrix([1.0], [0], [0, 1, 1], (3, 2))


SENTENCES = ["Great phone, great battery!", "awful. broke after a day", "", "meh",
             "don't buy it... awful!", "great great great", "unknown zebra words"]


@pytest.mark.parametrize("vectorizer", ["bow", "binary", "tfidf"])
def test_sparse_vectors_are_the_dense_vectors(vectorizer):
    tokens = [tokenize(s) for s in SENTENCES]
    p = TextPipeline.fit(tokens[:5], vectorizer=vectorizer)
    dense = p.vectorize(tokens)
    sparse = p.vectorize(tokens, sparse=True)
    assert isinstance(sparse, CSRMatrix) and isinstance(dense, np.ndarray)
    assert sparse.dtype == dense.dtype == np.float32
    np.testing.assert_array_equal(sparse.toarray(), dense)  # the same floats, bit for bit
    assert sparse.nnz == np.count_nonzero(dense)


def test_ids_stay_dense():
    tokens = [tokenize(s) for s in SENTENCES]
    p = TextPipeline.fit(tokens, vectorizer="ids")
    assert isinstance(p.vectorize(tokens, sparse=True), np.ndarray)


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(60)]
    # every sentence starts with its own word: no repeats for load_text to drop
    lines = [f"s{i} {' '.join(rng.choice(words, size=rng.integers(1, 8)))}\t{i % 2}"
             for i in range(120)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_text_keeps_splits_sparse_and_the_loader_densifies_batches(corpus):
    data = load_text(corpus, splits=(0.6, 0.2, 0.2), seed=0)
    vocab = len(data.pipeline.vocabulary)
    for x, y in ((data.x_train, data.y_train), (data.x_val, data.y_val),
                 (data.x_test, data.y_test)):
        assert isinstance(x, CSRMatrix)
        assert x.shape == (len(y), vocab) and x.dtype == np.float32
    dense = np.asarray(data.x_train)
    sparse_loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=16,
                               shuffle=True, seed=3)
    dense_loader = DataLoader(TensorDataset(dense, data.y_train), batch_size=16,
                              shuffle=True, seed=3)
    assert len(sparse_loader) == len(dense_loader)
    for (xs, ys), (xd, yd) in zip(sparse_loader, dense_loader):
        assert xs.dtype == np.float32 and xs.shape == xd.shape
        np.testing.assert_array_equal(xs.data, xd.data)
        np.testing.assert_array_equal(ys.data, yd.data)
    # rows one at a time and through a Subset come out dense too
    ds = TensorDataset(data.x_train, data.y_train)
    np.testing.assert_array_equal(ds[4][0], dense[4])
    (xb, _), = DataLoader(Subset(ds, [5, 1]), batch_size=2)
    np.testing.assert_array_equal(xb.data, dense[[5, 1]])


def test_predict_outputs_densifies_batch_by_batch(corpus):
    data = load_text(corpus, splits=(1.0, 0.0, 0.0))
    mt.manual_seed(0)
    model = mn.Sequential(mn.Linear(data.x_train.shape[1], 2))
    dense = np.asarray(data.x_train)
    for batch_size in (7, 512):
        np.testing.assert_array_equal(predict_outputs(model, data.x_train, batch_size),
                                      predict_outputs(model, dense, batch_size))
    assert densify(dense) is dense
