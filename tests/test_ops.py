"""Every op of the engine: values against NumPy, gradients by tl.gradcheck in float64, values and
vector-Jacobian products against PyTorch, and float32 kept through every output and gradient.
Hypothesis draws random shapes and broadcast pairs for the elementwise ops and reductions."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_lstm as tl


@dataclass(frozen=True)
class Case:
    """One op applied to float inputs: ours (on tl.Tensors), NumPy's reference, PyTorch's spelling."""

    name: str
    ours: Callable
    reference: Callable  # on NumPy arrays
    torch: Callable | None  # (torch module, *torch tensors); None: same spelling as `ours`
    shapes: tuple
    positive: tuple = ()  # inputs that must be > 0 (log, sqrt, a divisor, the base of a power)

    def __str__(self) -> str:
        return self.name


def _dims(axis, ndim):
    """PyTorch's dim for NumPy's axis (None: every axis)."""
    return tuple(range(ndim)) if axis is None else axis


def _np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _np_log_softmax(a, axis):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


BROADCAST_PAIRS = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((2, 1, 4), (3, 1))]

CASES: list[Case] = []

for pair in BROADCAST_PAIRS:
    tag = "x".join(map(str, pair[0])) + "_" + "x".join(map(str, pair[1]))
    CASES += [
        Case(f"add-{tag}", lambda a, b: a + b, lambda a, b: a + b, None, pair),
        Case(f"sub-{tag}", lambda a, b: a - b, lambda a, b: a - b, None, pair),
        Case(f"mul-{tag}", lambda a, b: a * b, lambda a, b: a * b, None, pair),
        Case(f"div-{tag}", lambda a, b: a / b, lambda a, b: a / b, None, pair, positive=(1,)),
        Case(f"pow-{tag}", lambda a, b: a**b, lambda a, b: a**b, None, pair, positive=(0,)),
        Case(f"maximum-{tag}", tl.maximum, np.maximum, lambda T, a, b: T.maximum(a, b), pair),
        Case(f"minimum-{tag}", tl.minimum, np.minimum, lambda T, a, b: T.minimum(a, b), pair),
    ]

SCALAR_FORMS = {
    "x+2": lambda a: a + 2, "2+x": lambda a: 2 + a, "x-2.5": lambda a: a - 2.5, "2.5-x": lambda a: 2.5 - a,
    "x*3": lambda a: a * 3, "3*x": lambda a: 3 * a, "x/4": lambda a: a / 4, "x**2": lambda a: a**2,
    "x**3": lambda a: a**3, "2**x": lambda a: 2**a, "neg": lambda a: -a,
}
CASES += [Case(name, f, f, None, ((3, 4),)) for name, f in SCALAR_FORMS.items()]
CASES += [
    Case("4/x", lambda a: 4 / a, lambda a: 4 / a, None, ((3, 4),), positive=(0,)),
    Case("x**0.5", lambda a: a**0.5, lambda a: a**0.5, None, ((3, 4),), positive=(0,)),
]

UNARY = [
    ("exp", lambda a: a.exp(), np.exp, ()),
    ("log", lambda a: a.log(), np.log, (0,)),
    ("sqrt", lambda a: a.sqrt(), np.sqrt, (0,)),
    ("tanh", lambda a: a.tanh(), np.tanh, ()),
    ("sigmoid", lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), ()),
    ("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0), ()),
    ("abs", lambda a: a.abs(), np.abs, ()),
    ("clip", lambda a: a.clip(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), ()),
    ("clip-min", lambda a: a.clip(min=-0.5), lambda a: np.clip(a, -0.5, None), ()),
    ("clip-max", lambda a: a.clip(max=0.5), lambda a: np.clip(a, None, 0.5), ()),
]
CASES += [Case(name, f, ref, None, ((3, 4),), positive=pos) for name, f, ref, pos in UNARY]

MATMUL_PAIRS = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (5, 3, 4)),
                ((5, 2, 3), (3, 4)), ((2, 1, 2, 3), (5, 3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,))]
CASES += [Case(f"matmul-{a}@{b}", lambda a, b: a @ b, lambda a, b: a @ b, None, (a, b)) for a, b in MATMUL_PAIRS]


def _reductions(axis, keepdims):
    k = keepdims
    return [
        ("sum", lambda a: a.sum(axis=axis, keepdims=k), lambda a: a.sum(axis=axis, keepdims=k),
         lambda T, a: a.sum(dim=_dims(axis, a.ndim), keepdim=k)),
        ("mean", lambda a: a.mean(axis=axis, keepdims=k), lambda a: a.mean(axis=axis, keepdims=k),
         lambda T, a: a.mean(dim=_dims(axis, a.ndim), keepdim=k)),
        ("max", lambda a: a.max(axis=axis, keepdims=k), lambda a: a.max(axis=axis, keepdims=k),
         lambda T, a: a.amax(dim=_dims(axis, a.ndim), keepdim=k)),
        ("min", lambda a: a.min(axis=axis, keepdims=k), lambda a: a.min(axis=axis, keepdims=k),
         lambda T, a: a.amin(dim=_dims(axis, a.ndim), keepdim=k)),
        ("logsumexp", lambda a: a.logsumexp(axis=axis, keepdims=k),
         lambda a: np.log(np.exp(a).sum(axis=axis, keepdims=k)),
         lambda T, a: T.logsumexp(a, dim=_dims(axis, a.ndim), keepdim=k)),
        ("var", lambda a: a.var(axis=axis, keepdims=k), lambda a: a.var(axis=axis, keepdims=k, ddof=1),
         lambda T, a: a.var(dim=_dims(axis, a.ndim), keepdim=k)),
        ("std", lambda a: a.std(axis=axis, keepdims=k), lambda a: a.std(axis=axis, keepdims=k, ddof=1),
         lambda T, a: a.std(dim=_dims(axis, a.ndim), keepdim=k)),
    ]


for axis in (None, 0, -1, (0, 2)):
    for keepdims in (False, True):
        for name, f, ref, tf in _reductions(axis, keepdims):
            CASES.append(Case(f"{name}-axis{axis}-keep{keepdims}", f, ref, tf, ((2, 3, 4),)))

for axis in (-1, 0, 1):
    CASES += [
        Case(f"softmax-axis{axis}", lambda a, ax=axis: a.softmax(axis=ax), lambda a, ax=axis: _np_softmax(a, ax),
             lambda T, a, ax=axis: a.softmax(dim=ax), ((2, 3, 4),)),
        Case(f"log_softmax-axis{axis}", lambda a, ax=axis: a.log_softmax(axis=ax),
             lambda a, ax=axis: _np_log_softmax(a, ax), lambda T, a, ax=axis: a.log_softmax(dim=ax), ((2, 3, 4),)),
    ]

CASES += [
    Case("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), None, ((2, 3, 4),)),
    Case("reshape-tuple-infer", lambda a: a.reshape((3, -1)), lambda a: a.reshape((3, -1)), None, ((2, 3, 4),)),
    Case("view", lambda a: a.view(-1), lambda a: a.reshape(-1), None, ((2, 3, 4),)),
    Case("transpose-reverse", lambda a: a.transpose(), lambda a: a.transpose(),
         lambda T, a: a.permute(2, 1, 0), ((2, 3, 4),)),
    Case("transpose-swap", lambda a: a.transpose(0, 2), lambda a: np.swapaxes(a, 0, 2), None, ((2, 3, 4),)),
    Case("T", lambda a: a.T, lambda a: a.T, None, ((3, 4),)),
    Case("permute", lambda a: a.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0), None, ((2, 3, 4),)),
    Case("squeeze-all", lambda a: a.squeeze(), lambda a: a.squeeze(), None, ((2, 1, 4, 1),)),
    Case("squeeze-axis", lambda a: a.squeeze(1), lambda a: a.squeeze(1), None, ((2, 1, 4, 1),)),
    Case("squeeze-not-1", lambda a: a.squeeze(0), lambda a: a, None, ((2, 1, 4, 1),)),
    Case("unsqueeze", lambda a: a.unsqueeze(1), lambda a: np.expand_dims(a, 1), None, ((2, 3),)),
    Case("unsqueeze-last", lambda a: a.unsqueeze(-1), lambda a: np.expand_dims(a, -1), None, ((2, 3),)),
    Case("flatten", lambda a: a.flatten(), lambda a: a.reshape(-1), None, ((2, 3, 4),)),
    Case("flatten-from-1", lambda a: a.flatten(1), lambda a: a.reshape(2, -1), None, ((2, 3, 4),)),
    Case("expand", lambda a: a.expand(2, 3, 4), lambda a: np.broadcast_to(a, (2, 3, 4)), None, ((3, 1),)),
    Case("expand-keep", lambda a: a.expand(-1, 4), lambda a: np.broadcast_to(a, (3, 4)), None, ((3, 1),)),
]

MASK = np.array([[True, False, True, True, False]] * 2 + [[False] * 5, [True] * 5])
INDEXES = [
    ("int", lambda a: a[1], None),
    ("negative-int", lambda a: a[-1], None),
    ("two-ints", lambda a: a[1, 2], None),
    ("slice", lambda a: a[1:3], None),
    ("step", lambda a: a[::2, 1::2], None),
    ("column", lambda a: a[:, 1], None),
    ("none-ellipsis", lambda a: a[None, 1:, ...], None),
    ("ellipsis-int", lambda a: a[..., 2], None),
    ("list-repeats", lambda a: a[[0, 2, 0, 0]], None),
    ("array-2d", lambda a: a[np.array([[0, 1], [3, 3]])], lambda T, a: a[T.tensor([[0, 1], [3, 3]])]),
    ("pairs-repeats", lambda a: a[[0, 1, 0], [2, 2, 2]], None),
    ("slice-and-array", lambda a: a[1:, [4, 0, 4]], None),
    ("mask", lambda a: a[MASK], lambda T, a: a[T.tensor(MASK)]),
    ("row-mask", lambda a: a[MASK[:, 0]], lambda T, a: a[T.tensor(MASK[:, 0])]),
]
CASES += [Case(f"index-{name}", f, f, tf, ((4, 5),)) for name, f, tf in INDEXES]
CASES += [
    Case("index-negative-step", lambda a: a[::-1, ::-2], lambda a: a[::-1, ::-2], False, ((4, 5),)),
    Case("index-tensor", lambda a: a[tl.Tensor(np.array([2, 0, 2]), device=a.device)], lambda a: a[[2, 0, 2]],
         lambda T, a: a[T.tensor([2, 0, 2])], ((4, 5),)),
]

COND = np.array([[True, False, True, False]] * 2 + [[False, False, True, True]])
CASES += [
    Case("cat-axis0", lambda a, b: tl.cat([a, b]), lambda a, b: np.concatenate([a, b]),
         lambda T, a, b: T.cat([a, b]), ((2, 3), (4, 3))),
    Case("cat-axis1-three", lambda a, b, c: tl.cat([a, b, c], axis=1), lambda a, b, c: np.concatenate([a, b, c], 1),
         lambda T, a, b, c: T.cat([a, b, c], dim=1), ((2, 3), (2, 1), (2, 2))),
    Case("cat-axis-neg", lambda a, b: tl.cat((a, b), axis=-1), lambda a, b: np.concatenate([a, b], -1),
         lambda T, a, b: T.cat([a, b], dim=-1), ((2, 2, 3), (2, 2, 1))),
    Case("stack-axis0", lambda a, b: tl.stack([a, b]), lambda a, b: np.stack([a, b]),
         lambda T, a, b: T.stack([a, b]), ((2, 3), (2, 3))),
    Case("stack-axis-last", lambda a, b, c: tl.stack([a, b, c], axis=-1), lambda a, b, c: np.stack([a, b, c], -1),
         lambda T, a, b, c: T.stack([a, b, c], dim=-1), ((2, 3), (2, 3), (2, 3))),
    Case("split-size", lambda a: a.split(2, axis=1), lambda a: tuple(np.split(a, [2, 4], axis=1)),
         lambda T, a: a.split(2, dim=1), ((3, 5),)),
    Case("split-sizes", lambda a: a.split([1, 4], axis=1), lambda a: tuple(np.split(a, [1], axis=1)),
         lambda T, a: a.split([1, 4], dim=1), ((3, 5),)),
    Case("split-use-one", lambda a: a.split(2)[1], lambda a: a[2:4], lambda T, a: a.split(2)[1], ((5, 2),)),
    Case("chunk", lambda a: a.chunk(3), lambda a: tuple(np.split(a, [3, 6])), lambda T, a: a.chunk(3), ((7, 2),)),
    Case("where", lambda a, b: tl.where(tl.Tensor(COND, device=a.device), a, b), lambda a, b: np.where(COND, a, b),
         lambda T, a, b: T.where(T.tensor(COND), a, b), ((3, 4), (4,))),
    Case("where-number", lambda a: tl.where(tl.Tensor(COND, device=a.device), a, 0.5),
         lambda a: np.where(COND, a, 0.5), lambda T, a: T.where(T.tensor(COND), a, 0.5), ((3, 4),)),
    Case("where-cond-from-comparison", lambda a, b: tl.where(a > b, a, b), lambda a, b: np.where(a > b, a, b),
         lambda T, a, b: T.where(a > b, a, b), ((3, 4), (3, 4))),
]

# A few compositions, as the layers use them.
CASES += [
    Case("lstm-like-gates", lambda x, w, h: ((x @ w).sigmoid() * h.tanh()).sum(axis=1),
         lambda x, w, h: (1 / (1 + np.exp(-(x @ w))) * np.tanh(h)).sum(axis=1),
         lambda T, x, w, h: ((x @ w).sigmoid() * h.tanh()).sum(dim=1), ((2, 3), (3, 4), (2, 4))),
    Case("reuse-input", lambda a: a * a + a.exp() * a, lambda a: a * a + np.exp(a) * a, None, ((3,),)),
]

IDS = [c.name for c in CASES]


def _inputs(case: Case, seed: int = 0, dtype=np.float64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for i, shape in enumerate(case.shapes):
        a = rng.standard_normal(shape)
        arrays.append((np.abs(a) + 0.5 if i in case.positive else a).astype(dtype))
    return arrays


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, tuple | list) else (out,)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_numpy(case, device):
    arrays = _inputs(case)
    ours = _as_tuple(case.ours(*(tl.Tensor(a, device=device) for a in arrays)))
    expected = _as_tuple(case.reference(*arrays))
    assert len(ours) == len(expected)
    for o, e in zip(ours, expected, strict=True):
        assert o.shape == np.shape(e)
        assert o.device == tl.Tensor(0.0, device=device).device
        np.testing.assert_allclose(o.numpy(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case, device):
    inputs = [tl.Tensor(a, requires_grad=True, device=device) for a in _inputs(case)]
    assert tl.gradcheck(case.ours, inputs)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case, device, torch, dtype, rtol):
    """Values and the vector-Jacobian product for a random upstream gradient, against PyTorch (CPU)."""
    if case.torch is False:
        pytest.skip("PyTorch does not support this (negative slice steps)")
    arrays = _inputs(case, seed=1, dtype=dtype)
    ours_in = [tl.Tensor(a, requires_grad=True, device=device) for a in arrays]
    torch_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    ours = _as_tuple(case.ours(*ours_in))
    theirs = _as_tuple(case.torch(torch, *torch_in) if case.torch else case.ours(*torch_in))
    rng = np.random.default_rng(2)
    upstream = [rng.standard_normal(o.shape).astype(dtype) for o in ours]
    for o, t in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=rtol)
    sum(((o * tl.Tensor(u, device=device)).sum() for o, u in zip(ours, upstream, strict=True))).backward()
    sum(((t * torch.tensor(u)).sum() for t, u in zip(theirs, upstream, strict=True))).backward()
    for i, (a, b) in enumerate(zip(ours_in, torch_in, strict=True)):
        assert a.grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=rtol, err_msg=f"input {i}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32(case, device):
    """No silent promotion to float64 (NumPy 2's scalar rules) in any output or any gradient."""
    inputs = [tl.Tensor(a, requires_grad=True, device=device) for a in _inputs(case, dtype=np.float32)]
    outputs = _as_tuple(case.ours(*inputs))
    for o in outputs:
        assert o.dtype == np.float32, f"output is {o.dtype}"
    sum((o * 0.5).sum() for o in outputs).backward()
    for i, t in enumerate(inputs):
        assert t.grad is not None and t.grad.dtype == np.float32, f"gradient of input {i} is {t.grad.dtype}"
        assert t.grad.shape == t.shape


# ---------------------------------------------------------------- hypothesis: random shapes

BINARY = {
    "add": (lambda a, b: a + b, np.add, ()),
    "sub": (lambda a, b: a - b, np.subtract, ()),
    "mul": (lambda a, b: a * b, np.multiply, ()),
    "div": (lambda a, b: a / b, np.divide, (1,)),
    "pow": (lambda a, b: a**b, np.power, (0,)),
    "maximum": (tl.maximum, np.maximum, ()),
    "minimum": (tl.minimum, np.minimum, ()),
    "where": (lambda a, b: tl.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), ()),
}
HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("op", BINARY)
def test_broadcasting_binary_ops(device, op, shapes, seed):
    ours, reference, positive = BINARY[op]
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes.input_shapes]
    arrays = [np.abs(a) + 0.5 if i in positive else a for i, a in enumerate(arrays)]
    inputs = [tl.Tensor(a, requires_grad=True, device=device) for a in arrays]
    out = ours(*inputs)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.detach().numpy(), reference(*arrays), rtol=1e-12)
    assert tl.gradcheck(ours, inputs)
    ours(*inputs).sum().backward()
    for t in inputs:
        assert t.grad.shape == t.shape  # every gradient is reduced back to its input's shape


REDUCTIONS = {
    "sum": (lambda a, axis, k: a.sum(axis=axis, keepdims=k), lambda a, axis, k: a.sum(axis=axis, keepdims=k)),
    "mean": (lambda a, axis, k: a.mean(axis=axis, keepdims=k), lambda a, axis, k: a.mean(axis=axis, keepdims=k)),
    "max": (lambda a, axis, k: a.max(axis=axis, keepdims=k), lambda a, axis, k: a.max(axis=axis, keepdims=k)),
    "min": (lambda a, axis, k: a.min(axis=axis, keepdims=k), lambda a, axis, k: a.min(axis=axis, keepdims=k)),
    "logsumexp": (lambda a, axis, k: a.logsumexp(axis=axis, keepdims=k),
                  lambda a, axis, k: np.log(np.exp(a).sum(axis=axis, keepdims=k))),
}


@st.composite
def shape_and_axis(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axes = draw(st.none() | st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    if axes is not None and len(axes) == 1 and draw(st.booleans()):
        return shape, axes[0] - len(shape) if draw(st.booleans()) else axes[0]  # a single int, maybe negative
    return shape, None if axes is None else tuple(axes)


@HYPOTHESIS
@given(shape_axis=shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**16))
@pytest.mark.parametrize("op", REDUCTIONS)
def test_reductions_random_shapes(device, op, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    ours, reference = REDUCTIONS[op]
    a = np.random.default_rng(seed).standard_normal(shape)
    x = tl.Tensor(a, requires_grad=True, device=device)
    out = ours(x, axis, keepdims)
    expected = reference(a, axis, keepdims)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12)
    assert tl.gradcheck(lambda t: ours(t, axis, keepdims), [x])


# ---------------------------------------------------------------- op semantics beyond the table


def test_full_max_and_min_split_ties_evenly(device):
    x = tl.Tensor([[1.0, 3.0], [3.0, 3.0]], requires_grad=True, device=device)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 1 / 3], [1 / 3, 1 / 3]], rtol=1e-7)
    y = tl.Tensor([2.0, -1.0, -1.0], requires_grad=True, device=device)
    y.min().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [0, 0.5, 0.5])


def test_axis_max_splits_ties_within_each_slice(device):
    x = tl.Tensor([[1.0, 1.0], [0.0, 2.0]], requires_grad=True, device=device)
    x.max(axis=1).backward(tl.Tensor([1.0, 1.0], device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[0.5, 0.5], [0, 1]])


def test_maximum_and_minimum_ties_share_the_gradient(device, torch):
    a = tl.Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    b = tl.Tensor([1.0, 0.0, 3.0], requires_grad=True, device=device)
    (tl.maximum(a, b) + 2 * tl.minimum(a, b)).sum().backward()
    ta, tb = torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([1.0, 0.0, 3.0], requires_grad=True)
    (torch.maximum(ta, tb) + 2 * torch.minimum(ta, tb)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


def test_repeated_integer_indices_accumulate(device):
    x = tl.Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 1])


def test_relu_abs_clip_gradients_at_the_kinks(device, torch):
    """At 0 (and at the clip bounds) the subgradients are PyTorch's."""
    values = [-1.0, 0.0, 0.5, 1.0, 2.0]
    for name, ours, theirs in [
        ("relu", lambda t: t.relu(), lambda t: t.relu()),
        ("abs", lambda t: t.abs(), lambda t: t.abs()),
        ("clip", lambda t: t.clip(0.0, 1.0), lambda t: t.clamp(0.0, 1.0)),
    ]:
        x = tl.Tensor(values, requires_grad=True, device=device)
        tx = torch.tensor(values, requires_grad=True)
        ours(x).sum().backward()
        theirs(tx).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy(), err_msg=name)


def test_relu_gives_positive_zero(device):
    out = tl.Tensor([-2.0, 0.0], device=device).relu().numpy()
    assert not np.signbit(out).any()


def test_pow_exponent_gradient_at_zero_and_negative_base(device, torch):
    a = tl.Tensor([0.0, 2.0, -2.0], requires_grad=True, device=device)
    b = tl.Tensor([2.0, 3.0, 2.0], requires_grad=True, device=device)
    ta, tb = torch.tensor([0.0, 2.0, -2.0], requires_grad=True), torch.tensor([2.0, 3.0, 2.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        (a**b).sum().backward()
    (ta**tb).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy())  # 0 at a == 0, NaN for a < 0, as PyTorch


@contextlib.contextmanager
def _no_warnings():
    """Turn every warning inside the block into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_sigmoid_and_tanh_never_overflow_or_warn(device, op):
    """Any finite input, float32 and float64: no overflow, no warning, finite values and gradients."""
    for dtype in (np.float32, np.float64):
        big = np.finfo(dtype).max
        values = np.array([-big, -1e4, -1000.0, -100.0, -89.0, -20.0, 0.0, 20.0, 89.0, 100.0, 1000.0, 1e4, big], dtype)
        x = tl.Tensor(values, requires_grad=True, device=device)
        with np.errstate(over="raise", invalid="raise", divide="raise"), _no_warnings():
            y = getattr(x, op)()
            y.sum().backward()
        out = y.detach().numpy()
        assert np.isfinite(out).all() and np.isfinite(x.grad.numpy()).all()
        low, high = (0.0, 1.0) if op == "sigmoid" else (-1.0, 1.0)
        assert out[0] == low and out[-1] == high and out.dtype == dtype
        np.testing.assert_allclose(out[6], 0.5 if op == "sigmoid" else 0.0)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_is_stable_for_large_inputs(device, op, torch):
    values = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0], [1000.0, 1000.0, 999.0]])
    x = tl.Tensor(values, requires_grad=True, device=device)
    with _no_warnings():
        out = getattr(x, op)(axis=-1)
        out.sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    tout = getattr(tx, op)(dim=-1)
    tout.sum().backward()
    assert np.isfinite(out.detach().numpy()).all() and np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_split_pieces_without_gradient_count_as_zeros(device):
    x = tl.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True, device=device)
    first, second, third = x.split(1)
    (second * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [2, 2], [0, 0]])


def test_comparisons_are_bool_constants(device):
    x = tl.Tensor([1.0, 2.0, 3.0], requires_grad=True, device=device)
    for result in (x < 2, x <= 2, x > 2, x >= 2, x == 2, x != 2, 2 < x, x > tl.Tensor([0.0, 5.0, 1.0], device=device)):
        assert result.dtype == bool and not result.requires_grad and result.grad_fn is None
    np.testing.assert_array_equal((x >= 2).numpy(), [False, True, True])
    np.testing.assert_array_equal((2.5 > x).numpy(), [True, True, False])


def test_argmax_argmin_all_any(device):
    x = tl.Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], device=device)
    assert x.argmax().item() == 3 and x.argmin().item() == 4
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=0, keepdims=True).numpy(), [[0, 1, 0]])
    assert bool((x >= 0).all()) and not bool((x > 6).all()) and bool((x > 6).any())
    np.testing.assert_array_equal((x > 2).any(axis=0).numpy(), [True, True, True])


def test_mean_var_std_of_ints_and_corrections(device, torch):
    x = tl.Tensor(np.arange(6).reshape(2, 3), device=device)
    assert x.mean().dtype == np.float32 and x.mean().item() == 2.5
    y = np.random.default_rng(0).standard_normal((4, 5))
    t = tl.Tensor(y, device=device)
    np.testing.assert_allclose(t.var(axis=0, correction=0).numpy(), torch.tensor(y).var(dim=0, correction=0))
    np.testing.assert_allclose(t.std(axis=1, keepdims=True).numpy(), torch.tensor(y).std(dim=1, keepdim=True))
