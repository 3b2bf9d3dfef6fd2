"""`tl.Tensor` as API.md describes it: construction and dtype rules, properties, conversions,
promotion without float64 surprises, devices and moves, and the factories."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm.tensor import array_module


def _device_name(device: str) -> str:
    return "cuda:0" if device == "cuda" else device


# ---------------------------------------------------------------- construction and dtypes


@pytest.mark.parametrize(
    "data, dtype",
    [
        (3, np.float32),
        (2.5, np.float32),
        ([1, 2, 3], np.float32),
        ([[1.0, 2.0], [3.0, 4.0]], np.float32),
        ([True, False], np.bool_),
        (True, np.bool_),
        (np.arange(3), np.int64),
        (np.arange(3, dtype=np.int32), np.int32),
        (np.ones(2), np.float64),
        (np.ones(2, dtype=np.float16), np.float16),
        (np.float64(1.5), np.float64),
        (np.array([True]), np.bool_),
    ],
)
def test_dtype_rules(device, data, dtype):
    t = tl.Tensor(data, device=device)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.numpy(), np.asarray(data))
    assert t.device == _device_name(device)


def test_explicit_dtype_wins(device):
    assert tl.Tensor([1, 2], dtype=np.int64, device=device).dtype == np.int64
    assert tl.Tensor(np.ones(2), dtype="float32", device=device).dtype == np.float32
    assert tl.Tensor([0.0, 2.0], dtype=bool, device=device).numpy().tolist() == [False, True]


def test_tensor_copies_its_data(device):
    a = np.ones(3)
    t = tl.Tensor(a, device=device)
    a[0] = 5.0
    assert t.numpy()[0] == 1.0
    u = tl.Tensor(t)
    assert u.array is not t.array and u.dtype == t.dtype and not u.requires_grad


def test_a_list_of_one_element_tensors_and_numpy_conversion():
    parts = [tl.Tensor(1.0), tl.Tensor(2.0)]
    assert tl.Tensor(parts).numpy().tolist() == [1.0, 2.0]
    assert np.asarray(tl.Tensor([[1.0, 2.0]])).shape == (1, 2)
    assert np.asarray(tl.Tensor([1.0]), dtype=np.float64).dtype == np.float64


def test_properties(device):
    x = tl.Tensor(np.zeros((2, 3, 4)), requires_grad=True, device=device, name="weights")
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert x.dtype == np.float64 and x.device == _device_name(device) and x.name == "weights"
    assert x.is_leaf and x.requires_grad and x.grad is None and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.requires_grad and y.grad_fn.op == "Mul" and y.name is None
    assert isinstance(x.array, array_module(x.device).ndarray)


def test_python_conversions(device):
    t = tl.Tensor([[2.5]], device=device)
    assert float(t) == 2.5 and int(t) == 2 and bool(t) and t.item() == 2.5
    assert tl.Tensor([[1.0, 2.0], [3.0, 4.0]], device=device).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert isinstance(tl.Tensor(7, device=device).item(), float)
    assert isinstance(tl.Tensor(np.array([7]), device=device).item(), int)
    rows = list(tl.Tensor([[1.0, 2.0], [3.0, 4.0]], device=device))
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    assert isinstance(t.numpy(), np.ndarray)


def test_iteration_is_differentiable(device):
    x = tl.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True, device=device)
    total = None
    for i, row in enumerate(x):
        total = row * (i + 1) if total is None else total + row * (i + 1)
    total.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1, 1], [2, 2]])


def test_repr(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    assert repr(x).startswith("tensor([1., 2.]") and "requires_grad=True" in repr(x)
    assert "grad_fn=<Mul>" in repr(x * 2)
    assert "dtype=int64" in repr(tl.Tensor(np.arange(2), device=device))
    assert "name='h'" in repr(tl.Tensor([1.0], name="h"))
    if device != "cpu":
        assert "device='cuda:0'" in repr(x)


def test_numpy_arrays_on_the_left_give_tensors(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    if device == "cpu":
        y = np.array([3.0, 4.0], dtype=np.float32) * x
        assert isinstance(y, tl.Tensor) and y.requires_grad
        np.testing.assert_array_equal(y.detach().numpy(), [3.0, 8.0])
    z = [1.0, 1.0] + x
    assert isinstance(z, tl.Tensor) and z.dtype == np.float32


# ---------------------------------------------------------------- dtype promotion


@pytest.mark.parametrize("number", [2, 2.5, True, np.float64(2.0), np.int64(3)])
def test_python_and_numpy_scalars_keep_float32(device, number):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    results = [x + number, number + x, x - number, number - x, x * number, number * x, x / 2.0, 2.0 / x,
               x**number, tl.maximum(x, number), tl.minimum(number, x), tl.where(x > 1, x, number), x.clip(0, number)]
    assert all(r.dtype == np.float32 for r in results)
    sum(r.sum() for r in results).backward()
    assert x.grad.dtype == np.float32


def test_promotion_follows_pytorch_where_numpy_differs(device):
    ints = tl.Tensor(np.array([1, 2, 3]), device=device)
    floats = tl.Tensor([0.5, 0.5, 0.5], device=device)
    bools = tl.Tensor([True, False, True], device=device)
    assert (ints * 2.5).dtype == np.float32  # NumPy: float64
    assert (ints + floats).dtype == np.float32  # NumPy: float64
    assert (ints / 2).dtype == np.float32 and (ints / ints).dtype == np.float32
    assert (ints + 1).dtype == np.int64 and (bools + 1).dtype == np.int64
    assert (bools + 1).numpy().tolist() == [2, 1, 2]
    assert (bools * floats).dtype == np.float32
    assert (floats.double() + floats).dtype == np.float64
    assert tl.cat([ints, floats]).dtype == np.float32
    assert (ints @ floats).dtype == np.float32
    assert ints.mean().dtype == np.float32


def test_gradients_keep_each_inputs_dtype_across_a_promotion(device):
    single = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    double = tl.Tensor(np.array([3.0, 4.0]), requires_grad=True, device=device)
    out = single * double
    assert out.dtype == np.float64
    out.sum().backward()
    assert single.grad.dtype == np.float32 and double.grad.dtype == np.float64
    np.testing.assert_array_equal(single.grad.numpy(), [3.0, 4.0])


def test_int_and_bool_tensors_cannot_require_grad(device):
    with pytest.raises(TypeError, match="floating point.*int64"):
        tl.Tensor(np.arange(3), requires_grad=True, device=device)
    with pytest.raises(TypeError, match="floating point.*bool"):
        tl.Tensor([True], requires_grad=True, device=device)
    with pytest.raises(TypeError, match="floating point"):
        tl.zeros(3, dtype=np.int32, requires_grad=True, device=device)
    x = tl.Tensor([1.5, 2.5], requires_grad=True, device=device)
    as_int = x.to(np.int64)
    assert as_int.dtype == np.int64 and not as_int.requires_grad and as_int.grad_fn is None
    assert tl.Tensor([1], requires_grad=True, device=device).dtype == np.float32  # lists become float32


# ---------------------------------------------------------------- to / devices


def test_to_casts_differentiably(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    y = x.to(np.float64)
    assert y.dtype == np.float64 and y.grad_fn.op == "Cast"
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    assert x.to(np.float32) is x and x.float() is x and x.double().dtype == np.float64
    assert x.to("float64").dtype == np.float64 and x.to(dtype=np.float16).dtype == np.float16


def test_to_a_device_moves_data_differentiably(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    y = x.to(device)
    assert y.device == _device_name(device) and x.device == "cpu"
    if device == "cpu":
        assert y is x and x.cpu() is x
    else:
        assert y.grad_fn.op == "ToDevice"
        back = (y * 3).cpu()
        assert back.device == "cpu" and back.grad_fn.op == "ToDevice"
    (y * 3).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_to_another_tensor_and_with_keywords(device):
    x = tl.Tensor([1.0], device=device)
    like = tl.Tensor(np.array([0.0]), device=device)
    moved = tl.Tensor([1.0]).to(like)
    assert moved.device == like.device and moved.dtype == np.float64
    assert x.to(device=device, dtype=np.float64).dtype == np.float64


def test_ops_take_their_array_module_from_the_device(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    y = (x * 2).exp()
    assert y.grad_fn.xp is array_module(x.device) and y.grad_fn.device == x.device
    assert isinstance(y.array, array_module(x.device).ndarray)
    y.sum().backward()
    assert isinstance(x.grad.array, array_module(x.device).ndarray) and x.grad.device == x.device


def test_devices_are_normalized(device):
    assert tl.Tensor([1.0]).device == "cpu" and tl.Tensor([1.0], device=None).device == "cpu"
    t = tl.Tensor([1.0], device=device)
    assert tl.Tensor(t.array).device == t.device  # a backend array keeps its device


# ---------------------------------------------------------------- factories


def test_factories(device):
    assert tl.zeros(2, 3, device=device).shape == (2, 3) and tl.zeros((2, 3)).dtype == np.float32
    assert tl.ones((2,), dtype=np.float64, device=device).numpy().tolist() == [1.0, 1.0]
    assert tl.full((2, 2), 7.0, device=device).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    assert tl.randn(3, 4, device=device).dtype == np.float32 and tl.rand(5, device=device).shape == (5,)
    assert tl.randn(2, dtype=np.float64, requires_grad=True, device=device).requires_grad
    x = tl.Tensor(np.ones((2, 2)), device=device)
    assert tl.zeros_like(x).dtype == np.float64 and tl.ones_like(x, dtype=np.float32).dtype == np.float32
    assert tl.zeros_like(x).device == x.device
    assert tl.arange(4, device=device).numpy().tolist() == [0, 1, 2, 3] and tl.arange(4).dtype == np.int64
    assert tl.arange(0, 1, 0.25).dtype == np.float32 and tl.arange(1, 7, 2).numpy().tolist() == [1, 3, 5]
    u = tl.rand(1000, device=device).numpy()
    assert 0 <= u.min() and u.max() < 1


def test_manual_seed_makes_samples_reproducible(device):
    tl.manual_seed(123)
    a = tl.randn(5, device=device).numpy()
    tl.manual_seed(123)
    b = tl.randn(5, device=device).numpy()
    tl.manual_seed(124)
    c = tl.randn(5, device=device).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------------------------- shape helpers


def test_shape_methods_accept_tuples_and_varargs(device):
    x = tl.Tensor(np.arange(24.0).reshape(2, 3, 4), device=device)
    assert x.reshape(6, 4).shape == x.reshape((6, 4)).shape == x.reshape([6, 4]).shape == (6, 4)
    assert x.permute(2, 0, 1).shape == x.permute((2, 0, 1)).shape == (4, 2, 3)
    assert x.transpose(0, 1).shape == (3, 2, 4) and x.transpose(2, 0, 1).shape == (4, 2, 3)
    assert x.transpose(-1, 0).shape == (4, 3, 2)
    assert x.expand(5, 2, 3, 4).shape == (5, 2, 3, 4) and x.unsqueeze(0).shape == (1, 2, 3, 4)
    assert x.flatten(0, 1).shape == (6, 4) and x.flatten().shape == (24,)
    assert x.reshape(x.shape) is x and x.permute(0, 1, 2) is x  # no node for a no-op
    scalar = tl.Tensor(3.0, device=device)
    assert scalar.reshape(1).shape == (1,) and scalar.flatten().shape == (1,) and scalar.T.shape == ()
    assert scalar.sum(axis=0).item() == 3.0 and scalar.squeeze().shape == ()


def test_split_and_chunk_sizes(device):
    x = tl.Tensor(np.arange(10.0), device=device)
    assert [p.shape[0] for p in x.split(3)] == [3, 3, 3, 1]
    assert [p.shape[0] for p in x.split([2, 0, 8])] == [2, 0, 8]
    assert [p.shape[0] for p in x.chunk(4)] == [3, 3, 3, 1]
    assert [p.shape[0] for p in x.chunk(20)] == [1] * 10
    assert len(tl.Tensor(np.zeros((0, 2)), device=device).split(2)) == 1
