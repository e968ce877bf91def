"""The engine's ops: gradients by central differences, and equality with PyTorch."""
import numpy as np
import pytest

from gradcheck import gradcheck, torch_or_skip
from micrograd.engine import ops
from micrograd.engine.autograd import is_grad_enabled, no_grad
from micrograd.engine.tensor import Tensor

rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape)


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


# Each case: (name, micrograd fn, torch fn or None for "same code", input arrays).
# The same lambda usually runs on both libraries, since the APIs are the same.
CASES = [
    ("add_broadcast", lambda a, b: a + b, None, [randn(3, 4), randn(4)]),
    ("add_keepdim_broadcast", lambda a, b: a + b, None, [randn(2, 1, 4), randn(3, 1)]),
    ("sub", lambda a, b: a - b, None, [randn(3, 4), randn(3, 1)]),
    ("mul", lambda a, b: a * b, None, [randn(2, 3), randn(1, 3)]),
    ("div", lambda a, b: a / b, None, [randn(2, 3), positive(2, 3)]),
    ("scalar_left", lambda a: 2.0 - a * 3 + 1 / (a * a + 1), None, [randn(4)]),
    ("neg", lambda a: -a, None, [randn(3)]),
    ("pow_scalar", lambda a: a**3, None, [randn(3, 2)]),
    ("pow_fractional", lambda a: a**0.5, None, [positive(3, 2)]),
    ("pow_tensor", lambda a, b: a**b, None, [positive(3), randn(3)]),
    ("rpow", lambda a: 2.0**a, None, [randn(3)]),
    ("matmul_2d", lambda a, b: a @ b, None, [randn(3, 4), randn(4, 2)]),
    ("matmul_vec_vec", lambda a, b: a @ b, None, [randn(4), randn(4)]),
    ("matmul_mat_vec", lambda a, b: a @ b, None, [randn(3, 4), randn(4)]),
    ("matmul_vec_mat", lambda a, b: a @ b, None, [randn(4), randn(4, 2)]),
    ("matmul_batched", lambda a, b: a @ b, None, [randn(2, 3, 4), randn(2, 4, 5)]),
    ("matmul_batched_broadcast", lambda a, b: a @ b, None, [randn(2, 3, 4), randn(4, 5)]),
    ("exp", lambda a: a.exp(), None, [randn(3, 2)]),
    ("log", lambda a: a.log(), None, [positive(3, 2)]),
    ("sqrt", lambda a: a.sqrt(), None, [positive(3, 2)]),
    ("abs", lambda a: a.abs(), None, [randn(3, 2)]),
    ("tanh", lambda a: a.tanh(), None, [randn(3, 2)]),
    ("sigmoid", lambda a: a.sigmoid(), None, [randn(3, 2) * 4]),
    ("relu", lambda a: a.relu(), None, [randn(4, 3)]),
    ("clip", lambda a: a.clip(-0.5, 0.7), lambda a: a.clamp(-0.5, 0.7), [randn(4, 3)]),
    ("softmax", lambda a: a.softmax(1), None, [randn(3, 5)]),
    ("softmax_dim0", lambda a: a.softmax(0), None, [randn(3, 5)]),
    ("log_softmax", lambda a: a.log_softmax(-1), None, [randn(3, 5)]),
    ("sum_all", lambda a: a.sum(), None, [randn(3, 4)]),
    ("sum_dim", lambda a: a.sum(1), None, [randn(3, 4)]),
    ("sum_keepdim", lambda a: a.sum(0, keepdim=True), None, [randn(3, 4)]),
    ("sum_dims", lambda a: a.sum((0, 2)), None, [randn(2, 3, 4)]),
    ("mean_all", lambda a: a.mean(), None, [randn(3, 4)]),
    ("mean_keepdim", lambda a: a.mean(1, keepdim=True), None, [randn(3, 4)]),
    ("max_all", lambda a: a.max(), None, [randn(3, 4)]),
    ("max_dim", lambda a: a.max(1).values, None, [randn(3, 4)]),
    ("max_dim_keepdim", lambda a: a.max(0, keepdim=True)[0], None, [randn(3, 4)]),
    ("min_dim", lambda a: a.min(dim=1).values, None, [randn(3, 4)]),
    ("amax", lambda a: a.amax(1), None, [randn(3, 4)]),
    ("reshape", lambda a: a.reshape(4, 3), None, [randn(3, 4)]),
    ("ndarray_on_the_left", lambda a: np.full((3, 4), 2.0) * a - np.ones(4),
     lambda a: 2.0 * a - 1.0, [randn(3, 4)]),
    ("view", lambda a: a.view(-1), None, [randn(3, 4)]),
    ("flatten", lambda a: a.flatten(1), None, [randn(2, 3, 4)]),
    ("transpose", lambda a: a.transpose(0, 1), None, [randn(3, 4)]),
    ("T", lambda a: a.T, None, [randn(3, 4)]),
    ("permute", lambda a: a.permute(2, 0, 1), None, [randn(2, 3, 4)]),
    ("squeeze", lambda a: a.squeeze(1), None, [randn(3, 1, 2)]),
    ("unsqueeze", lambda a: a.unsqueeze(0), None, [randn(3, 2)]),
    ("index_int", lambda a: a[1], None, [randn(3, 4)]),
    ("index_slice", lambda a: a[1:, ::2], None, [randn(3, 4)]),
    ("index_ellipsis_none", lambda a: a[..., None, 1], None, [randn(2, 3, 4)]),
]


@pytest.mark.parametrize("name,fn,torch_fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_central_difference(name, fn, torch_fn, arrays):
    gradcheck(fn, *arrays)


@pytest.mark.parametrize("name,fn,torch_fn,arrays", CASES, ids=[c[0] for c in CASES])
def test_forward_and_gradient_match_pytorch(name, fn, torch_fn, arrays):
    torch = torch_or_skip()
    torch_fn = torch_fn or fn
    ours = [Tensor(a, requires_grad=True, dtype=np.float64) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref = fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-5, atol=1e-12)
    proj = np.random.default_rng(2).standard_normal(ref.shape)
    (out * Tensor(proj, dtype=np.float64)).sum().backward()
    (ref * torch.tensor(proj)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-5, atol=1e-12,
                                   err_msg=f"gradient of input {i}")


# --------------------------------------------------------- indexing, cat, stack

INDEX_CASES = [
    ("int_array_repeats", lambda a: a[np.array([0, 2, 0, 0])]),
    ("int_list", lambda a: a[[1, 1, 2]]),
    ("bool_mask", lambda a: a[a.data > 0]),
    ("tuple_arrays", lambda a: a[np.array([0, 1, 1]), np.array([2, 0, 2])]),
    ("tensor_index", lambda a: a[Tensor([2, 0], dtype=np.int64)]),
]


@pytest.mark.parametrize("name,fn", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_advanced_indexing_gradients(name, fn):
    a = randn(3, 4)
    gradcheck(fn, a)


def test_advanced_indexing_matches_pytorch():
    torch = torch_or_skip()
    a = randn(4, 3)
    idx = np.array([0, 3, 3, 1])
    ours = Tensor(a, requires_grad=True, dtype=np.float64)
    theirs = torch.tensor(a, requires_grad=True)
    (ours[idx] * 2).sum().backward()
    (theirs[torch.from_numpy(idx)] * 2).sum().backward()
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy())
    mask = a > 0
    ours.grad = None
    theirs.grad = None
    ours[mask].sum().backward()
    theirs[torch.from_numpy(mask)].sum().backward()
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy())


def test_cat_and_stack_gradients():
    gradcheck(lambda a, b: ops.cat([a, b], dim=1), randn(2, 3), randn(2, 2))
    gradcheck(lambda a, b: ops.cat([a, b]), randn(2, 3), randn(1, 3))
    gradcheck(lambda a, b: ops.stack([a, b], dim=1), randn(2, 3), randn(2, 3))
    gradcheck(lambda a, b: ops.stack([a, b]), randn(3), randn(3))


def test_cat_and_stack_match_pytorch():
    torch = torch_or_skip()
    a, b = randn(2, 3), randn(2, 3)
    ta, tb = (torch.tensor(x, requires_grad=True) for x in (a, b))
    ma, mb = (Tensor(x, requires_grad=True, dtype=np.float64) for x in (a, b))
    w = randn(2, 2, 3)
    (ops.stack([ma, mb], dim=1) * Tensor(w, dtype=np.float64)).sum().backward()
    (torch.stack([ta, tb], dim=1) * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ma.grad.data, ta.grad.numpy())
    np.testing.assert_allclose(mb.grad.data, tb.grad.numpy())
    out = ops.cat([ma, mb], dim=1)
    np.testing.assert_allclose(out.data, torch.cat([ta, tb], dim=1).detach().numpy())


def test_where_gradient():
    cond = randn(3, 4) > 0
    gradcheck(lambda a, b: ops.where(cond, a, b), randn(3, 4), randn(3, 4))


# ------------------------------------------------------------- numerics


def test_log_softmax_is_stable_for_large_logits():
    x = Tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    out = x.log_softmax(1)
    assert np.all(np.isfinite(out.data))
    np.testing.assert_allclose(out.data[0, 0], 0.0, atol=1e-6)
    out.sum().backward()
    assert np.all(np.isfinite(x.grad.data))
    assert np.all(np.isfinite(x.softmax(1).data))


def test_sigmoid_does_not_overflow():
    x = Tensor([-1000.0, 0.0, 1000.0])
    with np.errstate(over="raise"):
        np.testing.assert_allclose(x.sigmoid().data, [0.0, 0.5, 1.0])


def test_max_gradient_picks_one_element_per_row_like_pytorch():
    a = Tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    values, indices = a.max(dim=1)
    values.sum().backward()
    np.testing.assert_array_equal(indices.data, [1, 0])
    np.testing.assert_array_equal(a.grad.data, [[0, 1, 0], [1, 0, 0]])
    b = Tensor([1.0, 3.0, 3.0], requires_grad=True)
    b.max().backward()  # the overall max shares the gradient between ties (as torch)
    np.testing.assert_allclose(b.grad.data, [0, 0.5, 0.5])


def test_numpy_axis_keywords_accepted():
    a = Tensor(randn(2, 3))
    np.testing.assert_allclose(a.sum(axis=1, keepdims=True).data, a.data.sum(1, keepdims=True),
                               rtol=1e-6)
    np.testing.assert_allclose(a.max(axis=0).data, a.data.max(0))
    np.testing.assert_allclose(a.mean(axis=(0, 1)).data, a.data.mean(), rtol=1e-6)


# ------------------------------------------------------------- the Tensor type


def test_default_dtype_is_float32_whatever_the_input():
    assert Tensor([1, 2, 3]).dtype == np.float32
    assert Tensor(np.arange(3, dtype=np.int64)).dtype == np.float32
    assert Tensor(np.ones(2, dtype=np.float64)).dtype == np.float32
    assert Tensor([1, 2], dtype=np.float64).dtype == np.float64
    assert Tensor([1, 2], dtype=np.int64).dtype == np.int64


def test_float32_graphs_stay_float32():
    x = Tensor(randn(3, 2), requires_grad=True)
    y = ((x * 2.5 + np.float64(1.0)) / 3 - 1).exp().mean() ** 2
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


def test_tensor_basics():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.size == 4 and len(t) == 2
    assert isinstance(t.data, np.ndarray)
    assert t.sum().item() == 10.0
    assert t.numpy() is t.data
    assert "tensor(" in repr(t)
    t.data = np.zeros((1, 3))
    assert t.shape == (1, 3)
    with pytest.raises(ValueError):
        t.item()


def test_comparisons_float_and_accuracy_idiom():
    pred = Tensor([0, 2, 1, 1], dtype=np.int64)
    y = Tensor([0, 2, 2, 1], dtype=np.int64)
    eq = pred == y
    assert eq.dtype == bool and not eq.requires_grad
    assert (eq.float().mean()).item() == pytest.approx(0.75)
    a = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    assert (a > 0).tolist() == [True, False, True]
    assert (a <= 1).tolist() == [True, True, False]
    assert (a != 3).tolist() == [True, True, False]
    assert (a >= Tensor([1.0, 0.0, 0.0])).tolist() == [True, False, True]
    assert (a < 0).long().dtype == np.int64


def test_argmax_function_and_method():
    out = Tensor([[0.1, 0.9], [0.8, 0.2]])
    assert ops.argmax(out, 1).tolist() == [1, 0]
    assert out.argmax(dim=1).tolist() == [1, 0]
    assert out.argmax().item() == 1


# ------------------------------------------------------------- autograd rules


def test_gradient_of_a_reused_tensor_is_the_sum():
    x = Tensor([3.0], requires_grad=True)
    y = x * x + x  # x used three times
    y.backward()
    assert x.grad.data[0] == pytest.approx(7.0)


def test_gradients_accumulate_across_backward_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3 + 2, 3 + 4])
    x.grad.zero_()
    np.testing.assert_allclose(x.grad.data, [0, 0])
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3, 3])


def test_backward_twice_needs_retain_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_with_explicit_gradient():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).backward(Tensor([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(x.grad.data, [2, 0, 4])
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_chain_of_100k_ops_backpropagates():
    x = Tensor([1.0], requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(100_000):
        y = y + 1e-5
    y = y * 2
    y.backward()
    assert x.grad.data[0] == pytest.approx(2.0)
    assert y.data[0] == pytest.approx(2 * (1 + 1.0))


def test_no_grad_records_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None

    @no_grad()
    def f(t):
        return t * 3

    z = f(x)
    assert not z.requires_grad and z.grad_fn is None


def test_in_place_update_under_no_grad_keeps_the_same_object():
    w = Tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    before = w
    with no_grad():
        w -= 0.1 * w.grad
    assert w is before and w.requires_grad
    np.testing.assert_allclose(w.data, [0.8, 1.6])
    w.grad.zero_()
    np.testing.assert_allclose(w.grad.data, [0.0, 0.0])
    with pytest.raises(RuntimeError, match="in-place"):
        w -= 1.0


def test_detach_and_requires_grad_():
    x = Tensor([1.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = Tensor([2.0]).requires_grad_()
    (y * y).sum().backward()
    assert y.grad.item() == pytest.approx(4.0)


def test_retain_grad_keeps_an_interior_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = (x * 3).retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, [6.0, 12.0])


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_tanh_and_sigmoid_of_a_scalar_tensor_have_values_and_gradients(name):
    """A 0-d tensor through tanh or the sigmoid (NumPy's ufuncs return scalars
    there, with no array to write into): PyTorch's value and gradient."""
    torch = pytest.importorskip("torch")
    x = Tensor(0.3, requires_grad=True, dtype=np.float64)
    y = getattr(x, name)()
    y.backward()
    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    expected = getattr(t, name)()
    expected.backward()
    assert y.shape == () and x.grad.shape == ()
    np.testing.assert_allclose(y.data, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.data, t.grad.item(), rtol=1e-12)
