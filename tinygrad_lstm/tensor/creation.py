"""Tensor factories and the global random seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .backend import array_module, normalize_device, seed_all, use_device
from .checks import shape_arg
from .tensor import DEFAULT_DTYPE, Tensor


class _Random:
    """The NumPy generator behind `randn`/`rand` on the CPU; `manual_seed` replaces it."""

    generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed every backend (NumPy now, CuPy now or when it is first used), for reproducible runs."""
    _Random.generator = seed_all(int(seed))


def _new(make: Callable, shape: tuple, dtype, device: str | None, requires_grad: bool) -> Tensor:
    """`make(xp, shape, dtype)` run with `device` current, as a leaf tensor (float32 unless `dtype` says)."""
    device = normalize_device(device)
    dtype = np.dtype(dtype) if dtype is not None else DEFAULT_DTYPE
    with use_device(device):
        data = make(array_module(device), shape_arg(shape), dtype)
    return Tensor._make(data, device, None).requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp, s, d: xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp, s, d: xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return _new(lambda xp, s, d: xp.full(s, fill_value, dtype=d), (shape,), dtype, device, requires_grad)


def _sample(kind: str) -> Callable:
    def make(xp, shape, dtype):
        if xp is np:
            draw = _Random.generator.standard_normal if kind == "normal" else _Random.generator.random
            return draw(shape, dtype=dtype) if dtype in (np.float32, np.float64) else draw(shape).astype(dtype)
        draw = xp.random.standard_normal if kind == "normal" else xp.random.random
        return draw(shape, dtype=dtype) if dtype in (np.float32, np.float64) else draw(shape).astype(dtype)

    return make


def randn(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples."""
    return _new(_sample("normal"), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _new(_sample("uniform"), shape, dtype, device, requires_grad)


def zeros_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                 requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, device=device or t.device,
                requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device: str | None = None, requires_grad: bool = False) -> Tensor:
    """As PyTorch: integers give int64, any float gives float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, int | np.integer) for v in (start, end, step))
        dtype = np.int64 if integral else DEFAULT_DTYPE
    return _new(lambda xp, _, d: xp.arange(start, end, step, dtype=d), (), dtype, device, requires_grad)
