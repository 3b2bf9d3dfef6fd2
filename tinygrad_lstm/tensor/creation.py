"""Tensor factories and the global random seed, as PyTorch's (`tl.tensor`, `tl.zeros`, `tl.randn`, ...).

Every factory checks its dtype and sizes at the boundary: a dtype a Tensor cannot hold (strings,
objects, complex) or a negative size is refused with a message naming the argument.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from .backend import array_module, device_of, is_backend_array, normalize_device, seed_all, use_device
from .checks import shape_arg
from .errors import ArgumentError
from .tensor import _NUMERIC_KINDS, DEFAULT_DTYPE, Tensor, check_dtype

_SEED_RANGE = (-(2**63), 2**64 - 1)  # PyTorch's: negative seeds are taken modulo 2**64


class _Random:
    """The NumPy generator behind `randn`/`rand`/`randint` on the CPU; `manual_seed` replaces it."""

    generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed every backend (NumPy now, CuPy now or when it is first used), for reproducible runs.

    As PyTorch, any integer in [-2**63, 2**64) is a seed; a negative one is read modulo 2**64.
    """
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: seed must be an integer, got {seed!r}")
    if not _SEED_RANGE[0] <= seed <= _SEED_RANGE[1]:
        raise ArgumentError(f"manual_seed: seed must be in [-2**63, 2**64), got {seed}")
    _Random.generator = seed_all(int(seed) % 2**64)


def _sizes(who: str, shape: tuple) -> tuple[int, ...]:
    """f(2, 3) or f((2, 3)) as a shape, with a negative size named."""
    sizes = shape_arg(shape)
    for n in sizes:
        if n < 0:
            raise ArgumentError(f"{who}: negative size {n} in the shape {sizes}; sizes must be >= 0")
    return sizes


def _new(who: str, make: Callable, shape: tuple, dtype, device: str | None, requires_grad: bool,
         kinds: str = _NUMERIC_KINDS) -> Tensor:
    """`make(xp, shape, dtype)` run with `device` current, as a leaf tensor (float32 unless `dtype` says)."""
    device = normalize_device(device)
    dtype = check_dtype(who, dtype, kinds) if dtype is not None else DEFAULT_DTYPE
    shape = _sizes(who, shape)
    with use_device(device):
        data = make(array_module(device), shape, dtype)
    return Tensor._make(data, device, None).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _new("zeros", lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _new("ones", lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """As PyTorch's `empty`, but filled with zeros (uninitialised memory would only make runs differ)."""
    return _new("empty", lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def _fill_dtype(fill_value) -> np.dtype:
    """PyTorch's inference for a fill value: bool -> bool, integer -> int64, anything else -> float32."""
    if isinstance(fill_value, bool | np.bool_):
        return np.dtype(bool)
    if isinstance(fill_value, numbers.Integral):
        return np.dtype(np.int64)
    return DEFAULT_DTYPE


def full(size, fill_value, *, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A tensor of `size` filled with `fill_value`; the dtype follows the value (4 -> int64, 4.0 -> float32)."""
    if not isinstance(fill_value, numbers.Number):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    dtype = _fill_dtype(fill_value) if dtype is None else dtype
    size = (size,) if isinstance(size, int | np.integer) else tuple(size)
    return _new("full", lambda xp, s, d: xp.full(s, fill_value, dtype=d), size, dtype, device, requires_grad)


def _sample(kind: str) -> Callable:
    def make(xp, shape, dtype):
        if xp is np:
            draw = _Random.generator.standard_normal if kind == "normal" else _Random.generator.random
        else:
            draw = xp.random.standard_normal if kind == "normal" else xp.random.random
        return draw(shape, dtype=dtype) if dtype in (np.float32, np.float64) else draw(shape).astype(dtype)

    return make


def randn(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (a floating point dtype)."""
    return _new("randn", _sample("normal"), shape, dtype, device, requires_grad, kinds="f")


def rand(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) (a floating point dtype)."""
    return _new("rand", _sample("uniform"), shape, dtype, device, requires_grad, kinds="f")


def randint(low: int, high: int | None = None, size: tuple = (), *, dtype=None, device: str | None = None) -> Tensor:
    """Integers drawn uniformly from [low, high) (int64 unless `dtype` says); `randint(high, size)` from 0."""
    if high is None or isinstance(high, tuple | list):
        low, high, size = 0, low, high if high is not None else size
    if not high > low:
        raise ArgumentError(f"randint: high ({high}) must be greater than low ({low})")

    def make(xp, shape, d):
        if xp is np:
            return _Random.generator.integers(low, high, shape).astype(d, copy=False)
        return xp.random.randint(low, high, shape).astype(d, copy=False)

    return _new("randint", make, (size,), np.int64 if dtype is None else dtype, device, False)


def _like(who: str, t: Tensor, dtype, device) -> tuple:
    if not isinstance(t, Tensor):
        raise TypeError(f"{who} takes a Tensor, got {type(t).__name__}")
    return t.shape, t.dtype if dtype is None else dtype, device or t.device


def zeros_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like("zeros_like", t, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like("ones_like", t, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like("full_like", t, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like("randn_like", t, dtype, device)
    return randn(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def rand_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    shape, dtype, device = _like("rand_like", t, dtype, device)
    return rand(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """As PyTorch: integers give int64, any float gives float32; the step must not be zero."""
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ArgumentError(f"arange: {name} must be a finite number, got {value!r}")
    if step == 0:
        raise ArgumentError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ArgumentError(f"arange: end ({end}) lies on the wrong side of start ({start}) for step {step}")
    if dtype is None:
        integral = all(isinstance(v, int | np.integer) for v in (start, end, step))
        dtype = np.int64 if integral else DEFAULT_DTYPE
    return _new("arange", lambda xp, _, d: xp.arange(start, end, step, dtype=d), (), dtype, device, requires_grad)


def linspace(start: float, end: float, steps: int, *, dtype=None, device: str | None = None,
             requires_grad: bool = False) -> Tensor:
    """`steps` evenly spaced values from `start` to `end`, both included."""
    if not isinstance(steps, int | np.integer) or steps < 0:
        raise ArgumentError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return _new("linspace", lambda xp, _, d: xp.linspace(start, end, int(steps), dtype=d), (), dtype, device,
                requires_grad)


def eye(n: int, m: int | None = None, *, dtype=None, device: str | None = None,
        requires_grad: bool = False) -> Tensor:
    """The n x m identity matrix (n x n when `m` is not given)."""
    m = n if m is None else m
    return _new("eye", lambda xp, s, d: xp.eye(*s, dtype=d), (n, m), dtype, device, requires_grad)


# ---------------------------------------------------------------- from data


def tensor(data, *, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """A new tensor copied from `data`, with PyTorch's dtype inference: Python floats -> float32, ints ->
    int64, bools -> bool; NumPy arrays and tensors keep their dtype. (`tl.Tensor(data)` is float32, as
    `torch.Tensor(data)`.)"""
    if dtype is None:
        dtype = _inferred_dtype(data)
    else:
        dtype = check_dtype("tensor", dtype)
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def _inferred_dtype(data) -> np.dtype | None:
    if isinstance(data, Tensor) or is_backend_array(data) or isinstance(data, np.generic):
        return None  # their own dtype
    array = np.asarray(data) if not isinstance(data, bool | int | float) else None
    if array is None:
        return _fill_dtype(data)
    if array.dtype.kind in "iu":
        return np.dtype(np.int64)
    if array.dtype.kind == "f":
        return DEFAULT_DTYPE
    return None  # bool, or not numbers at all (Tensor names the problem)


def as_tensor(data, dtype=None, device: str | None = None) -> Tensor:
    """`data` as a tensor, sharing memory when it already is one (or a NumPy array on the CPU) of the asked
    dtype and device; otherwise a copy, with `tl.tensor`'s dtype inference."""
    if isinstance(data, Tensor):
        return data.to(*(v for v in (device, dtype) if v is not None))
    if is_backend_array(data) and data.dtype.kind in _NUMERIC_KINDS:
        same = (dtype is None or check_dtype("as_tensor", dtype) == data.dtype) and (device is None or
                                                                      normalize_device(device) == device_of(data))
        if same:
            return Tensor._make(data, device_of(data), None)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with the NumPy `array` (changes to one show in the other), as PyTorch."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    check_dtype("from_numpy", array.dtype)
    return Tensor._make(array, "cpu", None)
