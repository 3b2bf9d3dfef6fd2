"""`Tensor`: an array on a device plus the graph node that made it. Thin sugar over the ops in `ops.py`."""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence

import numpy as np

from . import ops
from .backend import array_module, device_of, is_backend_array, normalize_device, to_numpy
from .graph import Function, _State, apply, run_backward

DEFAULT_DTYPE = np.dtype(np.float32)


def _is_float(dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


class Tensor:
    """An n-dimensional array with reverse-mode autodiff, on NumPy ("cpu") or CuPy ("cuda")."""

    __slots__ = ("data", "grad", "requires_grad", "name", "scope", "tags", "device", "_xp", "_ctx", "_index",
                 "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array + tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None,
                 name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        if device is None:
            device = device_of(data) if is_backend_array(data) else "cpu"
        device = normalize_device(device)
        xp = array_module(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
        elif not is_backend_array(data) and not isinstance(data, np.generic):
            as_array = np.asarray(data)
            if as_array.dtype == object:
                raise TypeError(f"cannot make a Tensor from {type(data).__name__} with ragged or non-numeric items")
            dtype = np.dtype(bool) if as_array.dtype == bool else DEFAULT_DTYPE
            data = as_array
        if is_backend_array(data) and device_of(data) != device:
            data = to_numpy(data)
        self.data = xp.array(data, dtype=dtype, copy=True)
        self._init(device, xp, None, 0)
        self.name = name
        self.requires_grad_(requires_grad)

    def _init(self, device: str, xp, ctx: Function | None, index: int) -> None:
        self.device = device
        self._xp = xp
        self._ctx = ctx
        self._index = index
        self.requires_grad = ctx is not None
        self.grad = None
        self.name = None
        self.scope = _State.scope
        self.tags = set()
        self._retains_grad = False

    @classmethod
    def _make(cls, data, device: str, ctx: Function | None, index: int = 0) -> Tensor:
        """Wrap an op's output array without copying (the fast path every op takes)."""
        t = cls.__new__(cls)
        t.data = data
        t._init(device, array_module(device), ctx, index)
        return t

    # ------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Function | None:
        """The op that made this tensor (None for leaves)."""
        return self._ctx

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __repr__(self) -> str:
        extras = "" if self.device == "cpu" else f", device='{self.device}'"
        if self._ctx is not None:
            extras += f", grad_fn=<{self._ctx.op}>"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        if self.dtype != DEFAULT_DTYPE:
            extras += f", dtype={self.dtype}"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}{extras})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------ conversion

    def numpy(self) -> np.ndarray:
        """A NumPy array (copied from the GPU when needed); shares memory on the CPU."""
        return to_numpy(self.data)

    def item(self) -> float | int | bool:
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any()/.all()")
        return bool(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        return (self[i] for i in range(len(self)))

    def detach(self) -> Tensor:
        """The same data, cut from the graph (how truncated BPTT carries state between chunks)."""
        return Tensor._make(self.data, self.device, None)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and not _is_float(self.dtype):
            raise TypeError(f"only floating point tensors can require grad, got dtype {self.dtype}")
        if not self.is_leaf and not flag:
            raise RuntimeError("requires_grad_(False) is only for leaves; use .detach() on a result of an op")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf after backward (leaves always keep theirs)."""
        self._retains_grad = True
        return self

    def tag(self, *tags: str) -> Tensor:
        """Attach free-form labels the graph renderer reads (an LSTM tags its cell state "highway")."""
        self.tags.update(tags)
        return self

    def to(self, target) -> Tensor:
        """`.to("cuda")` / `.to("cpu")` moves data, `.to(np.float64)` casts; both are differentiable."""
        if isinstance(target, Tensor):
            return self.to(target.device).to(target.dtype)
        if isinstance(target, str) and not _looks_like_dtype(target):
            device = normalize_device(target)
            return self if device == self.device else apply(ops.ToDevice, self, device=device)
        dtype = np.dtype(target)
        return self if dtype == self.dtype else apply(ops.Cast, self, dtype=dtype)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str = 0) -> Tensor:
        return self.to(device if isinstance(device, str) else f"cuda:{device}")

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    # ------------------------------------------------------------ autograd

    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, weighted by `gradient` for non-scalars."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of it has requires_grad=True")
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output, got shape {self.shape}; "
                    "pass gradient= of the same shape"
                )
            grad = self._xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = gradient.data if isinstance(gradient, Tensor) else gradient
            if not is_backend_array(grad):
                grad = np.asarray(grad)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): gradient has shape {tuple(grad.shape)} but the output has shape {self.shape}")
            if device_of(grad) != self.device:
                raise RuntimeError(f"backward(): gradient is on {device_of(grad)!r} but the output is on {self.device!r}")
            grad = grad.astype(self.dtype, copy=False)
        run_backward(self, grad, retain_graph)

    def _store_grad(self, g, owned: bool = False) -> None:
        """Accumulate a finished gradient into `.grad`, copying arrays the walk does not own."""
        if self.grad is None:
            self.grad = Tensor._make(g if owned else g.copy(), self.device, None)
        else:
            self.grad.data += g

    # ------------------------------------------------------------ operators

    def _const(self, value) -> Tensor:
        """A Python number (or array) as a tensor beside `self`: float32 numbers join float tensors' dtype."""
        if isinstance(value, Tensor):
            return value
        if isinstance(value, numbers.Number):
            if _is_float(self.dtype) and not isinstance(value, bool):
                dtype = self.dtype
            elif isinstance(value, bool):
                dtype = np.dtype(bool)
            elif isinstance(value, numbers.Integral):
                dtype = self.dtype
            else:
                dtype = DEFAULT_DTYPE
            return Tensor._make(self._xp.asarray(value, dtype=dtype), self.device, None)
        if is_backend_array(value):
            return Tensor._make(value, device_of(value), None)
        return Tensor(value, device=self.device)

    def _binary(self, fn: type[Function], other, reflected: bool = False) -> Tensor:
        other = self._const(other)
        a, b = (other, self) if reflected else (self, other)
        _check_broadcast(fn.__name__, a.shape, b.shape)
        return apply(fn, a, b)

    def __add__(self, other):
        return self._binary(ops.Add, other)

    def __radd__(self, other):
        return self._binary(ops.Add, other, reflected=True)

    def __sub__(self, other):
        return self._binary(ops.Sub, other)

    def __rsub__(self, other):
        return self._binary(ops.Sub, other, reflected=True)

    def __mul__(self, other):
        return self._binary(ops.Mul, other)

    def __rmul__(self, other):
        return self._binary(ops.Mul, other, reflected=True)

    def __truediv__(self, other):
        return self._as_float()._binary(ops.Div, other)

    def __rtruediv__(self, other):
        return self._as_float()._binary(ops.Div, other, reflected=True)

    def _as_float(self) -> Tensor:
        """True division of integers gives float32, as PyTorch (NumPy would give float64)."""
        return self if _is_float(self.dtype) else self.float()

    def __pow__(self, other):
        return self._binary(ops.Pow, other)

    def __rpow__(self, other):
        return self._binary(ops.Pow, other, reflected=True)

    def __matmul__(self, other):
        return matmul(self, self._const(other))

    def __rmatmul__(self, other):
        return matmul(self._const(other), self)

    def __neg__(self):
        return apply(ops.Neg, self)

    def _compare(self, other, compare) -> Tensor:
        other = self._const(other)
        _check_broadcast("comparison", self.shape, other.shape)
        if other.device != self.device:
            raise RuntimeError(f"comparison of tensors on different devices, {self.device!r} and {other.device!r}")
        return Tensor._make(compare(self.data, other.data), self.device, None)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    # ------------------------------------------------------------ elementwise

    def exp(self) -> Tensor:
        return apply(ops.Exp, self)

    def log(self) -> Tensor:
        return apply(ops.Log, self)

    def sqrt(self) -> Tensor:
        return apply(ops.Sqrt, self)

    def tanh(self) -> Tensor:
        return apply(ops.Tanh, self)

    def sigmoid(self) -> Tensor:
        return apply(ops.Sigmoid, self)

    def relu(self) -> Tensor:
        return apply(ops.Relu, self)

    def abs(self) -> Tensor:
        return apply(ops.Abs, self)

    def clip(self, min=None, max=None) -> Tensor:  # noqa: A002 - NumPy's and PyTorch's names
        if min is None and max is None:
            raise ValueError("clip() needs at least one of min and max")
        return apply(ops.Clip, self, low=min, high=max)

    clamp = clip

    # ------------------------------------------------------------ reductions

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        count = _reduced_count(self.shape, axis)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count if count else float("nan"))

    def var(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        """Variance with Bessel's correction by default, as PyTorch."""
        centered = self - self.mean(axis=axis, keepdims=True)
        count = _reduced_count(self.shape, axis) - correction
        return (centered * centered).sum(axis=axis, keepdims=keepdims) * (1.0 / count if count > 0 else float("nan"))

    def std(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return self.var(axis=axis, keepdims=keepdims, correction=correction).sqrt()

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Max, self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Min, self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.LogSumExp, self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        _check_axis(axis, self.ndim)
        return apply(ops.Softmax, self, axis=axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        _check_axis(axis, self.ndim)
        return apply(ops.LogSoftmax, self, axis=axis)

    def argmax(self, axis=None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (no gradient)."""
        return Tensor._make(self._xp.argmax(self.data, axis=axis, keepdims=keepdims), self.device, None)

    def all(self) -> Tensor:
        return Tensor._make(self._xp.asarray(self.data.all()), self.device, None)

    def any(self) -> Tensor:
        return Tensor._make(self._xp.asarray(self.data.any()), self.device, None)

    # ------------------------------------------------------------ shape

    def reshape(self, *shape) -> Tensor:
        shape = _shape_arg(shape)
        try:
            target = np.empty(self.shape, dtype=bool).reshape(shape).shape
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {self.shape} ({self.size} elements) into {shape}") from None
        return self if target == self.shape else apply(ops.Reshape, self, shape=target)

    view = reshape

    def transpose(self, *axes) -> Tensor:
        axes = _shape_arg(axes) if axes else tuple(reversed(range(self.ndim)))
        return self.permute(*axes)

    def permute(self, *axes) -> Tensor:
        axes = tuple(a % max(self.ndim, 1) for a in _shape_arg(axes))
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {self.ndim} axes of shape {self.shape}")
        return apply(ops.Permute, self, axes=axes)

    def squeeze(self, axis=None) -> Tensor:
        axes = _normalize_axes(axis, self.ndim) if axis is not None else tuple(i for i, n in enumerate(self.shape) if n == 1)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, axis: int) -> Tensor:
        if not -self.ndim - 1 <= axis <= self.ndim:
            raise ValueError(f"unsqueeze: axis {axis} is out of range for shape {self.shape}")
        axis = axis % (self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_axis % self.ndim, end_axis % self.ndim
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def expand(self, *shape) -> Tensor:
        shape = _shape_arg(shape)
        shape = tuple(n if n != -1 else self.shape[i - len(shape) + self.ndim] for i, n in enumerate(shape))
        try:
            np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}") from None
        return apply(ops.Expand, self, shape=shape)

    def split(self, split_size_or_sections, axis: int = 0) -> tuple[Tensor, ...]:
        """Pieces of `split_size` along `axis` (the last may be shorter), or of the given sizes."""
        _check_axis(axis, self.ndim)
        length = self.shape[axis]
        if isinstance(split_size_or_sections, int):
            step = split_size_or_sections
            if step <= 0:
                raise ValueError(f"split size must be positive, got {step}")
            sizes = [min(step, length - s) for s in range(0, length, step)] or [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != length:
                raise ValueError(f"split sizes {sizes} add up to {sum(sizes)}, but axis {axis} has length {length}")
        return apply(ops.Split, self, sizes=sizes, axis=axis % self.ndim)

    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        _check_axis(axis, self.ndim)
        length = self.shape[axis]
        return self.split(max(1, -(-length // chunks)), axis=axis)

    def __getitem__(self, index) -> Tensor:
        return apply(ops.Index, self, index=self._backend_index(index))

    def _backend_index(self, index):
        """Turn Tensors and lists inside an index into backend arrays on this tensor's device."""
        parts = index if isinstance(index, tuple) else (index,)
        converted = []
        for part in parts:
            if isinstance(part, Tensor):
                if part.device != self.device:
                    raise RuntimeError(f"index tensor is on {part.device!r} but the indexed tensor is on {self.device!r}")
                part = part.data
            elif isinstance(part, list | np.ndarray) and not isinstance(part, bool):
                part = self._xp.asarray(part)
            if is_backend_array(part) and not (part.dtype == bool or np.issubdtype(part.dtype, np.integer)):
                raise IndexError(f"index arrays must be integer or bool, got dtype {part.dtype}")
            converted.append(part)
        _check_index(tuple(converted), self.shape)
        return tuple(converted)


def _looks_like_dtype(name: str) -> bool:
    try:
        np.dtype(name)
    except TypeError:
        return False
    return name not in ("cpu",) and not name.startswith("cuda")


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept f(2, 3) and f((2, 3)) alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


def _normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    return ops._normalize_axes(axis, ndim)


def _check_axis(axis: int, ndim: int) -> None:
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor of {ndim} dimension(s)")


def _reduced_count(shape: tuple[int, ...], axis) -> int:
    return int(np.prod([shape[a] for a in _normalize_axes(axis, len(shape))], dtype=np.int64))


def _check_broadcast(op: str, a: tuple[int, ...], b: tuple[int, ...]) -> None:
    if a != b:
        try:
            np.broadcast_shapes(a, b)
        except ValueError:
            raise ValueError(f"{op}: shapes {a} and {b} cannot be broadcast together") from None


def _check_index(index: tuple, shape: tuple[int, ...]) -> None:
    """Fail with the shape and the offending index instead of a backend error deep inside the op."""
    axis = 0
    for part in index:
        if part is None:
            continue
        if part is Ellipsis:
            return  # axes after an ellipsis are checked by the backend
        if isinstance(part, int | np.integer):
            if axis >= len(shape) or not -shape[axis] <= part < shape[axis]:
                size = shape[axis] if axis < len(shape) else "no"
                raise IndexError(f"index {part} is out of range for axis {axis} with size {size} (shape {shape})")
        elif is_backend_array(part) and part.dtype == bool:
            if part.shape != shape[axis : axis + part.ndim]:
                raise IndexError(f"boolean mask of shape {part.shape} does not match shape {shape} at axis {axis}")
            axis += part.ndim
            continue
        elif axis >= len(shape):
            raise IndexError(f"too many indices for a tensor of shape {shape}")
        axis += 1
    if axis > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}")


# ---------------------------------------------------------------- functions of several tensors


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy's matmul semantics (1-D, 2-D, batched, broadcast batched) with shape errors that name both shapes."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match ({inner_a} != {inner_b})")
    if a.ndim > 2 and b.ndim > 2:
        _check_broadcast("matmul batch", a.shape[:-2], b.shape[:-2])
    return apply(ops.MatMul, a, b)


def _same_device(name: str, tensors: Sequence[Tensor]) -> list[Tensor]:
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name}() needs at least one tensor")
    return tensors


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = _same_device("cat", tensors)
    ndim = tensors[0].ndim
    _check_axis(axis, ndim)
    axis %= ndim
    for t in tensors:
        if t.ndim != ndim or t.shape[:axis] + t.shape[axis + 1 :] != tensors[0].shape[:axis] + tensors[0].shape[axis + 1 :]:
            raise ValueError(f"cat along axis {axis}: shapes {tensors[0].shape} and {t.shape} differ off that axis")
    return apply(ops.Cat, *tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = _same_device("stack", tensors)
    for t in tensors:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack needs tensors of one shape, got {tensors[0].shape} and {t.shape}")
    _check_axis(axis, tensors[0].ndim + 1)
    return apply(ops.Stack, *tensors, axis=axis % (tensors[0].ndim + 1))


def where(cond, a, b) -> Tensor:
    """`a` where `cond` is true, else `b`; numbers on either side become tensors beside the other."""
    cond = cond if isinstance(cond, Tensor) else Tensor(np.asarray(cond, dtype=bool))
    if cond.dtype != bool:
        cond = cond != 0
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=cond.device)
    a = b._const(a) if isinstance(b, Tensor) else a
    b = a._const(b)
    shape = np.broadcast_shapes(cond.shape, a.shape) if a.shape != cond.shape else a.shape
    _check_broadcast("where", shape, b.shape)
    return apply(ops.Where, cond, a, b)


def maximum(a, b) -> Tensor:
    a = a if isinstance(a, Tensor) else b._const(a)
    return a._binary(ops.Maximum, b)


def minimum(a, b) -> Tensor:
    a = a if isinstance(a, Tensor) else b._const(a)
    return a._binary(ops.Minimum, b)
