"""Embedding and EmbeddingBag: central-difference gradchecks (no torch needed),
PyTorch parity of values, gradients and state dicts, and the index errors."""
import numpy as np
import pytest
from gradcheck import gradcheck, torch_or_skip

import micrograd.nn as mn
import micrograd.nn.functional as F
from micrograd.engine.embedding import scatter_add_rows
from micrograd.engine.random import manual_seed
from micrograd.engine.tensor import Tensor

RTOL = {np.float64: 1e-6, np.float32: 1e-5}
ATOL = {np.float64: 1e-12, np.float32: 1e-6}


def ids(*rows):
    return Tensor(rows, dtype=np.int64)


# Repeated indices (3 appears four times, 0 is padding), bags of only padding.
IDS_2D = [[1, 3, 3, 0], [3, 0, 0, 0], [0, 0, 0, 0], [5, 6, 3, 2]]
IDS_3D = np.array([[[1, 2], [2, 2]], [[0, 6], [6, 1]], [[4, 4], [4, 4]]])


# ------------------------------------------------------------ gradchecks


def test_embedding_gradcheck():
    table = np.random.default_rng(0).standard_normal((7, 3))
    gradcheck(lambda w: F.embedding(IDS_3D, w), table)


@pytest.mark.parametrize("padding_idx", [0, -1])
def test_embedding_gradcheck_with_padding(padding_idx):
    # The padding row gets no gradient by definition, not as a derivative: the
    # reference treats it as a constant zero row (w times a 0/1 row mask), which
    # the padding row is after initialisation.
    table = np.random.default_rng(0).standard_normal((7, 3))
    keep = np.ones((7, 1))
    keep[padding_idx] = 0
    table *= keep
    gradcheck(lambda w: F.embedding(IDS_3D, w * Tensor(keep, dtype=np.float64),
                                    padding_idx=padding_idx), table)


def test_scale_grad_by_freq_divides_by_the_count():
    # Not the derivative of the forward, by PyTorch's definition, so no gradcheck:
    # each row's summed gradient is divided by how often its index occurs.
    table = np.random.default_rng(1).standard_normal((7, 3))
    w = Tensor(table, requires_grad=True, dtype=np.float64)
    F.embedding(IDS_3D, w, scale_grad_by_freq=True).sum().backward()
    present = np.isin(np.arange(7), IDS_3D)
    np.testing.assert_allclose(w.grad.data, np.repeat(present[:, None], 3, axis=1) * 1.0)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_bag_gradcheck(mode, padding_idx):
    # Distinct values, so that max has a unique winner and is differentiable.
    table = np.random.default_rng(2).permutation(np.arange(28.0)).reshape(7, 4) / 7
    gradcheck(lambda w: F.embedding_bag(np.array(IDS_2D), w, mode=mode, padding_idx=padding_idx),
              table)


def test_scatter_add_rows_matches_add_at_for_every_frequency():
    rng = np.random.default_rng(3)
    index = np.concatenate([rng.integers(0, 50, 300), np.zeros(40, np.int64), [49] * 6])
    values = rng.standard_normal((len(index), 5))
    expected = np.zeros((60, 5))
    np.add.at(expected, index, values)
    np.testing.assert_allclose(scatter_add_rows(index, values, 60), expected, rtol=1e-12)
    assert scatter_add_rows(np.zeros(0, np.int64), np.zeros((0, 5)), 4).shape == (4, 5)


# --------------------------------------------------------------- behaviour


def test_embedding_shapes_init_and_padding_row():
    manual_seed(0)
    emb = mn.Embedding(1000, 16, padding_idx=3)
    assert emb.weight.shape == (1000, 16) and emb.weight.dtype == np.float32
    assert [n for n, _ in emb.named_parameters()] == ["weight"]
    assert np.all(emb.weight.data[3] == 0)
    rest = np.delete(emb.weight.data, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1) < 0.02  # N(0, 1)
    out = emb(Tensor(IDS_3D, dtype=np.int64))
    assert out.shape == (3, 2, 2, 16) and out.dtype == np.float32
    assert emb(Tensor(4, dtype=np.int32)).shape == (16,)
    assert repr(emb) == "Embedding(1000, 16, padding_idx=3)"
    assert mn.Embedding(5, 2, padding_idx=-1).padding_idx == 4


def test_embedding_bag_shapes_and_empty_bags():
    bag = mn.EmbeddingBag(10, 4, mode="mean", padding_idx=0)
    assert np.all(bag.weight.data[0] == 0)
    for mode in ("sum", "mean", "max"):
        bag.mode = mode
        out = bag(ids(*IDS_2D))
        assert out.shape == (4, 4)
        assert np.all(out.data[2] == 0), f"a bag of only padding is zeros under {mode}"
    assert repr(bag) == "EmbeddingBag(10, 4, mode='max', padding_idx=0)"


def test_embedding_bag_offsets_equal_padded_rows():
    bag = mn.EmbeddingBag(10, 3, mode="mean", padding_idx=0)
    flat = ids(1, 3, 3, 3, 5, 6, 3, 2)
    via_offsets = bag(flat, Tensor([0, 3, 4, 4], dtype=np.int64))
    padded = bag(ids([1, 3, 3, 0], [3, 0, 0, 0], [0, 0, 0, 0], [5, 6, 3, 2]))
    np.testing.assert_allclose(via_offsets.data, padded.data, rtol=1e-6)


def test_from_pretrained_freezes_and_shares():
    table = np.arange(12.0).reshape(4, 3)
    emb = mn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad and emb.weight.data is table
    np.testing.assert_array_equal(emb(ids(2, 0)).data, table[[2, 0]])
    assert mn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_max_norm_rescales_looked_up_rows_in_place():
    emb = mn.Embedding.from_pretrained(np.array([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]]),
                                       max_norm=1.0)
    emb(ids(0, 1))
    np.testing.assert_allclose(np.linalg.norm(emb.weight.data, axis=1), [1.0, 0.5, 10.0],
                               rtol=1e-6)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("bad", [[1, 10], [-1, 2]])
def test_an_index_out_of_range_is_an_index_error_naming_it(bad):
    emb = mn.Embedding(10, 2)
    with pytest.raises(IndexError, match=rf"index {bad[0] if bad[0] < 0 else bad[1]} is out "
                                         r"of range.*\[0, 9\]"):
        emb(ids(*bad))
    with pytest.raises(IndexError, match="out of range"):
        mn.EmbeddingBag(10, 2)(ids(bad))


@pytest.mark.parametrize("layer", [mn.Embedding(5, 2), mn.EmbeddingBag(5, 2)])
def test_float_indices_are_an_error_not_a_cast(layer):
    with pytest.raises(RuntimeError, match=r"'indices' to have an integer dtype.*float32"):
        layer(Tensor([[1.0, 2.0]]))


def test_bad_construction_arguments():
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        mn.Embedding(5, 2, padding_idx=5)
    with pytest.raises(ValueError, match="embedding_dim must be a positive integer"):
        mn.Embedding(5, 0)
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        mn.EmbeddingBag(5, 2, mode="median")
    with pytest.raises(ValueError, match="input has to be 1D or 2D"):
        mn.EmbeddingBag(7, 2)(Tensor(IDS_3D, dtype=np.int64))


# ------------------------------------------------------------ torch parity


def _torch_grads(torch, module, x, proj):
    out = module(torch.from_numpy(x))
    (out * torch.from_numpy(proj)).sum().backward()
    return out.detach().numpy(), module.weight.grad.numpy()


def _mg_grads(module, x, proj):
    out = module(Tensor(x, dtype=np.int64))
    (out * Tensor(proj, dtype=proj.dtype)).sum().backward()
    return out.data, module.weight.grad.data


def _check_parity(torch, mg_module, torch_module, x, dtype):
    torch_module.to(getattr(torch, np.dtype(dtype).name))
    state = {k: v.detach().numpy().copy() for k, v in torch_module.state_dict().items()}
    assert list(mg_module.state_dict()) == list(state)
    if dtype == np.float64:
        mg_module.double()
    mg_module.load_state_dict(state)
    out_t = torch_module(torch.from_numpy(x))
    proj = np.random.default_rng(9).standard_normal(out_t.shape).astype(dtype)
    value_t, grad_t = _torch_grads(torch, torch_module, x, proj)
    value_m, grad_m = _mg_grads(mg_module, x, proj)
    assert value_m.dtype == dtype and grad_m.dtype == dtype
    np.testing.assert_allclose(value_m, value_t, rtol=RTOL[dtype], atol=ATOL[dtype],
                               err_msg="forward")
    np.testing.assert_allclose(grad_m, grad_t, rtol=RTOL[dtype], atol=ATOL[dtype],
                               err_msg="weight gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x, kwargs", [
    (np.array(IDS_2D), {}),
    (np.array(IDS_2D), {"padding_idx": 0}),
    (IDS_3D, {"padding_idx": -1}),
    (IDS_3D, {"scale_grad_by_freq": True}),
    (np.array([4, 4, 4, 1]), {}),
], ids=["2d", "padding", "3d-negative-padding", "scale_grad_by_freq", "1d-repeats"])
def test_embedding_matches_torch(dtype, x, kwargs):
    torch = torch_or_skip()
    torch.manual_seed(0)
    _check_parity(torch, mn.Embedding(7, 5, **kwargs), torch.nn.Embedding(7, 5, **kwargs),
                  x, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 0])
def test_embedding_bag_matches_torch(dtype, mode, padding_idx):
    torch = torch_or_skip()
    torch.manual_seed(0)
    _check_parity(torch, mn.EmbeddingBag(7, 5, mode=mode, padding_idx=padding_idx),
                  torch.nn.EmbeddingBag(7, 5, mode=mode, padding_idx=padding_idx),
                  np.array(IDS_2D), dtype)


def test_embedding_bag_offsets_match_torch():
    torch = torch_or_skip()
    torch.manual_seed(0)
    theirs = torch.nn.EmbeddingBag(10, 3, mode="mean", padding_idx=0).double()
    ours = mn.EmbeddingBag(10, 3, mode="mean", padding_idx=0).double()
    ours.load_state_dict({"weight": theirs.weight.detach().numpy().copy()})
    flat, offsets = np.array([1, 3, 0, 3, 5, 6, 3, 2]), np.array([0, 3, 4, 4])
    expected = theirs(torch.from_numpy(flat), torch.from_numpy(offsets)).detach().numpy()
    got = ours(Tensor(flat, dtype=np.int64), Tensor(offsets, dtype=np.int64)).data
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_max_norm_matches_torch():
    torch = torch_or_skip()
    table = np.random.default_rng(4).standard_normal((6, 3)) * 2
    theirs = torch.nn.Embedding.from_pretrained(torch.from_numpy(table.copy()), max_norm=1.5,
                                                norm_type=3.0)
    ours = mn.Embedding.from_pretrained(table.copy(), max_norm=1.5, norm_type=3.0)
    x = np.array([[0, 2], [2, 5]])
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.int64)).data,
                               theirs(torch.from_numpy(x)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.weight.data, theirs.weight.numpy(), rtol=1e-6)


def test_state_dicts_move_both_ways():
    torch = torch_or_skip()
    ours = mn.Sequential(mn.Embedding(9, 4, padding_idx=0), mn.Flatten(), mn.Linear(8, 2))
    theirs = torch.nn.Sequential(torch.nn.Embedding(9, 4, padding_idx=0), torch.nn.Flatten(),
                                 torch.nn.Linear(8, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == \
        ["0.weight", "2.weight", "2.bias"]
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    x = np.array([[1, 0], [8, 3]])
    np.testing.assert_allclose(ours(Tensor(x, dtype=np.int64)).data,
                               theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
