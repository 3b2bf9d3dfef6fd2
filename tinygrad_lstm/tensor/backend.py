"""The one place that maps a device name to its array module (NumPy on "cpu", CuPy on "cuda:N").

Ops never import NumPy or CuPy for data; they ask `array_module(device)` so the same code runs on both.
CuPy is imported lazily, the first time a CUDA device is asked for, so the CPU path never needs it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

CUDA_INSTALL_HINT = (
    "install CuPy with the CUDA libraries it needs, for the CUDA version `nvidia-smi` shows: "
    "pip install 'tinygrad-lstm[cuda12]' (CUDA 12.x) or pip install 'tinygrad-lstm[cuda13]' (CUDA 13.x)"
)
_EXTRAS = {"cupy-cuda12x": "cuda12", "cupy-cuda13x": "cuda13"}

_cupy: ModuleType | None = None
_cupy_problem: str | None = None  # why CUDA is unusable, found on first use and kept
_pending_seed: int | None = None

# What the first use of the GPU runs: each needs a CUDA library that CuPy loads only when first used, so
# a CuPy installed without them still imports, counts the GPUs and allocates, and then fails at the first
# real op. (Each result is summed to a host float: that waits for the GPU, so a failed launch shows here.)
_CUDA_CHECKS = (
    ("an elementwise op", "NVRTC (CUDA's runtime compiler)", lambda cp: cp.arange(4, dtype=cp.float32) * 2 + 1),
    ("a matrix product", "cuBLAS", lambda cp: cp.ones((2, 2), dtype=cp.float32) @ cp.ones((2, 2), dtype=cp.float32)),
    ("a random draw", "cuRAND", lambda cp: cp.random.standard_normal(4, dtype=cp.float32)),
)


def _install_hint() -> str:
    """The extra that reinstalls the CuPy found here with its CUDA libraries, else both choices."""
    for distribution, extra in _EXTRAS.items():
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version(distribution)
            return (f"pip install 'tinygrad-lstm[{extra}]' installs {distribution}[ctk], CuPy with the CUDA "
                    f"libraries it needs (or install the CUDA Toolkit); see `tinygrad-lstm info`")
    return CUDA_INSTALL_HINT


def _load_cupy() -> ModuleType:
    """Import CuPy and run one op of each kind on the GPU, or say clearly what is missing and how to fix it."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if exc.name != "cupy":
            raise RuntimeError(f"device 'cuda': CuPy is installed but does not import ({exc}); "
                               f"{_install_hint()}") from exc
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed; {CUDA_INSTALL_HINT}") from exc
    except ImportError as exc:
        raise RuntimeError(f"device 'cuda': CuPy is installed but does not import ({exc}); "
                           f"{_install_hint()}") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when there is no driver or no GPU
        raise RuntimeError(
            f"device 'cuda': CuPy is installed but found no usable GPU or driver ({exc}); check `nvidia-smi`, "
            f"make sure CuPy matches your CUDA version ({CUDA_INSTALL_HINT}), or use device='cpu'"
        ) from exc
    if count == 0:
        raise RuntimeError(
            "device 'cuda': CuPy is installed but sees no GPU; check `nvidia-smi`, make sure CuPy matches "
            f"your CUDA version ({CUDA_INSTALL_HINT}), or use device='cpu'"
        )
    for what, library, run in _CUDA_CHECKS:
        try:
            with cupy.cuda.Device(0):
                float(run(cupy).sum())
        except Exception as exc:  # ImportError (libcublas.so.12), RuntimeError (libnvrtc), CUDA errors
            raise RuntimeError(
                f"device 'cuda': CuPy sees {count} GPU(s) but {what} failed, so {library} is missing or "
                f"unusable ({type(exc).__name__}: {exc}); {_install_hint()}"
            ) from exc
    return cupy


def _import_cupy() -> ModuleType:
    """CuPy, checked on first use (see `_load_cupy`); an unusable GPU raises the same clear error every time."""
    global _cupy, _cupy_problem
    if _cupy is not None:
        return _cupy
    if _cupy_problem is not None:
        raise RuntimeError(_cupy_problem)
    try:
        cupy = _load_cupy()
    except RuntimeError as exc:
        _cupy_problem = str(exc)
        raise
    _cupy = cupy
    if _pending_seed is not None:
        cupy.random.seed(_pending_seed)
    return cupy


def normalize_device(device: str | None) -> str:
    """'cpu' stays 'cpu'; 'cuda' becomes 'cuda:0'; anything else is an error that names it."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str):
        raise TypeError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    if device == "cuda":
        device = "cuda:0"
    if device.startswith("cuda:") and device[5:].isdigit():
        count = _import_cupy().cuda.runtime.getDeviceCount()
        if int(device[5:]) >= count:
            raise RuntimeError(f"device {device!r} does not exist: CuPy sees {count} GPU(s)")
        return device
    raise ValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def array_module(device: str) -> ModuleType:
    """NumPy for 'cpu', CuPy for 'cuda:N'."""
    return np if device == "cpu" else _import_cupy()


def device_of(array) -> str:
    """The device name of a backend array."""
    if isinstance(array, np.ndarray | np.generic):
        return "cpu"
    return f"cuda:{array.device.id}"


def is_backend_array(obj) -> bool:
    """A NumPy array, or a CuPy array when CuPy is loaded (never imports CuPy to find out)."""
    if isinstance(obj, np.ndarray):
        return True
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(obj, getattr(cupy, "ndarray", ()))


def use_device(device: str):
    """Context that makes `device` current for CuPy (arrays are created there); nothing to do on the CPU."""
    if device == "cpu":
        return contextlib.nullcontext()
    return _import_cupy().cuda.Device(int(device[5:]))


def broadcast_view(xp: ModuleType, a, shape: tuple[int, ...]):
    """`xp.broadcast_to(a, shape)` for `a` of the same number of axes: a read-only view. A contiguous NumPy array
    gets it from the ndarray constructor (0.5 us, where NumPy's broadcast_to spends 2.4 us in Python)."""
    if xp is not np or not a.flags.c_contiguous or a.ndim != len(shape):
        return xp.broadcast_to(a, shape)
    strides = tuple(stride if n == wanted else 0 for stride, n, wanted in zip(a.strides, a.shape, shape, strict=True))
    view = np.ndarray(shape, a.dtype, a, 0, strides)
    view.flags.writeable = False
    return view


def to_numpy(array) -> np.ndarray:
    """A NumPy array (copied from the GPU when the array lives there)."""
    return np.asarray(array) if isinstance(array, np.ndarray | np.generic) else array.get()


def move(array, device: str):
    """Copy `array` (NumPy or CuPy) onto `device`; no copy when it is already there."""
    if device_of(array) == device:
        return array
    if device == "cpu":
        return array.get()
    cupy = _import_cupy()
    with cupy.cuda.Device(int(device[5:])):
        return cupy.array(array, copy=True)  # copies onto the current device, from the host or another GPU


def seed_all(seed: int) -> np.random.Generator:
    """Seed CuPy (now if loaded, else when first loaded) and return a fresh NumPy generator."""
    global _pending_seed
    _pending_seed = seed
    if _cupy is not None:
        _cupy.random.seed(seed)
    return np.random.default_rng(seed)


def cuda_problem() -> str | None:
    """Why device 'cuda' is unusable here (CuPy, a GPU or a CUDA library missing, and what to install), or None."""
    try:
        _import_cupy()
    except RuntimeError as exc:
        return str(exc)
    return None


def cuda_is_available() -> bool:
    """True when CuPy is installed, sees a GPU, and an elementwise op, a matmul and a random draw ran on it."""
    return cuda_problem() is None


def cuda_device_count() -> int:
    """How many GPUs CuPy sees (0 unless CUDA is usable)."""
    return _import_cupy().cuda.runtime.getDeviceCount() if cuda_is_available() else 0


@dataclass(frozen=True, eq=False)
class ElementwiseKernel:
    """One elementwise formula, written twice with the same names: as array code and as a CUDA kernel body.

    `kernel(xp, *arrays)` runs `formula(xp, *arrays)` (array code that writes the outputs in place) on
    NumPy, and on CuPy the CUDA `operation` as a `cupy.ElementwiseKernel` with `in_params` and
    `out_params`, compiled on first use. Any other array module that offers `ElementwiseKernel` (the
    tests' stand-in device) gets its own. Every kernel is registered by name, so one test can compile
    all of the project's CUDA sources.
    """

    name: str
    in_params: str
    out_params: str
    operation: str
    formula: Callable[..., None]
    preamble: str = ""
    _compiled: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.name in KERNELS:
            raise ValueError(f"an elementwise kernel named {self.name!r} is already registered")
        names = [param.split()[-1] for param in f"{self.in_params},{self.out_params}".split(",") if param.strip()]
        reserved = [name for name in names if name == "i" or name.startswith("_")]
        if reserved:  # CuPy would refuse or mangle them only when the kernel is first built, on the GPU
            raise ValueError(f"elementwise kernel {self.name!r}: parameter names {reserved} clash with CuPy's "
                             "generated code (i is its loop index; _raw_<name> and _ind are its own); rename them")
        KERNELS[self.name] = self

    def __call__(self, xp: ModuleType, *arrays, **numpy_options) -> None:
        """Run on `arrays` (inputs, then outputs); `numpy_options` go to the array code on NumPy alone."""
        if xp is np:
            self.formula(xp, *arrays, **numpy_options)
            return
        compiled = self._compiled.get(xp)
        if compiled is None:
            compiled = self._compiled[xp] = xp.ElementwiseKernel(
                self.in_params, self.out_params, self.operation, self.name, preamble=self.preamble)
        compiled(*arrays)


KERNELS: dict[str, ElementwiseKernel] = {}
"""Every `ElementwiseKernel` of the project, by name (filled as the modules that define them are imported)."""
