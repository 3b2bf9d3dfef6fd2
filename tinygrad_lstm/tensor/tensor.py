"""`Tensor`: an array on a device plus the graph node that made it. Thin sugar over the ops in `ops.py`."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from itertools import zip_longest

import numpy as np

from . import ops
from .backend import array_module, device_of, is_backend_array, move, normalize_device, to_numpy, use_device
from .graph import Function, _State, apply, as_array, run_backward

DEFAULT_DTYPE = np.dtype(np.float32)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


class Tensor:
    """An n-dimensional array with reverse-mode autodiff, on NumPy ("cpu") or CuPy ("cuda")."""

    __slots__ = ("data", "grad", "requires_grad", "name", "scope", "tags", "device", "_xp", "_ctx", "_index",
                 "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array + tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None,
                 name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        if not (is_backend_array(data) or isinstance(data, np.generic)):
            data = _python_data_as_array(data, dtype)
        dtype = np.dtype(dtype) if dtype is not None else data.dtype
        if dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"a Tensor holds booleans, integers or floats, not dtype {dtype}")
        device = normalize_device(device_of(data) if device is None and is_backend_array(data) else device)
        if device == "cpu":
            array = np.array(to_numpy(data), dtype=dtype, copy=True)
        else:
            with use_device(device):  # copies onto that GPU, from the host or another GPU
                array = array_module(device).array(data, dtype=dtype, copy=True)
        self._init(array, device, None, 0)
        self.name = name
        if requires_grad:
            self.requires_grad_(True)

    def _init(self, data, device: str, ctx: Function | None, index: int) -> None:
        self.data = data
        self.device = device
        self._xp = np if device == "cpu" else array_module(device)
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
        """Wrap a backend array without copying (the fast path every op takes)."""
        t = cls.__new__(cls)
        t._init(data, device, ctx, index)
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
        """The axes reversed."""
        return self.transpose()

    def __repr__(self) -> str:
        extras = "" if self.device == "cpu" else f", device='{self.device}'"
        if self._ctx is not None:
            extras += f", grad_fn=<{self._ctx.op}>"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        if self.dtype != DEFAULT_DTYPE:
            extras += f", dtype={self.dtype}"
        if self.name:
            extras += f", name={self.name!r}"
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        return f"tensor({body}{extras})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------ conversion

    def numpy(self) -> np.ndarray:
        """A NumPy array (copied from the GPU when needed); shares memory on the CPU."""
        return to_numpy(self.data)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.device != "cpu":
            raise TypeError(f"a tensor on {self.device!r} does not convert to NumPy implicitly; use .numpy() or .cpu()")
        return np.asarray(self.data, dtype=dtype)

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
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
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
        """Make this leaf track gradients (or stop); only floating point tensors can."""
        if flag and not _is_float(self.dtype):
            raise TypeError(f"only floating point tensors can require grad, got dtype {self.dtype}")
        if not self.is_leaf and not flag:
            raise RuntimeError("requires_grad_(False) is only for leaves; use .detach() on the result of an op")
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self) -> Tensor:
        """Keep `.grad` on this non-leaf after backward (leaves always keep theirs)."""
        self._retains_grad = True
        return self

    def tag(self, *tags: str) -> Tensor:
        """Attach free-form labels the graph renderer reads (an LSTM tags its cell state "highway")."""
        for label in tags:
            if not isinstance(label, str):
                raise TypeError(f"tags are strings, got {label!r}")
        self.tags.update(tags)
        return self

    def to(self, *targets, device: str | None = None, dtype=None) -> Tensor:
        """`.to("cuda")` / `.to("cpu")` moves data, `.to(np.float64)` casts, `.to(other)` does both.

        Moves and float casts are differentiable; a cast to an integer or bool dtype leaves the graph.
        """
        for target in targets:
            if isinstance(target, Tensor):
                device, dtype = target.device, target.dtype
            elif isinstance(target, str) and _is_device_name(target):
                device = target
            else:
                dtype = target
        out = self
        if device is not None:
            device = normalize_device(device)
            if device != out.device:
                out = apply(ops.ToDevice, out, device=device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype != out.dtype:
                if _is_float(dtype):
                    out = apply(ops.Cast, out, dtype=dtype)
                else:
                    out = _constant(out.device, lambda a: a.astype(dtype), out.data)
        return out

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
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, weighted by `gradient` for non-scalars.

        The graph's saved arrays are freed afterwards unless `retain_graph=True`.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of it has requires_grad=True "
                "(or it was computed under no_grad())"
            )
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element output, got shape {self.shape}; "
                    "pass gradient= of the same shape"
                )
            with use_device(self.device):
                grad = self._xp.ones(self.shape, dtype=self.dtype)
        else:
            if isinstance(gradient, Tensor):
                grad = gradient.data
            elif is_backend_array(gradient) and device_of(gradient) != "cpu":
                grad = gradient  # a device array stays where it is (another device is refused below)
            else:  # lists and NumPy data move to the output's device, as host data does everywhere else
                grad = move(np.asarray(gradient), self.device)
            if tuple(grad.shape) != self.shape:
                raise ValueError(
                    f"backward(): gradient has shape {tuple(grad.shape)} but the output has shape {self.shape}"
                )
            if device_of(grad) != self.device:
                raise RuntimeError(
                    f"backward(): gradient is on {device_of(grad)!r} but the output is on {self.device!r}"
                )
            grad = grad.astype(self.dtype, copy=False)
        run_backward(self, grad, retain_graph)

    def _store_grad(self, g, owned: bool = False) -> None:
        """Accumulate a finished gradient into `.grad`, copying arrays the walk does not own."""
        if self.grad is None:
            self.grad = Tensor._make(g if owned else g.copy(), self.device, None)
        else:
            self.grad.data += g

    # ------------------------------------------------------------ operators

    def _operands(self, other) -> tuple[Tensor, Tensor] | None:
        """`self` and `other` as tensors of one dtype family, as PyTorch promotes; None for unsupported types.

        A Python number takes the tensor's dtype (so float32 stays float32); an integer or bool
        tensor meeting a float becomes that float (NumPy would make float64).
        """
        if isinstance(other, Tensor):
            return (self, other) if self.data.dtype == other.data.dtype else _promote(self, other)
        if type(other) is float or type(other) is int or isinstance(other, numbers.Real):
            dtype = self.data.dtype
            if dtype.kind != "f" and not isinstance(other, bool | np.bool_):
                if not isinstance(other, numbers.Integral):
                    dtype, self = DEFAULT_DTYPE, self.float()
                elif dtype.kind == "b":
                    dtype = np.dtype(np.int64)
            if self.device == "cpu":
                return self, Tensor._make(np.asarray(other, dtype=dtype), "cpu", None)
            return self, _constant(self.device, lambda: self._xp.asarray(other, dtype=dtype))
        if isinstance(other, np.generic | list | tuple) or is_backend_array(other):
            return _promote(self, _as_tensor(other, self))
        return None

    def _binary(self, fn: type[Function], other, reflected: bool = False) -> Tensor:
        pair = self._operands(other)
        if pair is None:
            return NotImplemented  # Python then tries the other operand, or raises its usual TypeError
        a, b = (pair[1], pair[0]) if reflected else pair
        a_shape, b_shape = a.data.shape, b.data.shape
        if a_shape != b_shape and a_shape and b_shape:  # a scalar broadcasts with anything
            _check_broadcast(fn.__name__, a_shape, b_shape)
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
        return self if self.data.dtype.kind == "f" else self.float()

    def __pow__(self, other):
        return self._binary(ops.Pow, other)

    def __rpow__(self, other):
        return self._binary(ops.Pow, other, reflected=True)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return apply(ops.Neg, self)

    def _compare(self, other, name: str, compare: Callable) -> Tensor:
        """Comparisons are constants: a bool tensor outside the graph.

        Other types give NotImplemented, so `t == None` is False and `t < "a"` a TypeError, as in Python.
        """
        pair = self._operands(other)
        if pair is None:
            return NotImplemented
        a, b = pair
        _check_broadcast(name, a.shape, b.shape)
        if a.device != b.device:
            raise RuntimeError(f"{name}: tensors are on different devices, {a.device!r} and {b.device!r}")
        return _constant(a.device, compare, a.data, b.data)

    def __lt__(self, other):
        return self._compare(other, "<", lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, "<=", lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, ">", lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, ">=", lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, "==", lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, "!=", lambda a, b: a != b)

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
        """Clamp into [min, max] (either may be None); the bounds are numbers."""
        if min is None and max is None:
            raise ValueError("clip() needs at least one of min and max")
        for bound in (min, max):
            if bound is not None and not isinstance(bound, numbers.Real):
                raise TypeError(f"clip() bounds are numbers, got {type(bound).__name__}; use tl.maximum/tl.minimum")
        return apply(ops.Clip, self, low=min, high=max)

    clamp = clip

    # ------------------------------------------------------------ reductions

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Sum, self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        total, count = self._as_float().sum(axis=axis, keepdims=keepdims), _reduced_count(self.shape, axis)
        return total / count if count else total * float("nan")

    def var(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        """Variance with Bessel's correction by default, as PyTorch."""
        centered = self - self.mean(axis=axis, keepdims=True)
        squares, count = (centered * centered).sum(axis=axis, keepdims=keepdims), _reduced_count(self.shape, axis)
        return squares / (count - correction) if count > correction else squares * float("nan")

    def std(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return self.var(axis=axis, keepdims=keepdims, correction=correction).sqrt()

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Max, self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Min, self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.LogSumExp, self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return apply(ops.Softmax, self, axis=_axis("softmax", axis, self.ndim))

    def log_softmax(self, axis: int = -1) -> Tensor:
        return apply(ops.LogSoftmax, self, axis=_axis("log_softmax", axis, self.ndim))

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (no gradient)."""
        axis = None if axis is None else _axis("argmax", axis, self.ndim)
        return _constant(self.device, lambda a: a.argmax(axis=axis, keepdims=keepdims), self.data)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the minima (no gradient)."""
        axis = None if axis is None else _axis("argmin", axis, self.ndim)
        return _constant(self.device, lambda a: a.argmin(axis=axis, keepdims=keepdims), self.data)

    def all(self, axis=None, keepdims: bool = False) -> Tensor:
        axes = ops.normalize_axes(axis, self.ndim)
        return _constant(self.device, lambda a: a.all(axis=axes, keepdims=keepdims), self.data)

    def any(self, axis=None, keepdims: bool = False) -> Tensor:
        axes = ops.normalize_axes(axis, self.ndim)
        return _constant(self.device, lambda a: a.any(axis=axes, keepdims=keepdims), self.data)

    # ------------------------------------------------------------ shape

    def reshape(self, *shape) -> Tensor:
        """A new shape with the same elements; one axis may be -1 (inferred)."""
        target = _resolve_shape(_shape_arg(shape), self.shape)
        return self if target == self.shape else apply(ops.Reshape, self, shape=target)

    view = reshape

    def transpose(self, *axes) -> Tensor:
        """No axes: reverse them (as NumPy). Two axes: swap them (as PyTorch). All axes: permute (as NumPy)."""
        axes = _shape_arg(axes)
        if not axes:
            return self.permute(tuple(reversed(range(self.ndim))))
        if len(axes) == 2:
            first, second = (_axis("transpose", a, self.ndim) for a in axes)
            order = list(range(self.ndim))
            order[first], order[second] = second, first
            return self.permute(order)
        return self.permute(axes)

    def permute(self, *axes) -> Tensor:
        axes = tuple(_axis("permute", a, self.ndim) for a in _shape_arg(axes)) if self.ndim else _shape_arg(axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: {axes} is not a permutation of the {self.ndim} axes of shape {self.shape}")
        return self if axes == tuple(range(self.ndim)) else apply(ops.Permute, self, axes=axes)

    def squeeze(self, axis=None) -> Tensor:
        """Drop axes of length 1 (all of them, or those named that have length 1, as PyTorch)."""
        if axis is None:
            axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:
            axes = ops.normalize_axes(axis, self.ndim)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, axis: int) -> Tensor:
        axis = _axis("unsqueeze", axis, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge the axes from `start_axis` to `end_axis` (inclusive) into one."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _axis("flatten", start_axis, self.ndim), _axis("flatten", end_axis, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} (shape {self.shape})")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def expand(self, *shape) -> Tensor:
        """Broadcast to `shape` without copying; -1 keeps an existing axis's length."""
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0 or any(n == -1 for n in shape[:lead]):
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        shape = shape[:lead] + tuple(old if n == -1 else n for n, old in zip(shape[lead:], self.shape, strict=True))
        if any(old != n and old != 1 for old, n in zip(self.shape, shape[lead:], strict=True)):
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        return self if shape == self.shape else apply(ops.Expand, self, shape=shape)

    def split(self, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
        """Pieces of `split_size` along `axis` (the last may be shorter), or of the given sizes."""
        axis = _axis("split", axis, self.ndim)
        length = self.shape[axis]
        if isinstance(split_size_or_sections, int | np.integer):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split size must be positive, got {step}")
            sizes = [min(step, length - s) for s in range(0, length, step)] or [0]
        else:
            sizes = [int(n) for n in split_size_or_sections]
            if sum(sizes) != length or any(n < 0 for n in sizes):
                raise ValueError(f"split sizes {sizes} must be >= 0 and add up to {length}, the length of axis {axis}")
        return apply(ops.Split, self, sizes=sizes, axis=axis)

    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        """At most `chunks` pieces of equal size (the last may be shorter), as PyTorch."""
        if chunks <= 0:
            raise ValueError(f"chunk() needs a positive number of chunks, got {chunks}")
        length = self.shape[_axis("chunk", axis, self.ndim)]
        return self.split(max(1, -(-length // chunks)), axis=axis)

    def __getitem__(self, index) -> Tensor:
        return apply(ops.Index, self, index=self._backend_index(index))

    def _backend_index(self, index) -> tuple:
        """Turn Tensors, lists and NumPy arrays inside an index into checked backend arrays on this device."""
        parts = index if isinstance(index, tuple) else (index,)
        converted = []
        for part in parts:
            if isinstance(part, Tensor):
                if part.device != self.device:
                    raise RuntimeError(
                        f"index tensor is on {part.device!r} but the indexed tensor is on {self.device!r}"
                    )
                part = part.data
            elif isinstance(part, list | np.ndarray):  # checked on the host, then moved: no device sync
                part = np.asarray(part) if len(part) else np.zeros(0, dtype=np.int64)
            if is_backend_array(part) and part.dtype.kind not in "biu":
                raise IndexError(f"index arrays must be integer or bool, got dtype {part.dtype}")
            converted.append(part)
        _check_index(tuple(converted), self.shape)
        return tuple(move(p, self.device) if isinstance(p, np.ndarray) else p for p in converted)


def _python_data_as_array(data, dtype) -> np.ndarray:
    """Python numbers and (nested) lists as a NumPy array: float32 unless bool or `dtype` says otherwise."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"cannot make a Tensor from this {type(data).__name__}: {exc}") from None
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"cannot make a Tensor from {type(data).__name__} of {array.dtype} items "
            "(expected numbers or booleans in a rectangular nested list)"
        )
    if dtype is None and array.dtype.kind != "b":
        return array.astype(DEFAULT_DTYPE)
    return array


def _constant(device: str, compute: Callable, *arrays) -> Tensor:
    """A tensor outside the graph from `compute(*arrays)`, run with `device` current (CuPy allocates there)."""
    if device == "cpu":
        return Tensor._make(as_array(compute(*arrays)), device, None)
    with use_device(device):
        return Tensor._make(compute(*arrays), device, None)


def _promote(*tensors: Tensor) -> list[Tensor]:
    """Tensors of mixed dtypes cast to a common one, as PyTorch: an integer or bool tensor meeting a float
    becomes that float (NumPy would pick float64 for int64), and floats widen to the widest float.

    The casts are graph nodes, so each input's gradient comes back in its own dtype.
    """
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    target = np.result_type(*floats) if floats else np.result_type(*(t.dtype for t in tensors))
    return [t if t.dtype == target else t.to(target) for t in tensors]


def _is_device_name(name: str) -> bool:
    """'cpu', 'cuda', 'cuda:N' and anything that is not a dtype (so a typo gets the device error)."""
    if name in ("cpu", "cuda") or name.startswith("cuda:"):
        return True
    try:
        np.dtype(name)
    except TypeError:
        return True
    return False


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept f(2, 3) and f((2, 3)) alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], Sequence | np.ndarray):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int | np.integer):
            raise TypeError(f"shapes and axes are integers, got {n!r}")
    return tuple(int(n) for n in shape)


def _resolve_shape(shape: tuple[int, ...], old: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` with its one -1 filled in so the element count matches `old`, or an error naming both."""
    size = math.prod(old)
    known = math.prod(n for n in shape if n != -1)
    unknown = [i for i, n in enumerate(shape) if n == -1]
    fits = len(unknown) <= 1 and all(n >= -1 for n in shape)
    if fits and unknown and known and size % known == 0:
        return shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1 :]
    if not fits or unknown or known != size:
        raise ValueError(f"cannot reshape a tensor of shape {old} ({size} elements) into {shape}")
    return shape


def _axis(op: str, axis: int, ndim: int) -> int:
    """One axis, checked and made non-negative."""
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}")
    if ndim == 0 or not -ndim <= axis < ndim:
        raise ValueError(f"{op}: axis {axis} is out of range for a tensor of {ndim} dimension(s)")
    return int(axis) % ndim


def _reduced_count(shape: tuple[int, ...], axis) -> int:
    return math.prod(shape[a] for a in ops.normalize_axes(axis, len(shape)))


def _check_broadcast(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcast shape (NumPy's rules), or an error naming every shape."""
    result = shapes[0]
    for shape in shapes[1:]:
        if shape == result or not shape:
            continue
        if not result:
            result = shape
            continue
        merged = []
        for n, m in zip_longest(reversed(result), reversed(shape), fillvalue=1):
            if n != m and n != 1 and m != 1:
                listed = " and ".join(str(s) for s in shapes)
                raise ValueError(f"{op}: shapes {listed} cannot be broadcast together")
            merged.append(m if n == 1 else n)
        result = tuple(reversed(merged))
    return result


def _out_of_range(index: int, axis: int, shape: tuple[int, ...]):
    raise IndexError(f"index {index} is out of range for axis {axis} with size {shape[axis]} (shape {shape})")


def _check_index(index: tuple, shape: tuple[int, ...]) -> None:
    """Fail with the shape and the offending index instead of a backend error deep inside the op.

    CuPy does not check integer-array indices itself (they wrap around), so their range is checked here:
    NumPy ones on the host, device ones with one transfer for all of them (not two per array).
    """
    consumed = sum(part.ndim if is_backend_array(part) and part.dtype == bool else 1 for part in index
                   if part is not None and part is not Ellipsis and not isinstance(part, bool | np.bool_))
    ellipses = sum(part is Ellipsis for part in index)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise IndexError(f"too many indices for a tensor of shape {shape}: {consumed} given")
    axis = 0
    integer_arrays = []
    for part in index:
        if part is Ellipsis:
            axis += len(shape) - consumed
        elif part is None or isinstance(part, bool | np.bool_):
            continue
        elif isinstance(part, slice):
            axis += 1
        elif isinstance(part, int | np.integer):
            if not -shape[axis] <= part < shape[axis]:
                _out_of_range(int(part), axis, shape)
            axis += 1
        elif is_backend_array(part) and part.dtype == bool:
            if part.shape != shape[axis : axis + part.ndim]:
                raise IndexError(f"boolean mask of shape {part.shape} does not match shape {shape} at axis {axis}")
            axis += part.ndim
        elif is_backend_array(part):
            if part.size:
                integer_arrays.append((part, axis))
            axis += 1
        else:
            raise IndexError(f"unsupported index {part!r}: use ints, slices, None, ..., integer or bool arrays")
    _check_ranges(integer_arrays, shape)


def _check_ranges(integer_arrays: list, shape: tuple[int, ...]) -> None:
    """Each (index array, axis) within the axis's length; the device arrays' extremes come over in one transfer."""
    on_device = [part for part, _ in integer_arrays if not isinstance(part, np.ndarray)]
    if on_device:
        xp = array_module(device_of(on_device[0]))
        device_bounds = iter(to_numpy(xp.stack([b for p in on_device for b in (p.min(), p.max())])).tolist())
    for part, axis in integer_arrays:
        if isinstance(part, np.ndarray):
            low, high = int(part.min()), int(part.max())
        else:
            low, high = next(device_bounds), next(device_bounds)
        if high >= shape[axis] or low < -shape[axis]:
            _out_of_range(high if high >= shape[axis] else low, axis, shape)


# ---------------------------------------------------------------- functions of several tensors


def _as_tensor(value, like: Tensor | None = None) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(value, device=like.device if like is not None else None)


def matmul(a, b) -> Tensor:
    """NumPy's matmul semantics (1-D, 2-D, batched, broadcast batched) with shape errors that name both shapes."""
    a, b = _pair("matmul", a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match ({inner_a} != {inner_b})")
    if a.ndim > 2 and b.ndim > 2:
        try:
            _check_broadcast("matmul", a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None
    return apply(ops.MatMul, a, b)


def _as_tensors(name: str, tensors: Sequence) -> list[Tensor]:
    if not isinstance(tensors, Sequence) or not tensors:
        raise TypeError(f"{name}() takes a non-empty list or tuple of tensors")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return _promote(*(_as_tensor(t, like) for t in tensors))


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; the others must match."""
    tensors = _as_tensors("cat", tensors)
    first = tensors[0]
    axis = _axis("cat", axis, first.ndim)
    for t in tensors:
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]:
            raise ValueError(f"cat along axis {axis}: shapes {first.shape} and {t.shape} differ off that axis")
    return apply(ops.Cat, *tensors, axis=axis)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    tensors = _as_tensors("stack", tensors)
    for t in tensors:
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack needs tensors of one shape, got {tensors[0].shape} and {t.shape}")
    return apply(ops.Stack, *tensors, axis=_axis("stack", axis, tensors[0].ndim + 1))


def _pair(name: str, a, b) -> tuple[Tensor, Tensor]:
    """Two operands as tensors, numbers taking the other's dtype and device."""
    if isinstance(a, Tensor):
        pair = a._operands(b)
    else:
        pair = b._operands(a) if isinstance(b, Tensor) else None
        pair = pair and (pair[1], pair[0])
    if pair is None:
        raise TypeError(f"{name}() takes Tensors or numbers, got {type(a).__name__} and {type(b).__name__}")
    return pair


def where(cond, a, b) -> Tensor:
    """`a` where `cond` is true, else `b`; numbers on either side become tensors beside the other."""
    like = next((v for v in (a, b, cond) if isinstance(v, Tensor)), None)
    if not isinstance(cond, Tensor):
        cond = Tensor(cond, dtype=bool, device=like.device if like is not None else None)
    elif cond.dtype != bool:
        cond = cond != 0
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=cond.device)
    a, b = _pair("where", a, b)
    _check_broadcast("where", cond.shape, a.shape, b.shape)
    return apply(ops.Where, cond, a, b)


def maximum(a, b) -> Tensor:
    """Elementwise maximum; ties split the gradient evenly."""
    a, b = _pair("maximum", a, b)
    return a._binary(ops.Maximum, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; ties split the gradient evenly."""
    a, b = _pair("minimum", a, b)
    return a._binary(ops.Minimum, b)
