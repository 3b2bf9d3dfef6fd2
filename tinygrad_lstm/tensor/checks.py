"""Checks at the API boundary: shapes, axes, broadcasts and indices, each failing with a message that names
the offending value and the shapes involved, instead of an error from deep inside NumPy or CuPy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import zip_longest

import numpy as np

from .backend import array_module, device_of, is_backend_array, to_numpy
from .errors import AxisError, IndexingError, ShapeError
from .ops import normalize_axes


def is_device_name(name: str) -> bool:
    """'cpu', 'cuda', 'cuda:N' and anything that is not a dtype (so a typo gets the device error)."""
    if name in ("cpu", "cuda") or name.startswith("cuda:"):
        return True
    try:
        np.dtype(name)
    except TypeError:
        return True
    return False


def shape_arg(shape: tuple) -> tuple[int, ...]:
    """Accept f(2, 3) and f((2, 3)) alike, as PyTorch does."""
    if len(shape) == 1 and isinstance(shape[0], Sequence | np.ndarray):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int | np.integer):
            raise TypeError(f"shapes and axes are integers, got {n!r}")
    return tuple(int(n) for n in shape)


def resolve_shape(shape: tuple[int, ...], old: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` with its one -1 filled in so the element count matches `old`, or an error naming both."""
    size = math.prod(old)
    known = math.prod(n for n in shape if n != -1)
    unknown = [i for i, n in enumerate(shape) if n == -1]
    fits = len(unknown) <= 1 and all(n >= -1 for n in shape)
    if fits and unknown and known and size % known == 0:
        return shape[: unknown[0]] + (size // known,) + shape[unknown[0] + 1 :]
    if not fits or unknown or known != size:
        raise ShapeError(f"cannot reshape a tensor of shape {old} ({size} elements) into {shape}")
    return shape


# ops that, as PyTorch, take a 0-d tensor as one element along axis 0 (or -1): softmax of a number is 1
_SCALAR_IS_ONE_ELEMENT = frozenset({"softmax", "log_softmax"})


def check_axis(op: str, axis: int, ndim: int) -> int:
    """One axis, checked and made non-negative."""
    if not isinstance(axis, int | np.integer):
        raise TypeError(f"{op}: axis must be an integer, got {axis!r}")
    if ndim == 0 and op in _SCALAR_IS_ONE_ELEMENT and axis in (0, -1):
        return 0
    if ndim == 0 or not -ndim <= axis < ndim:
        raise AxisError(f"{op}: axis {axis} is out of range for a tensor of {ndim} dimension(s)")
    return int(axis) % ndim


def reduced_count(shape: tuple[int, ...], axis, op: str = "mean") -> int:
    """How many elements a reduction over `axis` combines into each result."""
    return math.prod(shape[a] for a in normalize_axes(axis, len(shape), op))


def broadcast_shape(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
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
                raise ShapeError(f"{op}: shapes {listed} cannot be broadcast together")
            merged.append(m if n == 1 else n)
        result = tuple(reversed(merged))
    return result


def _out_of_range(index: int, axis: int, shape: tuple[int, ...]):
    raise IndexingError(f"index {index} is out of range for axis {axis} with size {shape[axis]} (shape {shape})")


def check_index(index: tuple, shape: tuple[int, ...]) -> None:
    """Fail with the shape and the offending index instead of a backend error deep inside the op.

    CuPy does not check integer-array indices itself (they wrap around), so their range is checked here:
    NumPy ones on the host, device ones with one transfer for all of them (not two per array).
    """
    consumed = sum(part.ndim if is_backend_array(part) and part.dtype == bool else 1 for part in index
                   if part is not None and part is not Ellipsis and not isinstance(part, bool | np.bool_))
    ellipses = sum(part is Ellipsis for part in index)
    if ellipses > 1:
        raise IndexingError("an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise IndexingError(f"too many indices for a tensor of shape {shape}: {consumed} given")
    axis = 0
    integer_arrays = []
    for part in index:
        if part is Ellipsis:
            axis += len(shape) - consumed
        elif part is None or isinstance(part, bool | np.bool_):
            continue
        elif isinstance(part, slice):
            ends = (part.start, part.stop, part.step)
            if not all(end is None or isinstance(end, int | np.integer) for end in ends):
                raise IndexingError(f"slice {part!r} at axis {axis}: start, stop and step must be integers or None")
            if part.step == 0:
                raise IndexingError(f"slice {part!r} at axis {axis}: the step cannot be zero")
            axis += 1
        elif isinstance(part, int | np.integer):
            if not -shape[axis] <= part < shape[axis]:
                _out_of_range(int(part), axis, shape)
            axis += 1
        elif is_backend_array(part) and part.dtype == bool:
            if part.shape != shape[axis : axis + part.ndim]:
                raise IndexingError(f"boolean mask of shape {part.shape} does not match shape {shape} at axis {axis}")
            axis += part.ndim
        elif is_backend_array(part):
            if part.size:
                integer_arrays.append((part, axis))
            axis += 1
        else:
            raise IndexingError(f"unsupported index {part!r}: use ints, slices, None, ..., integer or bool arrays")
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
