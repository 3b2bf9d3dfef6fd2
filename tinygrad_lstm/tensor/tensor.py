"""`Tensor`: an array on a device plus the graph node that made it. Thin sugar over the ops in `ops.py`."""

from __future__ import annotations

import numbers
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import inplace, ops, special
from .backend import array_module, device_of, is_backend_array, move, normalize_device, to_numpy, use_device
from .checks import broadcast_shape, check_axis, check_index, is_device_name, reduced_count, resolve_shape, shape_arg
from .errors import (
    ArgumentError,
    AxisError,
    DeviceError,
    DTypeError,
    IndexingError,
    InplaceError,
    NotSupportedError,
    ShapeError,
    StateError,
)
from .graph import STATE, Function, VersionCounter, as_array, check_finite, describe_tensor, no_grad, run_backward

DEFAULT_DTYPE = np.dtype(np.float32)
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_VIEW_OPS = frozenset({ops.Reshape, ops.Permute, ops.Expand, ops.Split, ops.Unbind, ops.Index})  # share storage


def check_dtype(who: str, dtype, kinds: str = _NUMERIC_KINDS) -> np.dtype:
    """`dtype` as a NumPy dtype of one of `kinds`, or an error naming the function and the dtype."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"{who}: {dtype!r} is not a dtype") from None
    if resolved.kind not in kinds:
        allowed = {"f": "floating point", "biuf": "boolean, integer or floating point"}.get(kinds, kinds)
        raise DTypeError(f"{who}: dtype {resolved} is not allowed here; use a {allowed} dtype")
    return resolved


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


MinMax = namedtuple("MinMax", ["values", "indices"])  # what max(dim)/min(dim) return, as PyTorch's


def _dims(op: str, dim, axis, keepdim: bool = False, keepdims: bool | None = None) -> tuple:
    """PyTorch's `dim`/`keepdim` or NumPy's `axis`/`keepdims` (the same arguments); giving both is an error."""
    if axis is not None:
        if dim is not None:
            raise ArgumentError(f"{op}(): got both dim={dim!r} and axis={axis!r}; they are one argument "
                                "(PyTorch's and NumPy's spelling), give one")
        dim = axis
    if keepdims is not None:
        if keepdim:
            raise ArgumentError(f"{op}(): got both keepdim= and keepdims=; they are one argument, give one")
        keepdim = keepdims
    return dim, bool(keepdim)


class Tensor:
    """An n-dimensional array with reverse-mode autodiff, on NumPy ("cpu") or CuPy ("cuda")."""

    __slots__ = ("array", "grad", "requires_grad", "name", "scope", "tags", "device", "_xp", "grad_fn", "_output_index",
                 "retains_grad", "_version_counter", "_hooks", "_used", "__weakref__")
    array: Any  # the backend array (numpy.ndarray or cupy.ndarray)
    grad: Tensor | None
    requires_grad: bool
    name: str | None
    scope: str  # the name scope it was made in
    tags: set[str]
    device: str
    _xp: Any  # the array module of `device`
    grad_fn: Function | None
    _output_index: int
    retains_grad: bool
    _version_counter: VersionCounter | None  # made on the first in-place change or view; None reads as version 0
    _hooks: dict[int, Callable[[Tensor], Tensor | None]] | None
    _used: bool  # a recorded node took it as an input
    __array_ufunc__ = None  # numpy defers to our reflected operators: np_array + tensor -> Tensor

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str | None = None,
                 name: str | None = None):
        if isinstance(data, Tensor):
            data = data.array
        if not (is_backend_array(data) or isinstance(data, np.generic)):
            data = _python_data_as_array(data, dtype)
        dtype = check_dtype("Tensor", dtype) if dtype is not None else data.dtype
        if dtype.kind not in _NUMERIC_KINDS:
            raise DTypeError(f"a Tensor holds booleans, integers or floats, not dtype {dtype}")
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
        self._version_counter = None
        self._hooks = None
        self._used = False

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

    def size(self, dim: int | None = None) -> tuple[int, ...] | int:
        """The shape (PyTorch's method); `size(d)` the length of axis d. `numel()` counts the elements."""
        return self.array.shape if dim is None else self.array.shape[check_axis("size", dim, self.ndim)]

    def numel(self) -> int:
        return self.array.size

    def dim(self) -> int:
        return self.array.ndim

    ndimension = dim

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def data(self) -> Tensor:
        """A tensor sharing this one's storage, outside the graph (PyTorch's `.data`).

        Changes made through it are not seen by autograd's version check (use `detach()` for that);
        `.array` is the backend array itself.
        """
        return Tensor._make(self.array, self.device, None)

    @data.setter
    def data(self, value: Tensor) -> None:
        """`p.data = t` makes `p` use `t`'s storage, as PyTorch: shape, dtype and device may change (this is how
        `Module.to` moves parameters while optimizers keep holding the same objects)."""
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if value.array is not self.array:
            self.array, self.device, self._xp, self._version_counter = value.array, value.device, value._xp, None

    @property
    def _version(self) -> int:
        """How many times this tensor's storage was changed in place (PyTorch's `_version`)."""
        counter = self._version_counter
        return 0 if counter is None else counter.value

    def _shared_counter(self) -> VersionCounter:
        """The version counter of this tensor's storage, made on first use (a view or an in-place change).

        Every change of the storage goes through the counter, so making it is the moment to tell the
        node that made this tensor, if that node kept the array for backward (Exp keeps its output).
        """
        counter = self._version_counter
        if counter is None:
            counter = self._version_counter = VersionCounter()
            fn = self.grad_fn
            saved = None if fn is None else fn.saved
            if fn is not None and saved is not None and _holds(
                    saved if type(saved) is tuple or type(saved) is list else (saved,), self.array):
                fn.saved_outputs += ((self._output_index, counter),)
        return counter

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
        body = np.array2string(to_numpy(self.array), separator=", ", prefix="tensor(")
        return f"tensor({body}{extras})"

    __hash__ = object.__hash__

    # ------------------------------------------------------------ conversion

    def numpy(self, force: bool = False) -> np.ndarray:
        """A NumPy array (copied from the GPU when needed); shares memory on the CPU.

        As PyTorch, a tensor that requires grad refuses (writing to the array would change the graph's
        data behind its back): use `.detach().numpy()`, or `force=True` for a copy.
        """
        if self.requires_grad and not force:
            raise StateError(f"can't call numpy() on a tensor that requires grad ({describe_tensor(self)}); "
                             "use tensor.detach().numpy() instead")
        return to_numpy(self.array)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if self.device != "cpu":
            raise TypeError(f"a tensor on {self.device!r} does not convert to NumPy implicitly; use .numpy() or .cpu()")
        return np.asarray(self.array, dtype=dtype)

    def item(self) -> float | int | bool:
        if self.array.size != 1:
            raise ShapeError(f"item() needs a tensor with one element, got shape {self.shape}")
        return to_numpy(self.array).reshape(()).item()

    def tolist(self):
        return to_numpy(self.array).tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise ShapeError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.item())

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.unbind()) if len(self) else iter(())

    def unbind(self, dim: int | None = None, *, axis: int | None = None) -> tuple[Tensor, ...]:
        """The slices along `dim` (or `axis`; 0 when not given), as one graph node: a loop over a sequence's steps
        iterates these."""
        dim, _ = _dims("unbind", dim, axis)
        axis = check_axis("unbind", 0 if dim is None else dim, self.ndim)
        moved = self if axis == 0 else self.permute(axis, *(i for i in range(self.ndim) if i != axis))
        return apply(ops.Unbind, moved) if moved.shape[0] else ()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (how truncated BPTT carries state between chunks).

        It shares the storage's version counter, so changing it in place is seen by the graph's checks.
        """
        out = Tensor._make(self.array, self.device, None)
        out._version_counter = self._shared_counter()
        return out

    def detach_(self) -> Tensor:
        """Cut this tensor from the graph, in place: it becomes a leaf that does not require grad."""
        self.grad_fn, self.requires_grad, self._output_index = None, False, 0
        return self

    def clone(self) -> Tensor:
        """A copy with its own storage that stays in the graph (the gradient flows back to `self`)."""
        return apply(ops.Cast, self, dtype=self.dtype) if _is_float(self.dtype) else \
            _constant(self.device, lambda a: a.copy(), self.array)

    def contiguous(self) -> Tensor:
        """Every op here accepts any memory layout; kept so PyTorch code runs unchanged."""
        return self

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Make this leaf track gradients (or stop); only floating point tensors can."""
        if flag and not _is_float(self.dtype):
            raise DTypeError(f"only floating point tensors can require grad, got dtype {self.dtype}")
        if not self.is_leaf and not flag:
            raise StateError("requires_grad_(False) is only for leaves; use .detach() on the result of an op")
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
            dtype = check_dtype("to", dtype)
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

    def type_as(self, other: Tensor) -> Tensor:
        """Cast to `other`'s dtype (the device stays)."""
        return self.to(other.dtype)

    # ------------------------------------------------------------ method forms, as PyTorch

    def add(self, other, alpha=None) -> Tensor:
        return self + (other if alpha is None else other * alpha)

    def sub(self, other, alpha=None) -> Tensor:
        return self - (other if alpha is None else other * alpha)

    def mul(self, other) -> Tensor:
        return self * other

    def div(self, other) -> Tensor:
        return self / other

    def pow(self, exponent) -> Tensor:
        return self**exponent

    def matmul(self, other) -> Tensor:
        return matmul(self, other)

    def neg(self) -> Tensor:
        return -self

    def square(self) -> Tensor:
        return self * self

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> HookHandle:
        """Call `hook(grad)` when this tensor's gradient is computed; a tensor it returns replaces the gradient.

        Returns a handle whose `remove()` unregisters the hook.
        """
        if not self.requires_grad:
            raise StateError("cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        handle = HookHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def _run_hooks(self, grad):
        """The gradient array after every hook had its say (the backward walk calls this)."""
        for hook in list(self._hooks.values()):
            result = hook(Tensor._make(grad, self.device, None))
            if result is not None:
                if not isinstance(result, Tensor) or result.shape != tuple(grad.shape):
                    raise ShapeError(f"a hook on a tensor of shape {self.shape} must return None or a Tensor of "
                                     f"that shape, got {getattr(result, 'shape', type(result).__name__)}")
                grad = result.array
        return grad

    # ------------------------------------------------------------ autograd

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`, weighted by `gradient` for non-scalars.

        The graph's saved arrays are freed afterwards unless `retain_graph=True`. Gradients are
        first order only: `create_graph=True` raises.
        """
        if create_graph:
            raise NotSupportedError("backward(create_graph=True): higher-order gradients are not supported; "
                                    "gradients here are arrays outside the graph")
        run_backward([self], [self._root_gradient(gradient, "backward()")], retain_graph)

    def _root_gradient(self, gradient, who: str):
        """The gradient a backward walk starts from at this output, checked: ones for a one-element output."""
        if not self.requires_grad:
            raise StateError(
                f"{who} on a tensor that does not require grad: no input of it has requires_grad=True "
                "(or it was computed under no_grad())"
            )
        if gradient is None:
            if self.array.size != 1:
                raise StateError(
                    f"{who} without a gradient needs a one-element output, got shape {self.shape}; "
                    "pass a gradient of the same shape"
                )
            if self.device == "cpu":  # no device context to enter (it costs more than the array here)
                return self._xp.ones(self.shape, dtype=self.dtype)
            with use_device(self.device):
                return self._xp.ones(self.shape, dtype=self.dtype)
        if isinstance(gradient, Tensor):
            grad = gradient.array
        elif is_backend_array(gradient) and device_of(gradient) != "cpu":
            grad = gradient  # a device array stays where it is (another device is refused below)
        else:  # lists and NumPy data move to the output's device, as host data does everywhere else
            grad = move(np.asarray(gradient), self.device)
        if tuple(grad.shape) != self.shape:
            raise ShapeError(f"{who}: gradient has shape {tuple(grad.shape)} but the output has shape {self.shape}")
        if device_of(grad) != self.device:
            raise DeviceError(f"{who}: gradient is on {device_of(grad)!r} but the output is on {self.device!r}")
        return grad.astype(self.dtype, copy=False)

    def _accumulate_grad(self, g, owned: bool = False) -> None:
        """Accumulate a finished gradient into `.grad`, copying arrays the walk does not own."""
        if self.grad is None:
            self.grad = Tensor._make(g if owned else g.copy(), self.device, None)
        else:
            self.grad.array += g

    # ------------------------------------------------------------ operators

    def _operands(self, other) -> tuple[Tensor, Tensor] | None:
        """`self` and `other` as tensors of one dtype family, as PyTorch promotes; None for unsupported types.

        A Python number, like a 0-d tensor or array of the same kind, takes the tensor's dtype (so float32
        stays float32); an integer or bool tensor meeting a float becomes that float (NumPy: float64).
        """
        if isinstance(other, Tensor):
            return (self, other) if self.array.dtype == other.array.dtype else _promote_pair(self, other)
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
            return _promote_pair(self, _as_tensor(other, self))
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

    # ------------------------------------------------------------ in place

    def _check_in_place(self, op: str, other=None) -> bool:
        """Refuse what PyTorch refuses; True when the change must be recorded in the graph.

        Recorded (grad mode on, and `self` or `other` requires grad): the op runs out of place and `self`
        then holds the result, as a new graph node. Not recorded (under `no_grad`, or on plain data): the
        result is written into `self`'s storage, which views share, and the storage's version goes up.
        """
        records = STATE.grad_enabled and (self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))
        if records and self.requires_grad:
            if self.grad_fn is None:
                raise InplaceError(
                    f"{op}: a leaf tensor that requires grad ({describe_tensor(self)}) is being used in an in-place "
                    "operation; update parameters inside `with tl.no_grad():`, or use an out-of-place op"
                )
            if type(self.grad_fn) in _VIEW_OPS:
                raise InplaceError(f"{op}: in-place change of a view ({self.grad_fn.op}) of a tensor that requires "
                                   "grad is not supported here; use an out-of-place op (x = x + y)")
        elif not getattr(self.array.flags, "writeable", True):
            raise InplaceError(f"{op}: this tensor ({describe_tensor(self)}) is a broadcast view (from expand) whose "
                               "elements share memory; call .clone() before changing it in place")
        return records

    def _bump(self, op: str) -> Tensor:
        counter = self._shared_counter()
        counter.value += 1
        counter.last_op = op
        return self

    def _rebind(self, op: str, result: Tensor) -> Tensor:
        """Make `self` the recorded result of an in-place op (its old value stays the node's input)."""
        if result.shape != self.shape:
            raise ShapeError(f"{op}: the result has shape {result.shape}, but an in-place op must keep the shape "
                             f"{self.shape} of the tensor it changes")
        if result.dtype != self.dtype:
            result = result.to(self.dtype)
        version = self._version + 1
        self.array, self.grad_fn, self._output_index = result.array, result.grad_fn, result._output_index
        self.requires_grad = result.requires_grad
        self._version_counter = VersionCounter(version, op)
        return self

    def _snapshot(self) -> Tensor:
        """This tensor as it is now, as its own object: the input of a recorded in-place op."""
        if self.grad_fn is not None and self.requires_grad and self._used:  # a recorded node took it as an input
            raise InplaceError(
                f"in-place change of a tensor ({describe_tensor(self)}) that the graph already uses as an input is "
                "not supported here (PyTorch records it); use an out-of-place op (x = x + y)"
            )
        old = Tensor._make(self.array, self.device, self.grad_fn, self._output_index)
        old.requires_grad, old._version_counter = self.requires_grad, self._version_counter
        return old

    def _arith_(self, op: str, fn: type[Function], ufunc: str, other, alpha=None) -> Tensor:
        if alpha is not None:
            other = other * alpha
        if self._check_in_place(op, other):
            old = self._snapshot()
            return self._rebind(op, old._binary(fn, old if other is self else other))
        pair = self._operands(other)
        if pair is None:
            raise TypeError(f"{op}() takes a Tensor or a number, got {type(other).__name__}")
        value = pair[1]
        result_kind = "f" if ufunc == "true_divide" else np.result_type(self.dtype, value.dtype).kind
        if result_kind == "f" and self.dtype.kind != "f" or result_kind != "b" and self.dtype.kind == "b":
            raise DTypeError(f"{op}: the result would have a {result_kind!r}-kind dtype, which can't be stored in "
                             f"place in a tensor of dtype {self.dtype}")
        if value.device != self.device:
            raise DeviceError(f"{op}: tensors are on different devices, {self.device!r} and {value.device!r}")
        if value.shape != self.shape and broadcast_shape(op, self.shape, value.shape) != self.shape:
            raise ShapeError(f"{op}: a tensor of shape {value.shape} does not broadcast to the shape {self.shape} "
                             "of the tensor changed in place")
        getattr(self._xp, ufunc)(self.array, value.array, out=self.array, casting="unsafe")
        return self._bump(op)

    def __iadd__(self, other):
        return self._arith_("add_", ops.Add, "add", other)

    def __isub__(self, other):
        return self._arith_("sub_", ops.Sub, "subtract", other)

    def __imul__(self, other):
        return self._arith_("mul_", ops.Mul, "multiply", other)

    def __itruediv__(self, other):
        return self._arith_("div_", ops.Div, "true_divide", other)

    def add_(self, other, alpha=None) -> Tensor:
        """self += alpha * other, in place (PyTorch's rules: see `_check_in_place`)."""
        return self._arith_("add_", ops.Add, "add", other, alpha)

    def sub_(self, other, alpha=None) -> Tensor:
        return self._arith_("sub_", ops.Sub, "subtract", other, alpha)

    def mul_(self, other) -> Tensor:
        return self._arith_("mul_", ops.Mul, "multiply", other)

    def div_(self, other) -> Tensor:
        return self._arith_("div_", ops.Div, "true_divide", other)

    def _write_(self, op: str, value: Callable[[Tensor], Tensor], other=None) -> Tensor:
        """Set every element to `value(self)` (broadcast to this shape, cast to this dtype), in place.

        Recorded, it is `where(True, value(old), old)`: `old` gets a zero gradient and the result keeps
        requiring grad, as PyTorch's `fill_`/`copy_` on a tensor that requires grad.
        """
        if self._check_in_place(op, other):
            old = self._snapshot()
            keep = _constant(self.device, lambda: self._xp.ones(self.shape, dtype=bool))
            return self._rebind(op, where(keep, value(old).to(self.dtype), old))
        with no_grad():
            new = value(self)
        if new.shape != self.shape and broadcast_shape(op, new.shape, self.shape) != self.shape:
            raise ShapeError(f"{op}: a value of shape {new.shape} does not broadcast to the shape {self.shape}")
        if new.device != self.device:
            raise DeviceError(f"{op}: the value is on {new.device!r} but the tensor on {self.device!r}")
        self.array[...] = new.array
        return self._bump(op)

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value) -> Tensor:
        """Every element set to `value` (a number or a one-element tensor)."""
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ShapeError(f"fill_ takes a number or a one-element tensor, got shape {value.shape}")
            return self._write_("fill_", lambda t: value.reshape(()), value)
        if not isinstance(value, numbers.Number):
            raise TypeError(f"fill_ takes a number or a one-element tensor, got {type(value).__name__}")
        return self._write_("fill_", lambda t: _constant(t.device, lambda: t._xp.asarray(value, dtype=t.dtype)))

    def copy_(self, src) -> Tensor:
        """Copy `src` (broadcast to this shape, cast to this dtype, moved to this device) into this tensor."""
        src = src if isinstance(src, Tensor) else Tensor(src, dtype=self.dtype, device=self.device)
        if src.shape != self.shape and broadcast_shape("copy_", src.shape, self.shape) != self.shape:
            raise ShapeError(f"copy_: a tensor of shape {src.shape} does not broadcast to shape {self.shape}")
        return self._write_("copy_", lambda t: src.to(t.device, t.dtype), src)

    def clamp_(self, min=None, max=None) -> Tensor:  # noqa: A002 - PyTorch's names
        return self._write_("clamp_", lambda t: t.clip(min, max))

    clip_ = clamp_

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        """Fill with samples from U(a, b) (the generator `tl.manual_seed` seeds)."""
        from .creation import rand

        sample = rand(self.shape, dtype=self.dtype, device=self.device)
        return self._write_("uniform_", lambda t: sample * (b - a) + a)

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Fill with samples from N(mean, std^2)."""
        from .creation import randn

        sample = randn(self.shape, dtype=self.dtype, device=self.device)
        return self._write_("normal_", lambda t: sample * std + mean)

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
            raise DeviceError(f"{name}: tensors are on different devices, {a.device!r} and {b.device!r}")
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

    def erf(self) -> Tensor:
        return apply(special.Erf, self._as_float())

    def clip(self, min=None, max=None) -> Tensor:  # noqa: A002 - NumPy's and PyTorch's names
        """Clamp into [min, max] (either may be None); the bounds are numbers."""
        if min is None and max is None:
            raise ArgumentError("clip() needs at least one of min and max")
        for bound in (min, max):
            if bound is not None and not isinstance(bound, numbers.Real):
                raise TypeError(f"clip() bounds are numbers, got {type(bound).__name__}; use tl.maximum/tl.minimum")
        return apply(ops.Clip, self, low=min, high=max)

    clamp = clip

    # ------------------------------------------------------------ reductions
    # PyTorch's spelling first (dim=, keepdim=), NumPy's (axis=, keepdims=) accepted as keywords.

    def sum(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        if axis is not None or keepdims is not None:
            dim, keepdim = _dims("sum", dim, axis, keepdim, keepdims)
        return apply(ops.Sum, self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        dim, keepdim = _dims("mean", dim, axis, keepdim, keepdims)
        total, count = self._as_float().sum(dim, keepdim), reduced_count(self.shape, dim)
        return total / count if count else total * float("nan")

    def var(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction: int | None = None,
            axis=None, keepdims: bool | None = None) -> Tensor:
        """Variance with Bessel's correction by default (`correction=1`, or `unbiased=True`), as PyTorch."""
        dim, keepdim = _dims("var", dim, axis, keepdim, keepdims)
        return apply(ops.Var, self, axis=dim, keepdims=keepdim, correction=_correction("var", unbiased, correction))

    def std(self, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction: int | None = None,
            axis=None, keepdims: bool | None = None) -> Tensor:
        """Standard deviation, with the corrections of `var`."""
        dim, keepdim = _dims("std", dim, axis, keepdim, keepdims)
        return apply(ops.Std, self, axis=dim, keepdims=keepdim, correction=_correction("std", unbiased, correction))

    def _extreme(self, op: type[Function], arg: str, dim, keepdim, axis, keepdims):
        if isinstance(dim, Tensor):  # x.max(y): PyTorch's elementwise form
            return (maximum if op is ops.Max else minimum)(self, dim)
        with_indices = dim is not None and isinstance(dim, int | np.integer)
        dim, keepdim = _dims(op.__name__.lower(), dim, axis, keepdim, keepdims)
        values = apply(op, self, axis=dim, keepdims=keepdim)
        if not with_indices:
            return values
        indices = getattr(self, arg)(dim, keepdim)
        return MinMax(values, indices)

    def max(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None):
        """The maximum: over everything, over `axis=` (NumPy: the values), or over `dim` (PyTorch: a named
        tuple (values, indices)); `x.max(y)` is the elementwise maximum. Ties share the gradient evenly."""
        return self._extreme(ops.Max, "argmax", dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None):
        """As `max`, for the minimum."""
        return self._extreme(ops.Min, "argmin", dim, keepdim, axis, keepdims)

    def amax(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        """The maximum values only, over one axis or several (PyTorch's amax)."""
        dim, keepdim = _dims("amax", dim, axis, keepdim, keepdims)
        return apply(ops.Max, self, axis=dim, keepdims=keepdim)

    def amin(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        dim, keepdim = _dims("amin", dim, axis, keepdim, keepdims)
        return apply(ops.Min, self, axis=dim, keepdims=keepdim)

    def logsumexp(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        dim, keepdim = _dims("logsumexp", dim, axis, keepdim, keepdims)
        return apply(ops.LogSumExp, self, axis=dim, keepdims=keepdim)

    def softmax(self, dim: int | None = None, *, axis: int | None = None) -> Tensor:
        """Softmax over `dim` (the last axis when not given)."""
        dim, _ = _dims("softmax", dim, axis)
        return apply(ops.Softmax, self, axis=check_axis("softmax", -1 if dim is None else dim, self.ndim))

    def log_softmax(self, dim: int | None = None, *, axis: int | None = None) -> Tensor:
        dim, _ = _dims("log_softmax", dim, axis)
        return apply(ops.LogSoftmax, self, axis=check_axis("log_softmax", -1 if dim is None else dim, self.ndim))

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None,
               keepdims: bool | None = None) -> Tensor:
        """Indices of the maxima (no gradient), int64."""
        return self._arg_extreme("argmax", dim, keepdim, axis, keepdims)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None,
               keepdims: bool | None = None) -> Tensor:
        """Indices of the minima (no gradient), int64."""
        return self._arg_extreme("argmin", dim, keepdim, axis, keepdims)

    def _arg_extreme(self, op: str, dim, keepdim, axis, keepdims) -> Tensor:
        """argmax/argmin as PyTorch: a 0-d tensor is one element (index 0); nothing to pick from is an error."""
        dim, keepdim = _dims(op, dim, axis, keepdim, keepdims)
        if dim is None and self.numel() == 0:
            raise AxisError(f"{op}(): the tensor is empty (shape {self.shape}), so it has no {op}; give a dim "
                            "of non-zero length to reduce over")
        if dim is not None:
            dim = check_axis(op, dim, self.ndim)
            if self.ndim and self.shape[dim] == 0:
                raise AxisError(f"{op}(): dim {dim} of shape {self.shape} has length 0, so it has no {op}")
        keep = keepdim and self.ndim > 0  # a 0-d tensor stays 0-d, as in PyTorch
        return _constant(self.device, lambda a: getattr(a.reshape(-1) if a.ndim == 0 else a, op)(
            axis=dim, keepdims=keep).astype(np.int64, copy=False), self.array)

    def isfinite(self) -> Tensor:
        return _constant(self.device, lambda a: self._xp.isfinite(a), self.array)

    def isnan(self) -> Tensor:
        return _constant(self.device, lambda a: self._xp.isnan(a), self.array)

    def isinf(self) -> Tensor:
        return _constant(self.device, lambda a: self._xp.isinf(a), self.array)

    def all(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        dim, keepdim = _dims("all", dim, axis, keepdim, keepdims)
        axes = ops.normalize_axes(dim, self.ndim)
        return _constant(self.device, lambda a: a.all(axis=axes, keepdims=keepdim), self.array)

    def any(self, dim=None, keepdim: bool = False, *, axis=None, keepdims: bool | None = None) -> Tensor:
        dim, keepdim = _dims("any", dim, axis, keepdim, keepdims)
        axes = ops.normalize_axes(dim, self.ndim)
        return _constant(self.device, lambda a: a.any(axis=axes, keepdims=keepdim), self.array)

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
            raise ShapeError(f"permute: {axes} is not a permutation of the {self.ndim} axes of shape {self.shape}")
        return self if axes == tuple(range(self.ndim)) else apply(ops.Permute, self, axes=axes)

    def squeeze(self, dim=None, *, axis=None) -> Tensor:
        """Drop axes of length 1 (all of them, or those named that have length 1, as PyTorch)."""
        dim, _ = _dims("squeeze", dim, axis)
        if dim is None:
            axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        else:
            axes = ops.normalize_axes(dim, self.ndim)
        return self.reshape(tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1)))

    def unsqueeze(self, dim: int | None = None, *, axis: int | None = None) -> Tensor:
        dim, _ = _dims("unsqueeze", dim, axis)
        if dim is None:
            raise TypeError("unsqueeze() needs the position of the new axis (dim)")
        dim = check_axis("unsqueeze", dim, self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def flatten(self, start_dim: int = 0, end_dim: int = -1, *, start_axis: int | None = None,
                end_axis: int | None = None) -> Tensor:
        """Merge the axes from `start_dim` to `end_dim` (inclusive) into one (`start_axis`/`end_axis` also)."""
        start_dim = start_dim if start_axis is None else _dims("flatten", start_dim or None, start_axis)[0]
        end_dim = end_dim if end_axis is None else _dims("flatten", None if end_dim == -1 else end_dim, end_axis)[0]
        if self.ndim == 0:
            return self.reshape(1)
        start, end = check_axis("flatten", start_dim, self.ndim), check_axis("flatten", end_dim, self.ndim)
        if start > end:
            raise ArgumentError(f"flatten: start_dim (start_axis) {start_dim} comes after end_dim (end_axis) {end_dim} "
                                f"(shape {self.shape})")
        return self.reshape(self.shape[:start] + (-1,) + self.shape[end + 1 :])

    def t(self) -> Tensor:
        """The transpose of a matrix (a 0-d or 1-d tensor is returned as is), as PyTorch."""
        if self.ndim > 2:
            raise ShapeError(f"t() expects a tensor of at most 2 dimensions, got shape {self.shape}; use transpose()")
        return self.transpose() if self.ndim == 2 else self

    def expand(self, *shape) -> Tensor:
        """Broadcast to `shape` without copying; -1 keeps an existing axis's length."""
        shape = shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0 or any(n == -1 for n in shape[:lead]):
            raise ShapeError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        shape = shape[:lead] + tuple(old if n == -1 else n for n, old in zip(shape[lead:], self.shape, strict=True))
        if any(old != n and old != 1 for old, n in zip(self.shape, shape[lead:], strict=True)):
            raise ShapeError(f"expand: a tensor of shape {self.shape} cannot be expanded to {shape}")
        return self if shape == self.shape else apply(ops.Expand, self, shape=shape)

    def split(self, split_size_or_sections: int | Sequence[int], dim: int | None = None, *,
              axis: int | None = None) -> tuple[Tensor, ...]:
        """Pieces of `split_size` along `dim` (the last may be shorter), or of the given sizes."""
        dim, _ = _dims("split", dim, axis)
        axis = check_axis("split", 0 if dim is None else dim, self.ndim)
        length = self.shape[axis]
        if isinstance(split_size_or_sections, int | np.integer):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ArgumentError(f"split size must be positive, got {step}")
            sizes = [min(step, length - s) for s in range(0, length, step)] or [0]
        else:
            sizes = [int(n) for n in split_size_or_sections]
            if sum(sizes) != length or any(n < 0 for n in sizes):
                raise ShapeError(f"split sizes {sizes} must be >= 0 and add up to {length}, the length of axis {axis}")
        return apply(ops.Split, self, sizes=sizes, axis=axis)

    def chunk(self, chunks: int, dim: int | None = None, *, axis: int | None = None) -> tuple[Tensor, ...]:
        """At most `chunks` pieces of equal size (the last may be shorter), as PyTorch; an empty axis gives
        `chunks` empty pieces."""
        dim, _ = _dims("chunk", dim, axis)
        dim = 0 if dim is None else dim
        if not isinstance(chunks, int | np.integer) or chunks <= 0:
            raise ArgumentError(f"chunk() needs a positive number of chunks, got {chunks!r}")
        length = self.shape[check_axis("chunk", dim, self.ndim)]
        if length == 0:
            return self.split([0] * int(chunks), dim)
        return self.split(-(-length // chunks), dim)

    def __getitem__(self, index) -> Tensor:
        if type(index) is slice or type(index) is int:  # the common cases, without the general conversion
            check_index((index,), self.shape)
            return apply(ops.Index, self, index=(index,))
        index = self._backend_index(index)
        if _has_int_and_array(index):  # PyTorch applies the integers first, then the arrays
            basic = tuple(p if _is_int(p) or _is_new_axis(p) or p is Ellipsis else slice(None) for p in index
                          for _ in range(p.ndim if is_backend_array(p) and p.dtype == bool else 1))
            rest = tuple(slice(None) if _is_new_axis(p) else p for p in index if not _is_int(p))
            return apply(ops.Index, apply(ops.Index, self, index=basic), index=rest)
        return apply(ops.Index, self, index=index)

    def __setitem__(self, index, value) -> None:
        """`x[index] = value`, in place, with the in-place rules (refused on a leaf that requires grad
        outside `no_grad`; recorded in the graph on the result of an op)."""
        value = value if isinstance(value, Tensor) else Tensor(value, dtype=self.dtype, device=self.device)
        backend_index = self._backend_index(index)
        if _has_int_and_array(backend_index):
            raise IndexingError("assignment through an index that mixes integers and arrays is not supported; "
                                "index in two steps")
        target_shape = _constant(self.device, lambda a: a[backend_index], self.array).shape
        if value.shape != target_shape and broadcast_shape("index assignment", value.shape, target_shape) != \
                target_shape:
            raise ShapeError(f"cannot assign a value of shape {value.shape} to the indexed shape {target_shape}")
        if self._check_in_place("__setitem__", value):
            old = self._snapshot()
            self._rebind("__setitem__", apply(inplace.IndexPut, old, value.to(self.dtype), index=backend_index))
            return
        if value.device != self.device:
            raise DeviceError(f"index assignment: the value is on {value.device!r}, the tensor on {self.device!r}")
        self.array[backend_index] = value.array
        self._bump("__setitem__")

    def _backend_index(self, index) -> tuple:
        """Turn Tensors, lists and NumPy arrays inside an index into checked backend arrays on this device."""
        parts = index if isinstance(index, tuple) else (index,)
        converted = []
        for part in parts:
            if isinstance(part, Tensor):
                if part.device != self.device:
                    raise DeviceError(
                        f"index tensor is on {part.device!r} but the indexed tensor is on {self.device!r}"
                    )
                part = part.array
            elif isinstance(part, np.ndarray) and part.ndim == 0:
                part = part.item() if part.dtype.kind in "biu" else part  # an integer (or bool), as in NumPy
            elif isinstance(part, list | tuple | np.ndarray):  # checked on the host, then moved: no device sync
                part = np.asarray(part) if len(part) else np.zeros(0, dtype=np.int64)
            if is_backend_array(part) and part.dtype.kind not in "biu":
                raise IndexingError(f"index arrays must be integer or bool, got dtype {part.dtype}")
            converted.append(part)
        check_index(tuple(converted), self.shape)
        return tuple(move(p, self.device) if isinstance(p, np.ndarray) else p for p in converted)

    # The dtype casts come last: inside the class body their names (float, int, bool) shadow the builtins,
    # and type checkers would read the annotations of methods below them as these methods.

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)


def _is_int(part) -> bool:
    return isinstance(part, int | np.integer) and not isinstance(part, bool | np.bool_)


def _is_new_axis(part) -> bool:
    return part is None or isinstance(part, bool | np.bool_)


def _has_int_and_array(index: tuple) -> bool:
    """An index where NumPy and PyTorch place the dimensions differently (x[0, :, [1, 2]])."""
    return any(_is_int(p) for p in index) and any(is_backend_array(p) and p.ndim for p in index)


class HookHandle:
    """What `register_hook` (and Module's hooks) return: `remove()` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, HookHandle._next_id
        HookHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


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
    integers = [int(v) for v in np.asarray(data, dtype=object).flat if isinstance(v, numbers.Integral)]
    digits = str(max(integers, key=abs)) if integers else "?"
    shown = digits if len(digits) <= 30 else f"{digits[:12]}... ({len(digits.lstrip('-'))} digits)"
    return f"cannot make a Tensor of dtype {dtype}: the integer {shown} does not fit in it"


def _constant(device: str, compute: Callable, *arrays) -> Tensor:
    """A tensor outside the graph from `compute(*arrays)`, run with `device` current (CuPy allocates there)."""
    if device == "cpu":
        return Tensor._make(as_array(compute(*arrays)), device, None)
    with use_device(device):
        return Tensor._make(compute(*arrays), device, None)


def _promote_pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """As `_promote`, with PyTorch's rule for a 0-d operand: beside a tensor with dimensions and a dtype of
    the same kind, it takes that tensor's dtype (float32 * 0-d float64 stays float32)."""
    if a.dtype != b.dtype and (a.ndim == 0) != (b.ndim == 0) and _kind(a.dtype) == _kind(b.dtype):
        return (a.to(b.dtype), b) if a.ndim == 0 else (a, b.to(a.dtype))
    a, b = _promote(a, b)
    return a, b


def _kind(dtype: np.dtype) -> str:
    return "i" if dtype.kind in "iu" else dtype.kind


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
        raise ShapeError(f"matmul needs tensors of at least 1 dimension, got shapes {a.shape} and {b.shape}")
    inner_a = a.shape[-1]
    inner_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not match ({inner_a} != {inner_b})")
    if a.ndim > 2 and b.ndim > 2:
        try:
            broadcast_shape("matmul", a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ShapeError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} do not broadcast") from None
    return apply(ops.MatMul, a, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, x (..., in_features), weight (out_features, in_features), bias (out_features,).

    One graph node (PyTorch's addmm): layers that project many rows at once (a recurrent layer's input
    projection for every step) keep one (..., out) array alive, not two, and a recurrent cell's step does
    not add a node that transposes its weight.
    """
    for what, t in (("x", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, Tensor) and not (what == "bias" and t is None):
            raise TypeError(f"linear: {what} must be a Tensor, got {type(t).__name__}")
    bias_shape = None if bias is None else bias.shape
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1] or bias_shape not in (None, weight.shape[:1]):
        raise ValueError(f"linear: shapes x {x.shape}, weight {weight.shape}, bias {bias_shape} do not fit "
                         "x (..., in), weight (out, in), bias (out,)")
    if any(t.dtype != x.dtype for t in (weight, bias) if t is not None):
        biased = "" if bias is None else f", bias {bias.dtype}"
        raise TypeError(f"linear: dtypes differ: x {x.dtype}, weight {weight.dtype}{biased}")
    return apply(ops.Linear, x, weight) if bias is None else apply(ops.Linear, x, weight, bias)


def _as_tensors(name: str, tensors: Sequence) -> list[Tensor]:
    if not isinstance(tensors, Sequence) or not tensors:
        raise TypeError(f"{name}() takes a non-empty list or tuple of tensors")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    return _promote(*(_as_tensor(t, like) for t in tensors))


def cat(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing axis (`dim`, or NumPy's `axis`; 0 when not given); the others must match."""
    dim, _ = _dims("cat", dim, axis)
    tensors = _as_tensors("cat", tensors)
    first = tensors[0]
    axis = check_axis("cat", 0 if dim is None else dim, first.ndim)
    for t in tensors:
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]:
            raise ShapeError(f"cat along axis {axis}: shapes {first.shape} and {t.shape} differ off that axis")
    return apply(ops.Cat, *tensors, axis=axis)


def stack(tensors: Sequence[Tensor], dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Join tensors of one shape along a new axis (`dim` or `axis`; 0 when not given)."""
    dim, _ = _dims("stack", dim, axis)
    tensors = _as_tensors("stack", tensors)
    for t in tensors:
        if t.shape != tensors[0].shape:
            raise ShapeError(f"stack needs tensors of one shape, got {tensors[0].shape} and {t.shape}")
    return apply(ops.Stack, *tensors, axis=check_axis("stack", 0 if dim is None else dim, tensors[0].ndim + 1))


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
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):  # two numbers: PyTorch's dtype for them
        integral = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (a, b))
        a = Tensor(a, device=cond.device, dtype=np.int64 if integral else None)
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
            raise DeviceError(
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
        fn.freed = False
        flags = []
        saved = fn.saved
        if saved is None:
            fn.saved_versions = None
            for t in inputs:
                t._used = True  # an in-place change of it can no longer be recorded (see _snapshot)
                flags.append(t.requires_grad)
        else:  # versions of the inputs the node saved (-1: not saved): changing those in place makes backward raise
            items = saved if type(saved) is tuple or type(saved) is list else (saved,)
            versions = []
            for t in inputs:
                t._used = True
                flags.append(t.requires_grad)
                counter = t._version_counter
                versions.append((0 if counter is None else counter.value) if _holds(items, t.array) else -1)
            fn.saved_versions = tuple(versions)
            fn.saved_outputs = ()
        fn.needs_grad = tuple(flags)
    device = fn.device  # an op that moves data (ToDevice) sets the device of its outputs
    anomaly = STATE.detect_anomaly
    if type(out) is not tuple:
        fn.num_outputs = 1
        out = as_array(out)
        if anomaly:
            check_finite(out, "forward", fn, inputs)
        result = Tensor._make(out, device, grad_fn, 0)
        if fn_class in _VIEW_OPS and _is_view(fn_class, params):
            result._version_counter = first._shared_counter()
        return result
    fn.num_outputs = len(out)
    if anomaly:
        for o in out:
            check_finite(o, "forward", fn, inputs)
    results = tuple(Tensor._make(as_array(o), device, grad_fn, i) for i, o in enumerate(out))
    if fn_class in _VIEW_OPS:
        counter = first._shared_counter()
        for r in results:
            r._version_counter = counter
    return results


def _correction(op: str, unbiased: bool | None, correction: int | None) -> int:
    """PyTorch's two spellings of Bessel's correction: `unbiased=True/False` or `correction=N` (default 1)."""
    if unbiased is not None:
        if correction is not None:
            raise ArgumentError(f"{op}(): give either unbiased= or correction=, not both")
        return int(bool(unbiased))
    return 1 if correction is None else correction


def _is_view(fn_class: type[Function], params: dict) -> bool:
    """Basic indexing gives a view of the input; integer-array and mask indexing give a copy."""
    return fn_class is not ops.Index or not any(is_backend_array(p) for p in params["index"])


def _holds(items: tuple | list, array) -> bool:
    """Is `array`, or a view of its memory, among the items a node saved?"""
    for item in items:
        if item is array:
            return True
    owner = array if array.base is None else array.base
    for item in items:
        base = getattr(item, "base", None)
        if base is not None and base is owner:
            return True
    return False
