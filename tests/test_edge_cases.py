"""Ops at their edges, against PyTorch: exact zeros, constant inputs, empty axes, 0-d tensors, integer inputs,
degrees of freedom <= 0, and the messages for arguments of the wrong kind."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lstm as tl


def _both(torch, values, device, requires_grad=True):
    """The same float64 values as a tinygrad-lstm leaf and a torch leaf."""
    array = np.asarray(values, dtype=np.float64)
    return (tl.Tensor(array, requires_grad=requires_grad, device=device),
            torch.tensor(array, requires_grad=requires_grad))


def _assert_same(ours, theirs, what: str) -> None:
    """Equal values, with NaN and +-inf in the same places."""
    expected = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    np.testing.assert_allclose(ours.detach().numpy() if isinstance(ours, tl.Tensor) else ours, expected,
                               rtol=1e-12, atol=0, equal_nan=True, err_msg=what)


def _grad_pair(ours, theirs, x, tx, seed=0):
    """Backward with one random upstream gradient on both sides."""
    upstream = np.random.default_rng(seed).standard_normal(ours.shape)
    ours.backward(tl.Tensor(upstream, dtype=np.float64, device=ours.device))
    import torch as _torch

    theirs.backward(_torch.tensor(upstream))
    _assert_same(x.grad, tx.grad, "gradient")


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch warns about degrees of freedom <= 0
@pytest.mark.parametrize("values", [[1.0, 1.0, 1.0], [[2.0, 2.0], [1.0, 3.0]], [5.0], [[-0.0, 0.0, 0.0]]])
@pytest.mark.parametrize("op", ["std", "var"])
@pytest.mark.parametrize("correction", [0, 1, 2, 3])
def test_var_and_std_match_pytorch_for_constant_inputs_and_any_correction(torch, device, values, op, correction):
    """A constant input's std has gradient 0 (not 0 * inf = NaN); correction >= N divides by 0 (inf, NaN at 0/0)."""
    x, tx = _both(torch, values, device)
    for axis in (None, -1):
        x.grad, tx.grad = None, None
        kwargs = {} if axis is None else {"axis": axis}
        ours = getattr(x, op)(correction=correction, **kwargs)
        theirs = getattr(tx, op)(correction=correction, **({} if axis is None else {"dim": axis}))
        _assert_same(ours, theirs, f"{op} forward")
        n = x.numel() if axis is None else x.shape[-1]
        if correction >= n and axis is None and op == "var":
            continue  # PyTorch's full-reduction var gradient drops the sign of x - mean; we keep it, as along dims
        if correction > n:
            continue  # PyTorch divides the gradient by N - correction < 0 while the value divides by 0
        _grad_pair(ours, theirs, x, tx)


def test_std_of_a_constant_has_zero_gradient_not_nan(device):
    x = tl.Tensor([1.0, 1.0, 1.0], requires_grad=True, device=device)
    x.std().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_var_over_empty_and_0d_is_nan_as_pytorch(torch, device):
    for shape, axis in [((0,), None), ((2, 0), 1), ((0, 3), 1), ((), None)]:
        x, tx = _both(torch, np.ones(shape), device)
        for op in ("var", "std"):
            ours = getattr(x, op)(axis=axis)
            theirs = getattr(tx, op)(**({} if axis is None else {"dim": axis}))
            assert ours.shape == tuple(theirs.shape)
            _assert_same(ours, theirs, f"{op} of shape {shape}")


@pytest.mark.parametrize(
    "base, exponent",
    [
        ([0.0, 1.0, -2.0, 0.5], [0.0, 0.0, 0.0, 0.0]),  # x ** 0: gradient 0 everywhere, also at x = 0
        ([0.0, 1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 0.0]),  # x ** x at 0
        ([0.0, 0.0, 0.0, 0.0, 0.0], [-1.0, -2.0, 0.0, 1.0, 0.5]),  # 0 ** x: d/dx is -inf for x < 0
        ([-1.0, -2.0, 3.0, 0.0], [2.0, 3.0, -1.0, -0.5]),  # negative bases: NaN d/dexponent
    ],
)
def test_pow_values_and_gradients_match_pytorch_at_zero(torch, device, base, exponent):
    with np.errstate(divide="ignore", invalid="ignore"):
        a, ta = _both(torch, base, device)
        b, tb = _both(torch, exponent, device)
        ours, theirs = a**b, ta**tb
        _assert_same(ours, theirs, "pow forward")
        upstream = np.random.default_rng(1).standard_normal(ours.shape)
        ours.backward(tl.Tensor(upstream, dtype=np.float64, device=device))
        theirs.backward(torch.tensor(upstream))
    _assert_same(a.grad, ta.grad, "d/dbase")
    _assert_same(b.grad, tb.grad, "d/dexponent")


def test_x_pow_0_and_x_pow_x_have_finite_gradients_at_zero(device):
    x = tl.Tensor([0.0, 2.0], requires_grad=True, dtype=np.float64, device=device)
    (x**0).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    x.grad = None
    (x**x).sum().backward()
    assert x.grad.numpy()[0] == 0.0


def test_pow_number_exponents_match_pytorch(torch, device):
    for exponent in (0, 0.0, 1, 2, -1, 0.5):
        with np.errstate(divide="ignore", invalid="ignore"):
            x, tx = _both(torch, [0.0, 1.5, -2.0], device)
            ours, theirs = x**exponent, tx**exponent
            _assert_same(ours, theirs, f"x ** {exponent}")
            _grad_pair(ours, theirs, x, tx)


def test_integers_to_negative_integer_powers_are_refused_clearly(device):
    x = tl.Tensor([1, 2], dtype=np.int64, device=device)
    with pytest.raises(ValueError, match="integers to negative integer powers.*float"):
        x**-1
    np.testing.assert_array_equal((x**2).detach().numpy(), [1, 4])


@pytest.mark.parametrize("op", ["exp", "log", "sqrt", "tanh", "sigmoid", "softmax", "log_softmax", "logsumexp",
                                "var", "std", "mean"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_float_valued_ops_on_integer_tensors_give_float32(torch, device, op, dtype):
    values = np.array([1, 2, 3]).astype(dtype)
    with np.errstate(divide="ignore"):
        ours = getattr(tl.Tensor(values, device=device), op)()
    assert ours.dtype == np.float32, f"{op} of {np.dtype(dtype)} gives {ours.dtype}"
    theirs = getattr(torch.tensor(values.astype(np.float32)), op)(*([0] if "soft" in op or "sum" in op else []))
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=1e-6)


def test_division_and_unary_ops_agree_on_the_dtype_of_integers(device):
    x = tl.Tensor([1, 2], dtype=np.int64, device=device)
    assert (x / 2).dtype == x.exp().dtype == x.log().dtype == np.float32


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_axis_and_of_a_0d_tensor_match_pytorch(torch, device, op):
    for shape, axis in [((2, 0), 1), ((2, 0), 0), ((0, 3), 1), ((0,), 0), ((), 0), ((), -1)]:
        x, tx = _both(torch, np.full(shape, 0.5), device)
        ours, theirs = getattr(x, op)(axis=axis), getattr(tx, op)(dim=axis)
        assert ours.shape == tuple(theirs.shape), (op, shape, axis)
        _assert_same(ours, theirs, f"{op} of shape {shape} along {axis}")
        _grad_pair(ours, theirs, x, tx)


def test_logsumexp_over_an_empty_axis_is_minus_inf_and_of_a_0d_tensor_is_itself(torch, device):
    for shape, axis in [((2, 0), 1), ((0, 3), 1), ((0,), None), ((2, 0), None), ((), None), ((), 0)]:
        x, tx = _both(torch, np.full(shape, 0.25), device)
        ours = x.logsumexp(axis=axis)
        theirs = tx.logsumexp(dim=tuple(range(tx.ndim)) if axis is None else axis)
        assert ours.shape == tuple(theirs.shape)
        _assert_same(ours, theirs, f"logsumexp of shape {shape}")
        _grad_pair(ours, theirs, x, tx)


def test_logsumexp_keeps_nan_and_minus_inf(torch, device):
    for values in ([float("-inf"), float("-inf")], [float("nan"), 1.0], [float("inf"), 1.0]):
        x, tx = _both(torch, values, device, requires_grad=False)
        with np.errstate(invalid="ignore"):
            _assert_same(x.logsumexp(), tx.logsumexp(0), f"logsumexp{values}")


def test_axis_of_the_wrong_type_is_named(device):
    x = tl.Tensor([[1.0, 2.0]], device=device)
    calls = {"sum": lambda: x.sum(axis=1.0), "mean": lambda: x.mean(axis="0"), "max": lambda: x.max(axis=(0, 1.5)),
             "min": lambda: x.min(axis=1.0), "var": lambda: x.var(axis=1.0), "std": lambda: x.std(axis=1.0),
             "logsumexp": lambda: x.logsumexp(axis=[0.0])}
    for op, call in calls.items():
        named = "(mean|sum)" if op == "mean" else op  # Tensor.mean is a sum divided by the count
        with pytest.raises(TypeError, match=rf"^{named}: axis must be an integer or a tuple of integers, got"):
            call()
    with pytest.raises(ValueError, match=r"^sum: axis 2 is out of range for a tensor of 2 dimension"):
        x.sum(axis=2)


def test_python_integers_too_large_for_64_bits(device):
    big = tl.Tensor([2**70], device=device)  # no dtype: a float32, as any other Python number (torch.Tensor too)
    assert big.dtype == np.float32 and big.item() == pytest.approx(2.0**70)
    with pytest.raises(OverflowError, match=r"dtype int64: the integer 1180591620717411303424 does not fit"):
        tl.Tensor([1, 2**70], dtype=np.int64, device=device)
    with pytest.raises(OverflowError, match=r"dtype int64: the integer 9223372036854775808 does not fit"):
        tl.Tensor([2**63], dtype=np.int64, device=device)  # NumPy would wrap it to -2**63 without a word
    with pytest.raises(OverflowError, match=r"float32: the integer 100000000000\.\.\. \(401 digits\)"):
        tl.Tensor([[10**400]], device=device)


# ---------------------------------------------------------------- detect_anomaly names the op that made the NaN


def test_anomaly_in_a_leaf_is_blamed_on_the_leaf_not_on_the_op_that_passes_it_on(device):
    x = tl.Tensor([1.0, float("nan")], requires_grad=True, name="x", device=device)
    with tl.detect_anomaly(), pytest.raises(FloatingPointError) as error:
        x.reshape(2, 1)
    message = str(error.value)
    assert "input 0 of op 'Reshape' already holds NaN" in message and "'x' of shape (2,) is a leaf" in message
    assert "produced" not in message


def test_anomaly_from_before_detect_anomaly_names_the_op_that_made_it(device):
    x = tl.Tensor([-1.0, 1.0], requires_grad=True, device=device)
    with np.errstate(invalid="ignore"), tl.name_scope("gate"):
        y = x.log()  # NaN, made while anomaly mode was off
    with tl.detect_anomaly(), pytest.raises(FloatingPointError,
                                            match=r"input 0 of op 'Mul'.*made by op 'Log' in name scope 'gate' "
                                                  r"before detect_anomaly was on"):
        y * 2


def test_anomaly_is_blamed_on_the_op_whose_inputs_were_finite(device):
    x = tl.Tensor([1.0, -1.0], requires_grad=True, device=device)
    with tl.detect_anomaly(), np.errstate(invalid="ignore"), pytest.raises(
            FloatingPointError, match=r"the forward of op 'Sqrt' produced NaN or Inf from finite inputs"):
        (x * 2).sqrt().reshape(2, 1).sum()


def test_anomaly_in_the_given_gradient_is_named(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    y = x * 2
    with tl.detect_anomaly(), pytest.raises(FloatingPointError, match=r"gradient given to backward\(\) holds NaN"):
        y.backward(tl.Tensor([float("nan"), 1.0], device=device))


def test_anomaly_in_backward_from_a_nan_leaf_is_blamed_on_the_leaf(device):
    x = tl.Tensor([1.0, 2.0], requires_grad=True, device=device)
    w = tl.Tensor([float("inf"), 1.0], name="w", device=device)
    loss = (x * w).sum()  # built before anomaly mode; d loss / dx = w holds Inf
    with tl.detect_anomaly(), pytest.raises(FloatingPointError,
                                            match=r"input 1 of op 'Mul' already holds NaN or Inf \(seen in its "
                                                  r"backward\): the tensor 'w' of shape \(2,\) is a leaf"):
        loss.backward()


def test_anomaly_when_finite_gradients_sum_to_inf(device):
    x = tl.Tensor([1e-30], requires_grad=True, device=device)
    z = x * 1.0
    loss = (z * 2e38).sum() + (z * 2e38).sum()  # each path's gradient is 2e38; their float32 sum is not finite
    with tl.detect_anomaly(), np.errstate(over="ignore"), pytest.raises(
            FloatingPointError, match=r"reaching output 0 of op 'Mul' are finite, but their sum overflowed"):
        loss.backward()


def test_nan_gradients_stay_out_of_the_side_that_lost_as_pytorch(torch, device):
    """ReLU, clip, maximum and minimum pick gradients with `where`: 0 * NaN would leak NaN where PyTorch has 0."""
    nan = float("nan")
    cases = [
        (lambda x, y: x.relu(), lambda x, y: x.relu()),
        (lambda x, y: x.clip(-1.0, 1.5), lambda x, y: x.clamp(-1.0, 1.5)),
        (lambda x, y: tl.maximum(x, y), lambda x, y: x.maximum(y)),
        (lambda x, y: tl.minimum(x, y), lambda x, y: x.minimum(y)),
    ]
    for ours_fn, theirs_fn in cases:
        x, tx = _both(torch, [nan, -1.0, 0.0, 2.0, 1.0], device)
        y, ty = _both(torch, [1.0, nan, 0.0, 1.0, 3.0], device)
        ours, theirs = ours_fn(x, y), theirs_fn(tx, ty)
        _assert_same(ours, theirs, "forward")
        upstream = np.array([1.0, nan, nan, 2.0, nan])
        ours.backward(tl.Tensor(upstream, dtype=np.float64, device=device))
        theirs.backward(torch.tensor(upstream))
        _assert_same(x.grad, tx.grad, "gradient of x")
        if ty.grad is not None:
            _assert_same(y.grad, ty.grad, "gradient of y")


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_leaves_the_callers_tensors_alone_and_takes_non_leaves(device):
    x = tl.Tensor([0.5, -1.5], dtype=np.float64, requires_grad=True, device=device)
    x.grad = tl.Tensor([7.0, 7.0], dtype=np.float64, device=device)
    data = x.array
    assert tl.gradcheck(lambda t: (t * t).tanh(), [x])
    assert x.array is data and x.grad.numpy().tolist() == [7.0, 7.0]
    y = x * 3  # the result of an op: checked as the input it is
    assert tl.gradcheck(lambda t: t.sigmoid(), [y])
    assert x.grad.numpy().tolist() == [7.0, 7.0]


def test_gradcheck_says_what_fn_must_return(device):
    x = tl.Tensor([0.5], dtype=np.float64, requires_grad=True, device=device)
    with pytest.raises(TypeError, match="fn must return a Tensor or a tuple of Tensors, got a float"):
        tl.gradcheck(lambda t: float(t.sum().item()), [x])


def test_integers_clamped_to_a_float_bound_become_float32_as_pytorch(torch, device):
    values = np.array([1, 2, 3])
    x, tx = tl.Tensor(values, dtype=np.int64, device=device), torch.tensor(values)
    for low, high in [(1.5, None), (1.0, None), (None, 2), (0, 2.5)]:
        ours, theirs = x.clip(low, high), tx.clamp(low, high)
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", ""), (low, high)
        np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())


def test_slices_with_float_or_zero_steps_are_named(device):
    x = tl.Tensor(np.ones((3, 4)), device=device)
    with pytest.raises(IndexError, match=r"slice slice\(None, None, 1\.5\) at axis 1: .*integers or None"):
        x[:, ::1.5]
    with pytest.raises(IndexError, match=r"slice slice\(0, 2\.0, None\) at axis 0"):
        x[0:2.0]
    with pytest.raises(IndexError, match=r"at axis 0: the step cannot be zero"):
        x[::0]
    assert x[np.int64(0) : np.int64(2)].shape == (2, 4)


SPECIAL = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e-300, 1e300]
ELEMENTWISE = {
    "neg": (lambda x: -x, lambda t: -t), "exp": (lambda x: x.exp(), lambda t: t.exp()),
    "log": (lambda x: x.log(), lambda t: t.log()), "sqrt": (lambda x: x.sqrt(), lambda t: t.sqrt()),
    "tanh": (lambda x: x.tanh(), lambda t: t.tanh()), "sigmoid": (lambda x: x.sigmoid(), lambda t: t.sigmoid()),
    "relu": (lambda x: x.relu(), lambda t: t.relu()), "abs": (lambda x: x.abs(), lambda t: t.abs()),
    "clip": (lambda x: x.clip(-1, 1), lambda t: t.clamp(-1, 1)), "square": (lambda x: x**2, lambda t: t**2),
    "pow0": (lambda x: x**0, lambda t: t**0), "reciprocal": (lambda x: 1 / x, lambda t: 1 / t),
    "exp2": (lambda x: 2**x, lambda t: 2**t), "zero_pow": (lambda x: 0**x, lambda t: 0**t),
    "negative_pow": (lambda x: (-2) ** x, lambda t: (-2) ** t),
}


@pytest.mark.parametrize("op", sorted(ELEMENTWISE))
def test_elementwise_ops_at_nan_inf_and_signed_zeros_match_pytorch(torch, device, op):
    ours_fn, theirs_fn = ELEMENTWISE[op]
    with np.errstate(all="ignore"):
        x, tx = _both(torch, SPECIAL, device)
        ours, theirs = ours_fn(x), theirs_fn(tx)
        _assert_same(ours, theirs, f"{op} forward")
        _grad_pair(ours, theirs, x, tx)


BINARY_OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b), "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b), "div": (lambda a, b: a / b, lambda a, b: a / b),
    "pow": (lambda a, b: a**b, lambda a, b: a**b),
    "maximum": (lambda a, b: tl.maximum(a, b), lambda a, b: a.maximum(b)),
    "minimum": (lambda a, b: tl.minimum(a, b), lambda a, b: a.minimum(b)),
}


@pytest.mark.parametrize("op", sorted(BINARY_OPS))
def test_binary_ops_on_every_pair_of_special_values_match_pytorch(torch, device, op):
    ours_fn, theirs_fn = BINARY_OPS[op]
    left, right = (grid.ravel() for grid in np.meshgrid(SPECIAL, SPECIAL))
    with np.errstate(all="ignore"):
        a, ta = _both(torch, left, device)
        b, tb = _both(torch, right, device)
        ours, theirs = ours_fn(a, b), theirs_fn(ta, tb)
        _assert_same(ours, theirs, f"{op} forward")
        upstream = np.random.default_rng(2).standard_normal(ours.shape)
        ours.backward(tl.Tensor(upstream, dtype=np.float64, device=device))
        theirs.backward(torch.tensor(upstream))
    _assert_same(a.grad, ta.grad, f"{op}: gradient of the left operand")
    _assert_same(b.grad, tb.grad, f"{op}: gradient of the right operand")
