"""The primitive ops: one small `Function` per op, forward and backward side by side.

Every op reaches its arrays through `self.xp` (NumPy or CuPy), so the same code runs on both.
Gradients are reduced back to each input's shape with `unbroadcast` and keep the input's dtype
(constants are made in the tensor's dtype, so NumPy never promotes float32 to float64).
Arrays that `backward` needs live in `self.saved`, which the backward walk frees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .backend import broadcast_view, move
from .errors import AxisError, ShapeError
from .graph import Function


def unbroadcast(grad, shape: tuple[int, ...]):
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def normalize_axes(axis, ndim: int, op: str = "") -> tuple[int, ...]:
    """`axis` (None, an int or a sequence of ints) as a sorted tuple of non-negative axes, checked.

    Errors start with `op` ("sum: axis 2 is out of range ..."), so they say which call was wrong.
    """
    where = f"{op}: " if op else ""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis) if isinstance(axis, Sequence) else None
    if axes is None or not all(isinstance(a, int | np.integer) for a in axes):
        raise TypeError(f"{where}axis must be an integer or a tuple of integers, got {axis!r}")
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise AxisError(f"{where}axis {a!r} is out of range for a tensor of {ndim} dimension(s)")
    if ndim == 0:
        return ()  # a 0-d tensor accepts axis 0 or -1, as PyTorch; there is nothing to reduce
    normalized = tuple(sorted(int(a) % ndim for a in axes))
    if len(set(normalized)) != len(normalized):
        raise AxisError(f"{where}axis {axis!r} names an axis twice")
    return normalized


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a reduction over `axes` has with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand_reduced(xp, grad, shape: tuple[int, ...], kept_shape: tuple[int, ...]):
    """Bring a reduction's gradient back to the input's shape (a broadcast view, not a copy)."""
    return broadcast_view(xp, grad.reshape(kept_shape), shape)


def _drop_axes(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _as_float(xp, a):
    """Float-valued ops compute integer and bool input in float32, as PyTorch (NumPy would pick float64).

    No gradient is lost: integer tensors cannot require grad.
    """
    return a if a.dtype.kind == "f" else a.astype(xp.float32)


def _max_kept(xp, a, axes: tuple[int, ...]):
    """The max over `axes` (kept) that exp() is shifted by; 0 over an empty axis, where there is none."""
    if any(a.shape[i] == 0 for i in axes):
        return xp.zeros(_kept_shape(a.shape, axes), dtype=a.dtype)
    return a.max(axis=axes, keepdims=True)


# ---------------------------------------------------------------- elementwise binary


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        return (
            unbroadcast(g, self.shapes[0]) if self.needs_grad[0] else None,
            unbroadcast(g, self.shapes[1]) if self.needs_grad[1] else None,
        )


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        return (
            unbroadcast(g, self.shapes[0]) if self.needs_grad[0] else None,
            unbroadcast(-g, self.shapes[1]) if self.needs_grad[1] else None,
        )


class Mul(Function):
    def forward(self, a, b):
        self.saved = (a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        return (
            unbroadcast(g * b, a.shape) if self.needs_grad[0] else None,
            unbroadcast(g * a, b.shape) if self.needs_grad[1] else None,
        )


class Div(Function):
    def forward(self, a, b):
        self.saved = (a, b)
        return a / b

    def backward(self, g):
        a, b = self.saved
        ga = g / b
        return (
            unbroadcast(ga, a.shape) if self.needs_grad[0] else None,
            unbroadcast(-ga * a / b, b.shape) if self.needs_grad[1] else None,
        )


class Pow(Function):
    """a ** b, with PyTorch's gradients at the edges: d/da is 0 where b == 0 (so x ** 0 and x ** x at 0 are not
    0 * inf = NaN); d/db is 0 where a == 0 and b >= 0, -inf where a == 0 and b < 0, NaN where a < 0."""

    def forward(self, a, b):
        if a.dtype.kind in "biu" and b.dtype.kind in "biu" and bool((b < 0).any()):
            raise ValueError("pow: integers to negative integer powers are not allowed, as in PyTorch; "
                             "make the base a float tensor first (.float())")
        out = a**b
        self.saved = (a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved
        xp = self.xp
        ga = gb = None
        if self.needs_grad[0]:
            exponent_zero = b == 0
            slope = b * a ** xp.where(exponent_zero, 1, b - 1)  # a ** -1 at a == 0 would warn, then be masked
            ga = unbroadcast(xp.where(exponent_zero, 0, g * slope), a.shape)
        if self.needs_grad[1]:
            positive = a > 0
            undefined = xp.where(a == 0, -xp.inf, xp.nan).astype(a.dtype, copy=False)  # log 0, log of a negative
            log_a = xp.where(positive, xp.log(xp.where(positive, a, 1)), undefined)
            flat = (a == 0) & (b >= 0)  # out is 0 or 1 there and does not move with b
            gb = unbroadcast(g * (xp.where(flat, 0, out) * xp.where(flat, 0, log_a)), b.shape)
        return ga, gb


def _tie_split(xp, g, a, b, loses):
    """The gradient one side of a max/min gets: all of it where it won, half at a tie, none where it lost.

    Chosen with `where`, not by multiplying with a 0/1 mask, so a NaN or Inf gradient does not leak into the
    side that lost (as PyTorch); a NaN input wins.
    """
    zero = xp.zeros((), dtype=g.dtype)
    return xp.where(loses, zero, xp.where(a == b, g / 2, g))


class Maximum(Function):
    """Elementwise max; where the inputs tie, each gets half of the gradient (as PyTorch)."""

    def forward(self, a, b):
        self.saved = (a, b)
        return self.xp.maximum(a, b)

    def backward(self, g):
        a, b = self.saved
        xp = self.xp
        return (unbroadcast(_tie_split(xp, g, a, b, a < b), a.shape) if self.needs_grad[0] else None,
                unbroadcast(_tie_split(xp, g, a, b, a > b), b.shape) if self.needs_grad[1] else None)


class Minimum(Function):
    """Elementwise min; ties share the gradient as in `Maximum`."""

    def forward(self, a, b):
        self.saved = (a, b)
        return self.xp.minimum(a, b)

    def backward(self, g):
        a, b = self.saved
        xp = self.xp
        return (unbroadcast(_tie_split(xp, g, a, b, a > b), a.shape) if self.needs_grad[0] else None,
                unbroadcast(_tie_split(xp, g, a, b, a < b), b.shape) if self.needs_grad[1] else None)


class Where(Function):
    """`cond ? a : b`; `cond` is a bool tensor that takes no gradient."""

    def forward(self, cond, a, b):
        self.saved = cond
        self.shapes = (a.shape, b.shape)
        return self.xp.where(cond, a, b)

    def backward(self, g):
        cond, zero = self.saved, self.xp.zeros((), dtype=g.dtype)
        return (
            None,
            unbroadcast(self.xp.where(cond, g, zero), self.shapes[0]) if self.needs_grad[1] else None,
            unbroadcast(self.xp.where(cond, zero, g), self.shapes[1]) if self.needs_grad[2] else None,
        )


class MatMul(Function):
    """NumPy's matmul: 1-D, 2-D, batched and broadcast batched."""

    def forward(self, a, b):
        self.saved = (a, b)
        return a @ b

    def backward(self, g):
        a, b = self.saved
        xp = self.xp
        if b.ndim == 1:  # the vector was treated as a column: put that axis back
            g = g[..., None]
        if a.ndim == 1:  # ... and as a row
            g = g[..., None, :]
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(g @ xp.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(xp.swapaxes(a2, -1, -2) @ g, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """x @ weight.T + every bias as one node (PyTorch's addmm), for x (..., in): no transposed weight node, no
    node per bias (a recurrent layer adds b_ih and b_hh here), and the rows of all leading axes in one matmul."""

    def forward(self, x, weight, *biases):
        self.saved = (x, weight)
        return linear_forward(self.xp, x, weight, biases)

    fresh_gradients = True

    def backward(self, g):
        return linear_backward(self.xp, g, *self.saved, self.needs_grad)


def linear_forward(xp, x, weight, biases):
    """x @ weight.T + the biases, for x (..., in): `Linear`'s forward (and the fused layers' input projection)."""
    out = xp.dot(_rows(x), weight.T)
    for bias in biases:
        out += bias
    return out.reshape(x.shape[:-1] + weight.shape[:1])


def linear_backward(xp, g, x, weight, needs: tuple[bool, ...]) -> tuple:
    """The gradients of x, weight and each bias of `linear_forward` (None where `needs` is False), each a new array."""
    g_rows = _rows(g)
    return (xp.dot(g_rows, weight).reshape(x.shape) if needs[0] else None,
            xp.dot(g_rows.T, _rows(x)) if needs[1] else None,
            *bias_gradients(g_rows, needs[2:]))


def bias_gradients(g_rows, needs: tuple[bool, ...]) -> list:
    """The gradient of each bias added to the rows g_rows is their column sum: summed once, copied for each further
    bias (an array per bias, as `Function.fresh_gradients` requires), None where not needed."""
    if True not in needs:
        return [None] * len(needs)
    total, first = g_rows.sum(axis=0), needs.index(True)
    return [None if not need else total if k == first else total.copy() for k, need in enumerate(needs)]


def _rows(a):
    """a (..., n) as a 2-D (rows, n) array (a view when a is contiguous): what a BLAS matmul takes."""
    return a if a.ndim == 2 else a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


# ---------------------------------------------------------------- elementwise unary


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(Function):
    def forward(self, a):
        a = _as_float(self.xp, a)
        self.saved = self.xp.exp(a)
        return self.saved

    def backward(self, g):
        return (g * self.saved,)


class Log(Function):
    def forward(self, a):
        a = _as_float(self.xp, a)
        self.saved = a
        return self.xp.log(a)

    def backward(self, g):
        return (g / self.saved,)


class Sqrt(Function):
    def forward(self, a):
        a = _as_float(self.xp, a)
        self.saved = self.xp.sqrt(a)
        return self.saved

    def backward(self, g):
        return (g / (2 * self.saved),)


class Tanh(Function):
    def forward(self, a):
        a = _as_float(self.xp, a)
        self.saved = self.xp.tanh(a)
        return self.saved

    def backward(self, g):
        y = self.saved
        return (g * (1 - y * y),)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed from e^-|x| so that no finite input overflows."""

    def forward(self, a):
        xp = self.xp
        a = _as_float(xp, a)
        e, y = xp.empty_like(a), xp.empty_like(a)  # arrays even for 0-d input, to work in place
        xp.abs(a, out=e)  # e^x / (1 + e^x) for x < 0, else 1 / (1 + e^-x): e^min(x, 0) / (1 + e^-|x|)
        xp.negative(e, out=e)
        xp.exp(e, out=e)
        e += 1
        xp.minimum(a, 0, out=y)
        xp.exp(y, out=y)
        y /= e
        self.saved = y
        return y

    def backward(self, g):
        y = self.saved
        return (g * y * (1 - y),)


class Relu(Function):
    """max(a, 0); the gradient is chosen with `where`, so a NaN gradient stays out where a <= 0 (as PyTorch)."""

    def forward(self, a):
        self.saved = ~(a <= 0)  # NaN passes its gradient on, as PyTorch
        return self.xp.maximum(a, 0)  # not a * mask, which gives -0.0 for negative inputs

    def backward(self, g):
        return (self.xp.where(self.saved, g, self.xp.zeros((), dtype=g.dtype)),)


class Abs(Function):
    def forward(self, a):
        if a.dtype.kind == "f":  # only floats take gradients
            self.saved = (a > 0).astype(a.dtype) - (a < 0)  # sign(a), but 0 at NaN (as PyTorch; NumPy's is NaN)
        return self.xp.abs(a)

    def backward(self, g):
        return (g * self.saved,)


class Clip(Function):
    """Clamp into [low, high]; the gradient passes where the input was inside (bounds included), as PyTorch.

    Integers clamped to a float bound become float32 (NumPy would round the bound into the integers)."""

    def forward(self, a, low=None, high=None):
        if a.dtype.kind in "biu" and any(isinstance(bound, float | np.floating) for bound in (low, high)):
            a = a.astype(self.xp.float32)  # integers clamped to a float bound become float32, as PyTorch
        inside = True
        if low is not None:
            inside = inside & (a >= low)
        if high is not None:
            inside = inside & (a <= high)
        self.saved = inside
        return self.xp.clip(a, low, high).astype(a.dtype, copy=False)

    def backward(self, g):
        return (self.xp.where(self.saved, g, self.xp.zeros((), dtype=g.dtype)),)


class Cast(Function):
    def forward(self, a, dtype=None):
        self.in_dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return (g.astype(self.in_dtype),)


class ToDevice(Function):
    """Copy between devices; the gradient travels back the other way."""

    def forward(self, a, device=None):
        self.in_device = self.device
        self.device = device  # the outputs live on the target device
        return move(a, device)

    def backward(self, g):
        return (move(g, self.in_device),)


# ---------------------------------------------------------------- reductions


class Sum(Function):
    def forward(self, a, axis=None, keepdims=False):
        axes = normalize_axes(axis, a.ndim, "sum")
        self.shapes = (a.shape, _kept_shape(a.shape, axes))
        return a.sum(axis=axes, keepdims=keepdims)

    def backward(self, g):
        return (_expand_reduced(self.xp, g, *self.shapes),)


class Max(Function):
    """Max over axes; tied maxima share the gradient evenly (as PyTorch's amax)."""

    def forward(self, a, axis=None, keepdims=False, minimum=False):
        self.axes = normalize_axes(axis, a.ndim, "min" if minimum else "max")
        if any(a.shape[i] == 0 for i in self.axes):
            raise ShapeError(f"{'min' if minimum else 'max'} over an empty axis of shape {a.shape} has no value")
        kept = a.min(axis=self.axes, keepdims=True) if minimum else a.max(axis=self.axes, keepdims=True)
        self.saved = (a, kept)
        return kept if keepdims else kept.reshape(_drop_axes(a.shape, self.axes))

    def backward(self, g):
        a, kept = self.saved
        hit = a == kept
        share = (hit / hit.sum(axis=self.axes, keepdims=True)).astype(g.dtype, copy=False)
        return (_expand_reduced(self.xp, g, a.shape, kept.shape) * share,)


class Min(Max):
    def forward(self, a, axis=None, keepdims=False):
        return super().forward(a, axis=axis, keepdims=keepdims, minimum=True)


class LogSumExp(Function):
    """log(sum(exp(a))) computed around the max, so +-1000 stay finite; -inf over an empty axis, as PyTorch."""

    def forward(self, a, axis=None, keepdims=False):
        xp = self.xp
        a = _as_float(xp, a)
        axes = normalize_axes(axis, a.ndim, "logsumexp")
        m = _max_kept(xp, a, axes)
        m = xp.where(xp.isfinite(m), m, 0)
        total = xp.exp(a - m).sum(axis=axes, keepdims=True)
        empty = total == 0  # all -inf, or an empty axis: log 0 = -inf, without NumPy's warning
        out = xp.where(empty, -xp.inf, xp.log(xp.where(empty, 1, total)) + m).astype(a.dtype, copy=False)
        self.saved = (a, out)
        return out if keepdims else out.reshape(_drop_axes(a.shape, axes))

    def backward(self, g):
        a, out = self.saved
        return (_expand_reduced(self.xp, g, a.shape, out.shape) * self.xp.exp(a - out),)


class Var(Function):
    """Variance over axes, dividing by max(N - correction, 0) as PyTorch: correction >= N gives inf (NaN where
    all values are equal) and an empty axis NaN."""

    def forward(self, a, axis=None, keepdims=False, correction=1):
        xp = self.xp
        a = _as_float(xp, a)
        axes = normalize_axes(axis, a.ndim, type(self).__name__.lower())
        count = math.prod(a.shape[i] for i in axes)
        kept = _kept_shape(a.shape, axes)
        self.dof, self.shapes = max(count - correction, 0), (a.shape, kept)
        if count == 0:
            centered, out = a, xp.full(kept, xp.nan, dtype=a.dtype)
        else:
            centered = a - a.sum(axis=axes, keepdims=True) / count
            squares = (centered * centered).sum(axis=axes, keepdims=True)
            out = squares / self.dof if self.dof else xp.where(squares > 0, xp.inf, xp.nan).astype(a.dtype)
        self.saved = (centered,)
        return out if keepdims else out.reshape(_drop_axes(a.shape, axes))

    def _var_backward(self, g, centered):
        """g * d var / d a = g * 2 (a - mean) / dof; with dof 0 that is +-inf, and NaN where it is 0 * inf."""
        xp = self.xp
        scaled = 2 * _expand_reduced(xp, g, *self.shapes) * centered
        if self.dof:
            return scaled / self.dof
        undefined = (scaled == 0) | xp.isnan(scaled)
        return xp.where(undefined, xp.nan, xp.copysign(xp.inf, scaled)).astype(g.dtype, copy=False)

    def backward(self, g):
        return (self._var_backward(g, self.saved[0]),)


class Std(Var):
    """sqrt(var); where the std is 0 (all values equal) the gradient is 0, as PyTorch, not 0 * inf = NaN."""

    def forward(self, a, axis=None, keepdims=False, correction=1):
        std = self.xp.sqrt(super().forward(a, axis=axis, keepdims=keepdims, correction=correction))
        self.saved += (std.reshape(self.shapes[1]),)
        return std

    def backward(self, g):
        xp = self.xp
        centered, std = self.saved
        g, zero = g.reshape(std.shape), std == 0
        g_var = xp.where(zero, 0, g / (2 * xp.where(zero, 1, std)))
        return (self._var_backward(g_var, centered),)


class Softmax(Function):
    """exp(a) / sum(exp(a)) along one axis, shifted by the max; an empty axis gives an empty result, a 0-d
    tensor 1 (as PyTorch)."""

    def forward(self, a, axis=-1):
        xp = self.xp
        a = _as_float(xp, a)
        self.axes = normalize_axes(axis, a.ndim, "softmax")
        e = xp.exp(a - _max_kept(xp, a, self.axes))
        self.saved = e / e.sum(axis=self.axes, keepdims=True)
        return self.saved

    def backward(self, g):
        s = self.saved
        return (s * (g - (g * s).sum(axis=self.axes, keepdims=True)),)


class LogSoftmax(Function):
    """a - logsumexp(a) along one axis; an empty axis gives an empty result, a 0-d tensor 0 (as PyTorch)."""

    def forward(self, a, axis=-1):
        xp = self.xp
        a = _as_float(xp, a)
        self.axes = normalize_axes(axis, a.ndim, "log_softmax")
        shifted = a - _max_kept(xp, a, self.axes)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=self.axes, keepdims=True)) if a.size else shifted
        self.saved = out
        return out

    def backward(self, g):
        return (g - self.xp.exp(self.saved) * g.sum(axis=self.axes, keepdims=True),)


# ---------------------------------------------------------------- shape


class Reshape(Function):
    def forward(self, a, shape=None):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Permute(Function):
    def forward(self, a, axes=None):
        self.inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
        return self.xp.transpose(a, axes)

    def backward(self, g):
        return (self.xp.transpose(g, self.inverse),)


class Expand(Function):
    def forward(self, a, shape=None):
        self.in_shape = a.shape
        return self.xp.broadcast_to(a, shape)

    def backward(self, g):
        return (unbroadcast(g, self.in_shape),)


def _has_integer_array(index: tuple) -> bool:
    """Only integer arrays can name an element twice (slices, ints and boolean masks cannot)."""
    return any(getattr(i, "ndim", 0) and i.dtype.kind in "iu" for i in index)


class Index(Function):
    """`a[index]`: ints, slices, None, Ellipsis, integer arrays (repeats accumulate) and boolean masks."""

    def forward(self, a, index=None):
        self.in_shape = a.shape
        self.saved = index
        return a[index]

    def backward(self, g):
        index = self.saved
        full = self.xp.zeros(self.in_shape, dtype=g.dtype)
        if _has_integer_array(index):
            self.xp.add.at(full, index, g)  # a plain assignment would keep one of several repeated indices
        else:
            full[index] = g
        return (full,)


class Cat(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        grads, start, lead = [], 0, (slice(None),) * self.axis
        for size in self.sizes:
            grads.append(g[lead + (slice(start, start + size),)])
            start += size
        return tuple(grads)


class Stack(Function):
    def forward(self, *arrays, axis=0):
        self.axis = axis
        return self.xp.stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(self.xp.moveaxis(g, self.axis, 0))


class Unbind(Function):
    """The slices along axis 0 as one node with one output each (`for x_t in x`): the backward stacks what came back
    once, where one indexing node per slice would each build a zero gradient of the whole tensor."""

    def forward(self, a):
        return tuple(a[i] for i in range(a.shape[0]))

    def backward(self, *grads):
        like = next(g for g in grads if g is not None)
        return (self.xp.stack([self.xp.zeros_like(like) if g is None else g for g in grads]),)


class Split(Function):
    """One node with one output per piece; pieces that got no gradient count as zeros."""

    def forward(self, a, sizes=None, axis=0):
        self.axis = axis
        self.in_shape = a.shape
        self.sizes = sizes
        lead, pieces, start = (slice(None),) * axis, [], 0
        for size in sizes:  # plain slices: xp.split costs ~20 us per call, more than a small op itself
            pieces.append(a[(*lead, slice(start, start + size))])
            start += size
        return tuple(pieces)

    def backward(self, *grads):
        return (join_pieces(self.xp, grads, self.in_shape, self.sizes, self.axis),)


def join_pieces(xp, grads, in_shape: tuple[int, ...], sizes, axis: int):
    """The gradient of an array cut into pieces of `sizes` along `axis` (`Split`, `GateInputs`' gates): the pieces'
    gradients side by side, zeros for a piece that got none."""
    dtype = next(g for g in grads if g is not None).dtype
    pieces = []
    for g, size in zip(grads, sizes, strict=True):
        if g is None:
            shape = list(in_shape)
            shape[axis] = size
            g = xp.zeros(shape, dtype=dtype)
        pieces.append(g)
    return xp.concatenate(pieces, axis=axis)
