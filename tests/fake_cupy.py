"""A NumPy-backed stand-in for CuPy, used only by the tests: the "fake" CUDA device.

With TINYGRAD_LSTM_TEST_DEVICES=fake, tests/conftest.py installs this module as `sys.modules["cupy"]`,
so `tl.Tensor(..., device="cuda")` and every CUDA code path of the project run against it on a machine
without a GPU. It behaves as CuPy does where the project could get it wrong:

- device arrays are `fake_cupy.ndarray`, not `numpy.ndarray`, and report `.device.id`;
- an op that mixes a device array with a NumPy array raises TypeError, as CuPy does;
- implicit conversion to NumPy (`np.asarray(device_array)`) raises TypeError; `.get()` copies to the host;
- reductions and integer indexing return 0-d device arrays, not NumPy scalars;
- `ElementwiseKernel(in_params, out_params, operation, name, preamble=...)` checks its arguments as
  CuPy does (parameter names, argument count, dtypes per type letter, output shapes) and then runs the
  kernel's formula registered in `tinygrad_lstm.tensor.backend.KERNELS` under that name: the same array
  code as the CPU path, on device arrays.

It proves the project's device handling, not CuPy: the CUDA sources are compiled by tests/test_gpu_path.py
with NVRTC, and only a real GPU run (.ci/gpu) proves the rest. Set `BROKEN` to "nvrtc", "cublas" or
"curand" to make elementwise ops, matmuls or random draws fail as they do when CuPy is installed
without that CUDA library.
"""

from __future__ import annotations

import functools
import re
import sys
import types

import numpy as np

__version__ = "0.0+fake"
DEVICE_COUNT = 1
BROKEN: str | None = None
SYNCS = 0  # how many times data came back to the host (.get(), item(), float(), bool(), ...): tests count them

_MISSING_LIBRARY_ERRORS = {
    "nvrtc": lambda: RuntimeError(
        "CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file: "
        "No such file or directory"),
    "cublas": lambda: ImportError("libcublas.so.12: cannot open shared object file: No such file or directory"),
    "curand": lambda: ImportError("libcurand.so.10: cannot open shared object file: No such file or directory"),
}


def _fail_if_broken(library: str) -> None:
    if BROKEN == library:
        raise _MISSING_LIBRARY_ERRORS[library]()


def _count_sync() -> None:
    global SYNCS
    SYNCS += 1


# ---------------------------------------------------------------- wrapping and unwrapping


def _unwrap(value, allow_host: bool = False):
    """The NumPy array behind a device array; a NumPy array here is a host/device mix, which CuPy refuses."""
    kind = type(value)
    if kind is ndarray:
        return value._array
    if kind is list or kind is tuple:
        return kind([_unwrap(v, allow_host) for v in value])
    if isinstance(value, np.ndarray) and not allow_host:
        raise TypeError(f"Unsupported type {type(value)}: a NumPy array cannot meet a device array "
                        "(fake CuPy, as CuPy: move it with cupy.asarray first)")
    return value


def _wrap(value):
    """Device arrays for NumPy results; NumPy scalars become 0-d device arrays, as CuPy returns them."""
    if isinstance(value, np.ndarray):
        return ndarray(value)
    if isinstance(value, np.generic):
        return ndarray(np.asarray(value))
    if type(value) is tuple or type(value) is list:
        return type(value)([_wrap(v) for v in value])
    return value


def _call(function, args, kwargs, allow_host: bool = False):
    out = kwargs.get("out")
    args = _unwrap(args, allow_host)
    kwargs = {k: _unwrap(v, allow_host) for k, v in kwargs.items()}
    result = function(*args, **kwargs)
    if isinstance(out, ndarray) and result is out._array:
        return out  # CuPy returns the very `out` array
    return _wrap(result)


class _Ufunc:
    """A NumPy ufunc on device arrays (an elementwise kernel: it needs NVRTC)."""

    def __init__(self, ufunc: np.ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        _fail_if_broken("nvrtc")
        for arg in args:
            if isinstance(arg, list | tuple):
                raise TypeError(f"Unsupported type {type(arg)}")
        return _call(self._ufunc, args, kwargs)

    def __getattr__(self, name):
        attribute = getattr(self._ufunc, name)
        if not callable(attribute):
            return attribute

        def method(*args, **kwargs):
            _fail_if_broken("nvrtc")
            return _call(attribute, args, kwargs)

        return method


_MATMULS = {"matmul", "dot", "tensordot", "einsum", "inner", "outer", "vdot"}
_HOST_INPUTS = {"array", "asarray", "ascontiguousarray", "asanyarray"}


@functools.cache
def _function(name: str):
    """cupy.<name>: NumPy's function of that name on device arrays."""
    attribute = getattr(np, name)
    if isinstance(attribute, np.ufunc) and name not in _MATMULS:
        return _Ufunc(attribute)
    if isinstance(attribute, type) or not callable(attribute):
        return attribute  # dtypes (cupy.float32 is numpy.float32) and constants

    @functools.wraps(attribute)
    def function(*args, **kwargs):
        if name in _MATMULS:
            _fail_if_broken("cublas")
        return _call(attribute, args, kwargs, allow_host=name in _HOST_INPUTS)

    return function


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return _function(name)
    except AttributeError:
        raise AttributeError(f"fake CuPy has no attribute {name!r}") from None


def asnumpy(a, stream=None):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


# ---------------------------------------------------------------- the device array


def _binary(ufunc_name: str, reflected: bool = False, inplace: bool = False):
    def operator(self, other):
        if not isinstance(other, ndarray | np.ndarray | np.generic | int | float | bool | complex):
            return NotImplemented  # e.g. a Tensor: Python then asks it
        ufunc = _function(ufunc_name)
        if inplace:
            return ufunc(self, other, out=self)
        return ufunc(other, self) if reflected else ufunc(self, other)

    return operator


class ndarray:  # noqa: N801 - CuPy's name
    """A device array: a NumPy array that refuses to be mistaken for one."""

    __slots__ = ("_array",)
    __hash__ = None

    def __init__(self, array: np.ndarray):
        self._array = array

    # NumPy interop, as CuPy: no implicit conversion; NumPy functions and ufuncs dispatch to the device.
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        target = _function(ufunc.__name__)
        return target(*inputs, **kwargs) if method == "__call__" else getattr(target, method)(*inputs, **kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        try:
            target = _function(func.__name__)
        except AttributeError:
            return NotImplemented
        return target(*args, **kwargs)

    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        _count_sync()
        return np.array(self._array, order=order, copy=True)

    @property
    def device(self):
        return cuda.Device(0)

    shape = property(lambda self: self._array.shape)
    dtype = property(lambda self: self._array.dtype)
    ndim = property(lambda self: self._array.ndim)
    size = property(lambda self: self._array.size)
    strides = property(lambda self: self._array.strides)
    itemsize = property(lambda self: self._array.itemsize)
    nbytes = property(lambda self: self._array.nbytes)
    flags = property(lambda self: self._array.flags)
    T = property(lambda self: ndarray(self._array.T))

    def __getattr__(self, name):
        if name.startswith("__"):  # NumPy's __array_interface__ and friends: no implicit conversion
            raise AttributeError(name)
        attribute = getattr(self._array, name)
        if not callable(attribute):
            return _wrap(attribute)

        def method(*args, **kwargs):
            if name in ("item", "tolist"):
                _count_sync()
            if name == "dot":
                _fail_if_broken("cublas")
            return _call(attribute, args, kwargs)

        return method

    def __getitem__(self, key):
        return _wrap(self._array[_unwrap(key, allow_host=True)])

    def __setitem__(self, key, value):
        self._array[_unwrap(key, allow_host=True)] = _unwrap(value, allow_host=True)

    def __len__(self):
        return len(self._array)

    def __iter__(self):
        return (_wrap(row) for row in self._array)

    def __bool__(self):
        _count_sync()
        return bool(self._array)

    def __float__(self):
        _count_sync()
        return float(self._array.item()) if self._array.size == 1 else float(self._array)

    def __int__(self):
        _count_sync()
        return int(self._array.item()) if self._array.size == 1 else int(self._array)

    def __complex__(self):
        _count_sync()
        return complex(self._array.item())

    def __repr__(self):
        return repr(self._array)

    def __str__(self):
        return str(self._array)

    def __format__(self, spec):
        return format(self._array.item(), spec) if self._array.ndim == 0 else format(str(self), spec)

    def __matmul__(self, other):
        return _function("matmul")(self, other) if isinstance(other, ndarray | np.ndarray) else NotImplemented

    def __rmatmul__(self, other):
        return _function("matmul")(other, self) if isinstance(other, ndarray | np.ndarray) else NotImplemented

    def __neg__(self):
        return _function("negative")(self)

    def __pos__(self):
        return _function("positive")(self)

    def __abs__(self):
        return _function("absolute")(self)

    def __invert__(self):
        return _function("invert")(self)

    __add__, __radd__, __iadd__ = _binary("add"), _binary("add", True), _binary("add", inplace=True)
    __sub__, __rsub__, __isub__ = _binary("subtract"), _binary("subtract", True), _binary("subtract", inplace=True)
    __mul__, __rmul__, __imul__ = _binary("multiply"), _binary("multiply", True), _binary("multiply", inplace=True)
    __truediv__, __rtruediv__, __itruediv__ = (_binary("true_divide"), _binary("true_divide", True),
                                               _binary("true_divide", inplace=True))
    __floordiv__, __rfloordiv__ = _binary("floor_divide"), _binary("floor_divide", True)
    __mod__, __rmod__ = _binary("remainder"), _binary("remainder", True)
    __pow__, __rpow__, __ipow__ = _binary("power"), _binary("power", True), _binary("power", inplace=True)
    __and__, __rand__, __iand__ = (_binary("bitwise_and"), _binary("bitwise_and", True),
                                   _binary("bitwise_and", inplace=True))
    __or__, __ror__, __ior__ = _binary("bitwise_or"), _binary("bitwise_or", True), _binary("bitwise_or", inplace=True)
    __xor__, __rxor__ = _binary("bitwise_xor"), _binary("bitwise_xor", True)
    __lt__, __le__ = _binary("less"), _binary("less_equal")
    __gt__, __ge__ = _binary("greater"), _binary("greater_equal")
    __eq__, __ne__ = _binary("equal"), _binary("not_equal")


# ---------------------------------------------------------------- cupy.cuda, cupy.random, memory


class _Device:
    def __init__(self, device: int = 0):
        self.id = int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self) -> None:
        pass


class _Stream:
    def synchronize(self) -> None:
        pass


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802 - CuPy's name
        return DEVICE_COUNT

    @staticmethod
    def getDeviceProperties(device: int) -> dict:  # noqa: N802 - CuPy's name
        return {"name": b"Fake GPU (NumPy, tests only)", "totalGlobalMem": 1 << 30, "major": 9, "minor": 0}

    @staticmethod
    def runtimeGetVersion() -> int:  # noqa: N802 - CuPy's name
        return 12090


cuda = types.SimpleNamespace(Device=_Device, runtime=_Runtime(), get_current_stream=_Stream,
                             Stream=_Stream)


class _Random:
    """cupy.random: draws on the device (cuRAND)."""

    def __init__(self):
        self._generator = np.random.default_rng()

    def seed(self, seed=None) -> None:
        self._generator = np.random.default_rng(seed)

    def _draw(self, method: str, size, dtype, **kwargs):
        _fail_if_broken("curand")
        draw = getattr(self._generator, method)
        sample = draw(size=size, dtype=dtype, **kwargs) if dtype is not None else draw(size=size, **kwargs)
        return _wrap(np.asarray(sample))

    def standard_normal(self, size=None, dtype=np.float64):
        return self._draw("standard_normal", size, dtype)

    def random(self, size=None, dtype=np.float64):
        return self._draw("random", size, dtype)

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=np.float64):
        return self._draw("normal", size, None, loc=loc, scale=scale).astype(dtype)

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return self._draw("uniform", size, None, low=low, high=high).astype(dtype)

    def randint(self, low, high=None, size=None, dtype=np.int64):
        return self._draw("integers", size, dtype, low=low, high=high)


random = _Random()


class _MemoryPool:
    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        pass


_memory_pool = _MemoryPool()


def get_default_memory_pool() -> _MemoryPool:
    return _memory_pool


# ---------------------------------------------------------------- ElementwiseKernel


_PARAM = re.compile(r"^(?:(raw)\s+)?(\w+)\s+(\w+)$")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


def _parse_params(text: str) -> list[tuple[bool, str, str]]:
    """(raw, type, name) per parameter of "T x, raw T y, int32 n"."""
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _PARAM.match(" ".join(part.split()))
        if match is None:
            raise Exception(f"Syntax error: {part}")  # CuPy's exception type and message
        raw, type_, name = match.groups()
        if len(type_) > 1:
            np.dtype(type_)  # a dtype name CuPy knows
        params.append((raw is not None, type_, name))
    return params


class ElementwiseKernel:
    """CuPy's `ElementwiseKernel` checks, then the project's formula of the same name on device arrays."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, **kwargs):
        if not _IDENTIFIER.match(name):
            raise ValueError(f'Invalid kernel name: "{name}"')
        self.in_params, self.out_params = _parse_params(in_params), _parse_params(out_params)
        names = [p[2] for p in self.in_params + self.out_params]
        if "i" in names:
            raise ValueError("Can not use 'i' as a parameter name")
        self.operation, self.name, self.preamble = operation, name, preamble
        self.no_return, self.return_tuple = no_return, return_tuple

    def __call__(self, *args, size=None, block_size=128, stream=None):
        nin, nout = len(self.in_params), len(self.out_params)
        if len(args) not in (nin, nin + nout):
            raise TypeError(f"Wrong number of arguments for {self.name!r}. It must be either {nin} or "
                            f"{nin + nout} (with outputs), but given {len(args)}.")
        for arg in args:
            if isinstance(arg, np.ndarray) or not isinstance(arg, ndarray | np.generic | int | float | bool):
                raise TypeError(f"Unsupported type {type(arg)}")
        params = self.in_params + self.out_params
        nonraw = [a for (raw, _, _), a in zip(params, args, strict=False) if not raw and isinstance(a, ndarray)]
        if size is None and not nonraw:
            raise ValueError("Loop size is undecided.")
        shape = np.broadcast_shapes(*(a.shape for a in nonraw)) if nonraw else (size,)
        types_ = {}
        for (_, type_, name), arg in zip(params, args, strict=False):
            if not isinstance(arg, ndarray):
                continue
            expected = np.dtype(type_) if len(type_) > 1 else types_.setdefault(type_, arg.dtype)
            if arg.dtype != expected:
                raise TypeError(f"Type is mismatched. {name} {arg.dtype} {expected}")
        outputs = list(args[nin:])
        if not outputs:
            for raw, type_, _ in self.out_params:
                if raw:
                    raise ValueError("Output array size is Undecided")
                outputs.append(ndarray(np.empty(shape, np.dtype(type_) if len(type_) > 1 else types_[type_])))
        for (raw, _, _), out in zip(self.out_params, outputs, strict=True):
            if not isinstance(out, ndarray):
                raise TypeError("Output arguments type must be cupy.ndarray")
            if not raw and out.shape != shape:
                raise ValueError("Out shape is mismatched")
        from tinygrad_lstm.tensor.backend import KERNELS

        if self.name not in KERNELS:
            raise KeyError(f"fake CuPy runs only the project's registered kernels; {self.name!r} is not in "
                           "tinygrad_lstm.tensor.backend.KERNELS")
        _fail_if_broken("nvrtc")
        KERNELS[self.name].formula(sys.modules[__name__], *args[:nin], *outputs)
        if self.no_return:
            return None
        return outputs[0] if nout == 1 and not self.return_tuple else tuple(outputs)
