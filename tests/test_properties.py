"""Property test: random compositions of the engine's ops, and their gradients, equal PyTorch's in float64.

Inputs include exact zeros, ties, size-1 and size-0 axes and 0-d tensors, where the edge cases live (ReLU and
abs at 0, x ** 0, max over ties, softmax over an empty axis, the std of a constant). NaN and Inf must appear
in the same places on both sides. Derandomized, with a bounded number of examples, so CI is stable and fast.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_lstm as tl

EDGE_VALUES = [0.0, 0.0, 1.0, -1.0, 0.5, -2.0, 2.0]  # exact zeros (twice as likely) and ties
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def arrays(draw, shape: tuple[int, ...]):
    edge = st.sampled_from(EDGE_VALUES)
    smooth = st.floats(-2.5, 2.5, allow_nan=False, allow_infinity=False)
    values = draw(st.lists(st.one_of(edge, smooth), min_size=math.prod(shape), max_size=math.prod(shape)))
    return np.array(values, dtype=np.float64).reshape(shape)


def _axis(draw, ndim: int):
    """None, one axis (maybe negative) or a tuple of axes, as NumPy's axis= and PyTorch's dim= take them."""
    if ndim == 0:
        return draw(st.sampled_from([None, 0, -1]))
    one = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return draw(st.one_of(st.none(), one, several))


def _dims(axis, ndim: int):
    """PyTorch's dim for our axis: None means every axis."""
    return tuple(range(ndim)) if axis is None else axis


def _count(shape, axis) -> int:
    if not shape:
        return 1
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


# Each step maps a pair (ours, theirs) to a pair; `draw` picks its parameters; leaves collects new inputs.

UNARY = {
    "neg": (lambda x: -x, lambda t: -t),
    "exp": (lambda x: x.exp(), lambda t: t.exp()),
    "tanh": (lambda x: x.tanh(), lambda t: t.tanh()),
    "sigmoid": (lambda x: x.sigmoid(), lambda t: t.sigmoid()),
    "relu": (lambda x: x.relu(), lambda t: t.relu()),
    "abs": (lambda x: x.abs(), lambda t: t.abs()),
    "square": (lambda x: x * x, lambda t: t * t),
    "pow0": (lambda x: x**0, lambda t: t**0),
    "pow2": (lambda x: x**2, lambda t: t**2),
    "pow3": (lambda x: x**3.0, lambda t: t**3.0),
    "sqrt_of_square": (lambda x: (x * x).sqrt(), lambda t: (t * t).sqrt()),  # inf gradient at exact zeros
    "clip": (lambda x: x.clip(-1.0, 0.5), lambda t: t.clamp(-1.0, 0.5)),  # ties with the bounds
    "flatten": (lambda x: x.reshape(-1), lambda t: t.reshape(-1)),
    "transpose": (lambda x: x.transpose(), lambda t: t.permute(tuple(reversed(range(t.ndim))))),
    "unsqueeze": (lambda x: x.unsqueeze(0), lambda t: t.unsqueeze(0)),
    "first": (lambda x: x[..., :1] if x.ndim else x, lambda t: t[..., :1] if t.ndim else t),
}


def _reduction(draw, x, name: str):
    axis = _axis(draw, x.ndim)
    keepdims = draw(st.booleans())
    dims = _dims(axis, x.ndim)
    n = _count(x.shape, axis)
    if name in ("max", "min", "mean") and n == 0:
        name = "sum"  # no max of nothing (both refuse); the mean of nothing is NaN, tested on its own
    if name == "sum":
        return (lambda a: a.sum(axis=axis, keepdims=keepdims), lambda t: t.sum(dim=dims, keepdim=keepdims))
    if name == "mean":
        return (lambda a: a.mean(axis=axis, keepdims=keepdims), lambda t: t.mean(dim=dims, keepdim=keepdims))
    if name in ("max", "min"):
        torch_name = "amax" if name == "max" else "amin"  # ties share the gradient evenly, as ours
        return (lambda a: getattr(a, name)(axis=axis, keepdims=keepdims),
                lambda t: getattr(t, torch_name)(dim=dims, keepdim=keepdims))
    if name == "logsumexp":
        return (lambda a: a.logsumexp(axis=axis, keepdims=keepdims), lambda t: t.logsumexp(dim=dims, keepdim=keepdims))
    correction = draw(st.sampled_from([0, 1])) if n >= 2 else 0
    if n == 0:
        name = "sum"
        return (lambda a: a.sum(axis=axis, keepdims=keepdims), lambda t: t.sum(dim=dims, keepdim=keepdims))
    return (lambda a: getattr(a, name)(axis=axis, keepdims=keepdims, correction=correction),
            lambda t: getattr(t, name)(dim=dims, keepdim=keepdims, correction=correction))


def _softmax(draw, x, name: str):
    axis = draw(st.integers(-max(x.ndim, 1), max(x.ndim, 1) - 1))
    return (lambda a: getattr(a, name)(axis=axis), lambda t: getattr(t, name)(dim=axis))


@st.composite
def _broadcast_partner(draw, shape):
    """A shape that broadcasts with `shape`: some axes 1, maybe fewer leading axes."""
    drop = draw(st.integers(0, len(shape)))
    return tuple(draw(st.sampled_from([n, 1])) for n in shape[drop:])


BINARY = {
    "add": (lambda a, b: a + b, lambda s, t: s + t),
    "sub": (lambda a, b: a - b, lambda s, t: s - t),
    "mul": (lambda a, b: a * b, lambda s, t: s * t),
    "div": (lambda a, b: a / (b * b + 1), lambda s, t: s / (t * t + 1)),
    "maximum": (lambda a, b: tl.maximum(a, b), lambda s, t: s.maximum(t)),
    "minimum": (lambda a, b: tl.minimum(a, b), lambda s, t: s.minimum(t)),
    "pow": (lambda a, b: a ** b, lambda s, t: s**t),  # 0 ** negative, negative ** fractional: inf and NaN
    "where": (lambda a, b: tl.where(a > b, a, b * 2), lambda s, t: s.where(s > t, t * 2)),
}


def _torch():
    import torch  # only reached inside the test, which the `torch` fixture skips when PyTorch is missing

    return torch


def _structural(draw, shape, leaves):
    """Ops that move elements around: matmul, cat, stack, split, repeated integer indices, expand."""
    ndim = len(shape)
    name = draw(st.sampled_from(["matmul", "cat", "stack", "split", "repeat_index", "expand"]))
    if ndim == 0 or (name == "repeat_index" and shape[0] == 0):
        name = "expand"
    if name == "matmul":
        leaves.append(draw(arrays((shape[-1], draw(st.sampled_from([0, 1, 2]))))))
        return name, (lambda a, b: a @ b, lambda s, t: s @ t)
    if name == "cat":
        axis = draw(st.integers(-ndim, ndim - 1))
        return name, (lambda a: tl.cat([a, a * 2], axis=axis), lambda t: _torch().cat([t, t * 2], axis))
    if name == "stack":
        axis = draw(st.integers(-ndim - 1, ndim))
        leaves.append(draw(arrays(shape)))
        return name, (lambda a, b: tl.stack([a, b], axis=axis), lambda s, t: _torch().stack([s, t], axis))
    if name == "split":
        axis = draw(st.integers(0, ndim - 1))
        size = draw(st.integers(1, 3))
        return name, (lambda a: a.split(size, axis=axis)[-1], lambda t: t.split(size, dim=axis)[-1])
    if name == "repeat_index":
        index = draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=0, max_size=4))
        return name, (lambda a: a[index], lambda t: t[index])
    return name, (lambda a: a.unsqueeze(0).expand(2, *a.shape), lambda t: t.unsqueeze(0).expand(2, *t.shape))


@st.composite
def programs(draw):
    """Leaves (as arrays) and a list of steps, each a pair of functions: ours and PyTorch's."""
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 1, 2, 3]), min_size=0, max_size=3)))
    leaves = [draw(arrays(shape))]
    steps = []
    current = np.zeros(shape)  # tracks the shape only
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "reduce", "softmax", "structural"]))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            ours, theirs = UNARY[name]
            steps.append(("unary", name, ours, theirs))
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            partner = draw(_broadcast_partner(current.shape))
            if name == "pow":
                other = draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, 0.5, 3.0]),
                                      min_size=math.prod(partner), max_size=math.prod(partner)))
                leaves.append(np.array(other, dtype=np.float64).reshape(partner))
            else:
                leaves.append(draw(arrays(partner)))
            ours, theirs = BINARY[name]
            steps.append(("binary", name, ours, theirs, len(leaves) - 1))
        elif kind == "reduce":
            name = draw(st.sampled_from(["sum", "mean", "max", "min", "logsumexp", "var", "std"]))
            ours, theirs = _reduction(draw, current, name)
            steps.append(("unary", name, ours, theirs))
        elif kind == "structural":
            before = len(leaves)
            name, (ours, theirs) = _structural(draw, current.shape, leaves)
            takes_leaf = len(leaves) > before
            steps.append(("binary", name, ours, theirs, before) if takes_leaf else ("unary", name, ours, theirs))
        else:
            name = draw(st.sampled_from(["softmax", "log_softmax"]))
            ours, theirs = _softmax(draw, current, name)
            steps.append(("unary", name, ours, theirs))
        with np.errstate(all="ignore"):
            current = _run(steps[-1:], current, [np.zeros(leaf.shape) for leaf in leaves], numpy_shapes=True)
    return leaves, steps


def _run(steps, x, leaves, numpy_shapes=False, torch_side=False):
    """Apply `steps` to x; `leaves` are the inputs binary steps take. With numpy_shapes, only shapes matter."""
    if numpy_shapes:
        t = tl.Tensor(x, dtype=np.float64)
        others = [tl.Tensor(leaf, dtype=np.float64) for leaf in leaves]
        for step in steps:
            t = step[2](t) if step[0] == "unary" else step[2](t, others[step[4]])
        return np.zeros(t.shape)
    for step in steps:
        fn = step[3] if torch_side else step[2]
        x = fn(x) if step[0] == "unary" else fn(x, leaves[step[4]])
    return x


def _compare(ours, theirs, what: str) -> None:
    expected = theirs.detach().numpy()
    actual = ours.detach().numpy() if isinstance(ours, tl.Tensor) else ours
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != PyTorch's {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=what)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PyTorch's warnings about degrees of freedom
@PROPERTY
@given(program=programs(), seed=st.integers(0, 2**16))
def test_random_compositions_and_their_gradients_match_pytorch(torch, device, program, seed):
    leaves, steps = program
    ours = [tl.Tensor(leaf, dtype=np.float64, requires_grad=True, device=device) for leaf in leaves]
    theirs = [torch.tensor(leaf, requires_grad=True) for leaf in leaves]
    names = " -> ".join(step[1] for step in steps)
    with np.errstate(all="ignore"):
        out = _run(steps, ours[0], ours)
        expected = _run(steps, theirs[0], theirs, torch_side=True)
        _compare(out, expected, f"forward of {names}")
        upstream = np.random.default_rng(seed).standard_normal(out.shape)
        out.backward(tl.Tensor(upstream, dtype=np.float64, device=device))
        expected.backward(torch.tensor(upstream))
    for i, (leaf, reference) in enumerate(zip(ours, theirs, strict=True)):
        grad = np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.numpy()
        _compare(grad, reference.grad if reference.grad is not None else torch.zeros(reference.shape),
                 f"gradient of input {i} through {names}")
