"""One dtype policy (STYLE.md 15): integers stay integers until a float op needs
them, and then the op says so instead of casting. Training (DataLoader) and
prediction (inference.predict_outputs) hand a model the same dtypes."""
import numpy as np
import pytest

import micrograd.nn as mn
import micrograd.nn.functional as F
import micrograd.tensor as mt
from micrograd.data.dataloader import default_collate
from micrograd.engine.tensor import Tensor
from micrograd.inference import predict_outputs


def token_data(n=64, length=6, vocab=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, size=(n, length))
    x[:, length // 2:][rng.random((n, length - length // 2)) < 0.4] = 0  # padding
    y = (x.max(axis=1) > vocab // 2).astype(np.int64)
    return x, y


# ------------------------------------------------------------ the loader


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.float32, np.float64])
def test_loader_batches_keep_the_arrays_dtype(dtype):
    x, y = token_data()
    xb, yb = next(iter(mt.DataLoader(mt.TensorDataset(x.astype(dtype), y), batch_size=8)))
    assert xb.dtype == dtype and yb.dtype == np.int64
    np.testing.assert_array_equal(xb.numpy(), x[:8].astype(dtype))


def test_collate_of_python_numbers():
    ids, target, label = default_collate([([1, 2], 0.5, 1), ([3, 4], 1.5, 0)])
    assert (ids.dtype, target.dtype, label.dtype) == (np.int64, np.float32, np.int64)


# ------------------------------------------------------------ float ops


@pytest.mark.parametrize("op", [
    lambda x: F.linear(x, Tensor(np.ones((2, 4)))),
    lambda x: mn.Linear(4, 2)(x),
    lambda x: mn.Conv2d(1, 1, 1)(x.reshape(1, 1, 2, 2)),
    lambda x: F.avg_pool2d(x.reshape(1, 1, 2, 2), 2),
    lambda x: F.max_pool2d(x.reshape(1, 1, 2, 2), 2),
    lambda x: F.sigmoid(x),
    lambda x: F.softmax(x, dim=1),
    lambda x: F.dropout(x, 0.5),
    lambda x: mn.BatchNorm1d(4)(x),
], ids=["linear", "Linear", "Conv2d", "avg_pool2d", "max_pool2d", "sigmoid", "softmax",
        "dropout", "BatchNorm1d"])
@pytest.mark.parametrize("as_tensor", [True, False])
def test_float_ops_refuse_integers_naming_the_dtype(op, as_tensor):
    x = np.arange(4, dtype=np.int64).reshape(1, 4)
    with pytest.raises(RuntimeError, match="expected a floating-point input, got int64"):
        op(Tensor(x, dtype=np.int64) if as_tensor else x)


def test_float_ops_run_on_floats_and_keep_their_dtype():
    layer = mn.Linear(4, 2)
    assert layer(np.ones((1, 4), dtype=np.float32)).dtype == np.float32
    assert layer(Tensor(np.ones((1, 4)), dtype=np.int64).float()).dtype == np.float32


def test_flatten_and_relu_take_integers_as_they_are():
    x = Tensor([[[-1, 2], [3, -4]]], dtype=np.int64)
    assert F.flatten(x, 1).dtype == np.int64
    out = F.relu(x)
    assert out.dtype == np.int64 and out.tolist() == [[[0, 2], [3, 0]]]


# -------------------------------------------------- training vs prediction


@pytest.mark.parametrize("first", ["embedding", "embedding_bag"])
def test_a_model_on_token_ids_trains_and_predicts_on_the_same_dtypes(first):
    mt.manual_seed(0)
    x, y = token_data()
    if first == "embedding":
        model = mn.Sequential(mn.Embedding(20, 4, padding_idx=0), mn.Flatten(), mn.Linear(24, 2))
    else:
        model = mn.Sequential(mn.EmbeddingBag(20, 4, padding_idx=0), mn.Linear(4, 2))
    loader = mt.DataLoader(mt.TensorDataset(x, y), batch_size=16, shuffle=True, seed=0)
    optimizer = mt.SGD(model.parameters(), lr=0.5)
    loss_fn = mt.CrossEntropyLoss()
    before = model[0].weight.data.copy()
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            assert xb.dtype == np.int64 and yb.dtype == np.int64
            loss = loss_fn(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert not np.allclose(model[0].weight.data, before)
    np.testing.assert_array_equal(model[0].weight.data[0], 0)  # padding never trained
    assert np.mean(losses[-4:]) < np.mean(losses[:4])

    model.eval()
    with mt.no_grad():
        seen = np.concatenate([model(xb).data for xb, _ in
                               mt.DataLoader(mt.TensorDataset(x, y), batch_size=16)])
    predicted = predict_outputs(model, x)
    assert predicted.dtype == np.float32
    np.testing.assert_array_equal(predicted, seen)


def test_a_float_feature_model_sees_identical_batches_in_training_and_prediction():
    mt.manual_seed(1)
    x = np.random.default_rng(1).standard_normal((40, 3)).astype(np.float32)
    model = mn.Sequential(mn.Linear(3, 2))
    xb, = next(iter(mt.DataLoader(mt.TensorDataset(x), batch_size=40)))
    assert xb.dtype == np.float32
    model.eval()
    np.testing.assert_array_equal(predict_outputs(model, x), model(xb).data)
