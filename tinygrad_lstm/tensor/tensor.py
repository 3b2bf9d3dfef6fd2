"""`Tensor`: an array on a device plus the graph node that made it. Thin sugar over the ops in `ops.py`."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from . import ops
from .backend import array_module, device_of, is_backend_array, move, normalize_device, to_numpy, use_device
from .checks import broadcast_shape, check_axis, check_index, is_device_name, reduced_count, resolve_shape, shape_arg
from .graph import STATE, Function, as_array, check_finite, run_backward

DEFAULT_DTYPE = np.dtype(np.float32)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


class Tensor:
    """An n-dimensional array with reverse-mode autodiff, on NumPy ("cpu") or CuPy ("cuda")."""

    __slots__ = ("array", "grad", "requires_grad", "name", "scope", "tags", "device", "_xp", "grad_fn", "_output_index",
                 "retains_grad", "__weakref__")
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array + tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None,
                 name: str | None = None):
        if isinstance(data, Tensor):
            data = data.array
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

    def _init(self, data, device: str, grad_fn: Function | None, index: int) -> None:
        self.array = data
        self.device = device
        self._xp = np if device == "cpu" else array_module(device)
        self.grad_fn = grad_fn
        self._output_index = index
        self.requires_grad = grad_fn is not None
        self.grad = None
        self.name = None
        self.scope = STATE.scope
        self.tags = set()
        self.retains_grad = False

    @classmethod
    def _make(cls, data, device: str, grad_fn: Function | None, index: int = 0) -> Tensor:
        """Wrap a backend array without copying (the fast path every op takes)."""
        t = cls.__new__(cls)
        t._init(data, device, grad_fn, index)
        return t

    # ------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def size(self) -> int:
        return self.array.size

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors no recorded op made (inputs, parameters); they keep `.grad` after backward."""
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        """The axes reversed."""
        return self.transpose()

    def __repr__(self) -> str:
        extras = "" if self.device == "cpu" else f", device='{self.device}'"
        if self.grad_fn is not None:
            extras += f", grad_fn=<{self.grad_fn.op}>"
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
        return to_numpy(self.array)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.device != "cpu":
            raise TypeError(f"a tensor on {self.device!r} does not convert to NumPy implicitly; use .numpy() or .cpu()")
        return np.asarray(self.array, dtype=dtype)

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
        return iter(self.unbind()) if len(self) else iter(())

    def unbind(self, axis: int = 0) -> tuple[Tensor, ...]:
        """The slices along `axis`, as one graph node (a loop over a sequence's steps iterates these)."""
        axis = check_axis("unbind", axis, self.ndim)
        moved = self if axis == 0 else self.permute(axis, *(i for i in range(self.ndim) if i != axis))
        return apply(ops.Unbind, moved) if moved.shape[0] else ()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (how truncated BPTT carries state between chunks)."""
        return Tensor._make(self.array, self.device, None)

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
        self.retains_grad = True
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
            elif isinstance(target, str) and is_device_name(target):
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
                    out = _constant(out.device, lambda a: a.astype(dtype), out.array)
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
            grad = gradient.array if isinstance(gradient, Tensor) else gradient
            if not is_backend_array(grad):
                grad = np.asarray(grad)
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

    def _accumulate_grad(self, g, owned: bool = False) -> None:
        """Accumulate a finished gradient into `.grad`, copying arrays the walk does not own."""
        if self.grad is None:
            self.grad = Tensor._make(g if owned else g.copy(), self.device, None)
        else:
            self.grad.array += g

    # ------------------------------------------------------------ operators

    def _operands(self, other) -> tuple[Tensor, Tensor] | None:
        """`self` and `other` as tensors of one dtype family, as PyTorch promotes; None for unsupported types.

        A Python number takes the tensor's dtype (so float32 stays float32); an integer or bool
        tensor meeting a float becomes that float (NumPy would make float64).
        """
        if isinstance(other, Tensor):
            return (self, other) if self.array.dtype == other.array.dtype else _promote(self, other)
        if type(other) is float or type(other) is int or isinstance(other, numbers.Real):
            dtype = self.array.dtype
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
        a_shape, b_shape = a.array.shape, b.array.shape
        if a_shape != b_shape and a_shape and b_shape:  # a scalar broadcasts with anything
            broadcast_shape(fn.__name__, a_shape, b_shape)
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
        return self if self.array.dtype.kind == "f" else self.float()

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
        broadcast_shape(name, a.shape, b.shape)
        if a.device != b.device:
            raise RuntimeError(f"{name}: tensors are on different devices, {a.device!r} and {b.device!r}")
        return _constant(a.device, compare, a.array, b.array)

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
        total, count = self._as_float().sum(axis=axis, keepdims=keepdims), reduced_count(self.shape, axis)
        return total / count if count else total * float("nan")

    def var(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        """Variance with Bessel's correction by default, as PyTorch."""
        return apply(ops.Var, self, axis=axis, keepdims=keepdims, correction=correction)

    def std(self, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
        return apply(ops.Std, self, axis=axis, keepdims=keepdims, correction=correction)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Max, self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.Min, self, axis=axis, keepdims=keepdims)

    def logsumexp(self, axis=None, keepdims: bool = False) -> Tensor:
        return apply(ops.LogSumExp, self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        return apply(ops.Softmax, self, axis=check_axis("softmax", axis, self.ndim))

    def log_softmax(self, axis: int = -1) -> Tensor:
        return apply(ops.LogSoftmax, self, axis=check_axis("log_softmax", axis, self.ndim))

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (no gradient)."""
        axis = None if axis is None else check_axis("argmax", axis, self.ndim)
        return _constant(self.device, lambda a: a.argmax(axis=axis, keepdims=keepdims), self.array)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the minima (no gradient)."""
        axis = None if axis is None else check_axis("argmin", axis, self.ndim)
        return _constant(self.device, lambda a: a.argmin(axis=axis, keepdims=keepdims), self.array)

    def all(self, axis=None, keepdims: bool = False) -> Tensor:
        axes = ops.normalize_axes(axis, self.ndim)
        return _constant(self.device, lambda a: a.all(axis=axes, keepdims=keepdims), self.array)

    def any(self, axis=None, keepdims: bool = False) -> Tensor:
        axes = ops.normalize_axes(axis, self.ndim)
        return _constant(self.device, lambda a: a.any(axis=axes, keepdims=keepdims), self.array)

    # ------------------------------------------------------------ shape

    def reshape(self, *shape) -> Tensor:
        """A new shape with the same elements; one axis may be -1 (inferred)."""
        target = resolve_shape(shape_arg(shape), self.shape)
        return self if target == self.shape else apply(ops.Reshape, self, shape=target)

    view = reshape

    def transpose(self, *axes) -> Tensor:
        """No axes: reverse them (as NumPy). Two axes: swap them (as PyTorch). All axes: permute (as NumPy)."""
        axes = shape_arg(axes)
        if not axes:
            return self.permute(tuple(reversed(range(self.ndim))))
        if len(axes) == 2:
            first, second = (check_axis("transpose", a, self.ndim) for a in axes)
            order = list(range(self.ndim))
            order[first], order[second] = second, first
            return self.permute(order)
        return self.permute(axes)

    def permute(self, *axes) -> Tensor:
        axes = tuple(check_axis("permute", a, self.ndim) for a in shape_arg(axes)) if self.ndim else shape_arg(axes)
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
        axis = check_axis("unsqueeze", axis, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge the axes from `start_axis` to `end_axis` (inclusive) into one."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = check_axis("flatten", start_axis, self.ndim), check_axis("flatten", end_axis, self.ndim)
        if start > end:
            raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} (shape {self.shape})")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def expand(self, *shape) -> Tensor:
        """Broadcast to `shape` without copying; -1 keeps an existing axis's length."""
        shape = shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0 or any(n == -1 for n in shape[:lead]):
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        shape = shape[:lead] + tuple(old if n == -1 else n for n, old in zip(shape[lead:], self.shape, strict=True))
        if any(old != n and old != 1 for old, n in zip(self.shape, shape[lead:], strict=True)):
            raise ValueError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        return self if shape == self.shape else apply(ops.Expand, self, shape=shape)

    def split(self, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
        """Pieces of `split_size` along `axis` (the last may be shorter), or of the given sizes."""
        axis = check_axis("split", axis, self.ndim)
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
        length = self.shape[check_axis("chunk", axis, self.ndim)]
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
                part = part.array
            elif isinstance(part, list | np.ndarray):
                part = np.asarray(part) if len(part) else np.zeros(0, dtype=np.int64)
                part = move(part, self.device)
            if is_backend_array(part) and part.dtype.kind not in "biu":
                raise IndexError(f"index arrays must be integer or bool, got dtype {part.dtype}")
            converted.append(part)
        converted = tuple(converted)
        check_index(converted, self.shape)
        return converted


def _python_data_as_array(data, dtype) -> np.ndarray:
    """Python numbers and (nested) lists as a NumPy array: float32 unless bool or `dtype` says otherwise."""
    try:
        array = np.asarray(data) if dtype is None else np.asarray(data, dtype=dtype)
    except OverflowError:
        raise OverflowError(_too_large(data, DEFAULT_DTYPE if dtype is None else np.dtype(dtype))) from None
    except (ValueError, TypeError) as exc:
        raise TypeError(f"cannot make a Tensor from this {type(data).__name__}: {exc}") from None
    if array.dtype == object and all(isinstance(v, numbers.Integral) for v in array.flat):
        try:  # Python integers beyond 64 bits: a float, as every other number without a dtype
            array = array.astype(np.float64)
        except OverflowError:
            raise OverflowError(_too_large(data, DEFAULT_DTYPE)) from None
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"cannot make a Tensor from {type(data).__name__} of {array.dtype} items "
            "(expected numbers or booleans in a rectangular nested list)"
        )
    if dtype is None and array.dtype.kind != "b":
        return array.astype(DEFAULT_DTYPE)
    return array


def _too_large(data, dtype: np.dtype) -> str:
    """The message for a Python integer that does not fit `dtype`, naming the largest one."""
    integers = [v for v in np.asarray(data, dtype=object).flat if isinstance(v, numbers.Integral)]
    digits = str(max(integers, key=abs)) if integers else "?"
    shown = digits if len(digits) <= 30 else f"{digits[:12]}... ({len(digits.lstrip('-'))} digits)"
    return f"cannot make a Tensor of dtype {dtype}: the integer {shown} does not fit in it"


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
            broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None
    return apply(ops.MatMul, a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, x (N, in_features), weight (out_features, in_features), bias (out_features,).

    One graph node (PyTorch's addmm): layers that project many rows at once (a recurrent layer's input
    projection for every step) keep one (N, out) array alive, not two, and a recurrent cell's step does
    not add a node that transposes its weight.
    """
    for what, t in (("x", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, Tensor) and not (what == "bias" and t is None):
            raise TypeError(f"linear: {what} must be a Tensor, got {type(t).__name__}")
    bias_shape = None if bias is None else bias.shape
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1] or bias_shape not in (None, weight.shape[:1]):
        raise ValueError(f"linear: shapes x {x.shape}, weight {weight.shape}, bias {bias_shape} do not fit "
                         "x (N, in), weight (out, in), bias (out,)")
    if any(t.dtype != x.dtype for t in (weight, bias) if t is not None):
        biased = "" if bias is None else f", bias {bias.dtype}"
        raise TypeError(f"linear: dtypes differ: x {x.dtype}, weight {weight.dtype}{biased}")
    return apply(ops.Linear, x, weight) if bias is None else apply(ops.Linear, x, weight, bias)


def _as_tensors(name: str, tensors: Sequence) -> list[Tensor]:
    if not isinstance(tensors, Sequence) or not tensors:
        raise TypeError(f"{name}() takes a non-empty list or tuple of tensors")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return _promote(*(_as_tensor(t, like) for t in tensors))


def cat(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; the others must match."""
    tensors = _as_tensors("cat", tensors)
    first = tensors[0]
    axis = check_axis("cat", axis, first.ndim)
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
    return apply(ops.Stack, *tensors, axis=check_axis("stack", axis, tensors[0].ndim + 1))


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
    broadcast_shape("where", cond.shape, a.shape, b.shape)
    return apply(ops.Where, cond, a, b)


def maximum(a, b) -> Tensor:
    """Elementwise maximum; ties split the gradient evenly."""
    a, b = _pair("maximum", a, b)
    return a._binary(ops.Maximum, b)


def minimum(a, b) -> Tensor:
    """Elementwise minimum; ties split the gradient evenly."""
    a, b = _pair("minimum", a, b)
    return a._binary(ops.Minimum, b)


# ---------------------------------------------------------------- creating graph nodes


def apply(fn_class: type[Function], *inputs: Tensor, **params):
    """Run one op on tensors of one device; link a graph node when grad mode is on and an input requires grad.

    Returns a Tensor, or a tuple of Tensors when `forward` returns a tuple (multi-output ops).
    This is the hot path of the engine: keep it lean (benchmarks/overhead.py times it).
    """
    first = inputs[0]
    device = first.device
    needs_grad = False
    for t in inputs:
        if t.device != device:
            raise RuntimeError(
                f"{fn_class.__name__}: tensors are on different devices, {device!r} and {t.device!r}; "
                "move them to one device with .to(device) first"
            )
        if t.requires_grad:
            needs_grad = True
    fn = fn_class.__new__(fn_class)
    fn.device = device
    fn.xp = first._xp
    fn.scope = STATE.scope
    fn.saved = None
    fn.details = {}
    if device == "cpu":
        out = fn.forward(*[t.array for t in inputs], **params)
    else:
        with use_device(device):
            out = fn.forward(*[t.array for t in inputs], **params)
    grad_fn = None
    if needs_grad and STATE.grad_enabled:
        grad_fn = fn
        fn.inputs = inputs
        fn.needs_grad = tuple([t.requires_grad for t in inputs])
        fn.freed = False
    device = fn.device  # an op that moves data (ToDevice) sets the device of its outputs
    anomaly = STATE.detect_anomaly
    if type(out) is not tuple:
        fn.num_outputs = 1
        out = as_array(out)
        if anomaly:
            check_finite(out, "forward", fn, inputs)
        return Tensor._make(out, device, grad_fn, 0)
    fn.num_outputs = len(out)
    if anomaly:
        for o in out:
            check_finite(o, "forward", fn, inputs)
    return tuple(Tensor._make(as_array(o), device, grad_fn, i) for i, o in enumerate(out))
