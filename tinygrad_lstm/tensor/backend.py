"""The one place that maps a device name to its array module (NumPy on "cpu", CuPy on "cuda:N").

Ops never import NumPy or CuPy for data; they ask `array_module(device)` so the same code runs on both.
CuPy is imported lazily, the first time a CUDA device is asked for, so the CPU path never needs it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

CUDA_INSTALL_HINT = (
    "install CuPy for your CUDA version: pip install 'tinygrad-lstm[cuda12]' (CUDA 12) "
    "or pip install 'tinygrad-lstm[cuda13]' (CUDA 13)"
)

_cupy: ModuleType | None = None
_pending_seed: int | None = None


def _import_cupy() -> ModuleType:
    """Import CuPy once, or say clearly which part is missing (CuPy itself, or a usable GPU) and how to fix it."""
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(f"device 'cuda' needs CuPy, which is not installed; {CUDA_INSTALL_HINT}") from exc
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


def cuda_is_available() -> bool:
    """True when CuPy is installed and sees at least one GPU."""
    try:
        _import_cupy()
    except RuntimeError:
        return False
    return True


def cuda_device_count() -> int:
    """How many GPUs CuPy sees (0 without CuPy or a GPU)."""
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
