"""How many BLAS threads the recurrent layers' matmuls get: one when they are small or the machine is busy.

A step's matmul (B, H) @ (H, kH) is tiny next to what BLAS threads are built for: waking them, and on
a loaded machine waiting for a core to run them, costs more than the product itself, and OpenBLAS
threads spin while they wait, taking the core the Python loop needs. Measured on the project's 2-core
VM (2026-12-02, `benchmarks/lstm.py --threads both`): loaded by other jobs, two threads made a whole
training step of nn.LSTM at (1, 32, 32, 200) 11x slower (57.7 vs 5.1 ms); idle, two threads made the
steps from 2^19 multiply-adds per matmul up 1.6-1.8x faster (nn.RNN at (32, 128, 128, 50), 2^19 per step:
2.5 vs 4.0 ms; nn.LSTM there, 2^21: 10.6 vs 17.0 ms; (32, 512, 512, 100): 232 vs 423 ms). So every BLAS
call of the fused ops runs on one thread below `PARALLEL_WORK` multiply-adds per call (OpenBLAS's own
bound for one thread, 4 * 65536) or while other processes keep the cores busy (the load average), and on
what BLAS was given otherwise.
"""

from __future__ import annotations

import ctypes
import functools
import os
import time

import numpy as np

PARALLEL_WORK = 1 << 18
"""Multiply-adds in one matmul from which BLAS keeps all its threads (on a machine that is not busy)."""

LOAD_CHECK_SECONDS = 1.0
"""How long one reading of the load average stands (it is a 1-minute average; reading it is a file read)."""


class _ThreadControl:
    """One BLAS library's thread count, read and set: OpenBLAS's own C functions where threadpoolctl finds a
    pthreads OpenBLAS (~0.1 us a call, against ~1-2 us through threadpoolctl's wrappers), its wrappers otherwise."""

    __slots__ = ("get", "set")

    def __init__(self, lib):
        self.get, self.set = lib.get_num_threads, lib.set_num_threads
        if lib.internal_api == "openblas" and lib.threading_layer == "pthreads":
            dll = ctypes.CDLL(lib.filepath)
            for prefix in ("", "scipy_"):  # the names OpenBLAS builds export (threadpoolctl looks for the same)
                for suffix in ("", "64_"):
                    get = getattr(dll, f"{prefix}openblas_get_num_threads{suffix}", None)
                    if get is not None:
                        get.restype, get.argtypes = ctypes.c_int, []
                        self.get, self.set = get, getattr(dll, f"{prefix}openblas_set_num_threads{suffix}")
                        return


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple[_ThreadControl, ...]:
    """NumPy's BLAS libraries as threadpoolctl finds them (found once: the scan takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return tuple(_ThreadControl(lib) for lib in ThreadpoolController().select(user_api="blas").lib_controllers)


@functools.lru_cache(maxsize=1)
def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _LoadReading:
    """The last reading of the load average: when, and whether the cores were busy then."""

    when, busy = -LOAD_CHECK_SECONDS, False


def _busy() -> bool:
    """Other processes keep the cores busy: the 1-minute load average, less this process, fills them."""
    now = time.monotonic()
    if now - _LoadReading.when >= LOAD_CHECK_SECONDS:
        _LoadReading.when, _LoadReading.busy = now, os.getloadavg()[0] - 1 >= _cores() - 1
    return _LoadReading.busy


class blas_threads:
    """Context for BLAS calls of about `work` multiply-adds each: one thread unless they are large and cores are free.

    Nothing to do on CuPy, or where BLAS already runs on one thread. A plain class, not a generator
    context, calling OpenBLAS directly: it is entered twice per training step of a layer (measured: ~0.5 us,
    against ~4 us through threadpoolctl, whose own `limit` costs ~15 us).
    """

    __slots__ = ("libs", "previous")

    def __init__(self, xp, work: int):
        self.libs = () if xp is not np or (work >= PARALLEL_WORK and not _busy()) else _blas_libraries()

    def __enter__(self) -> None:
        previous: list[int] = []
        self.previous = previous
        for lib in self.libs:
            threads = lib.get()
            previous.append(threads)
            if threads > 1:
                lib.set(1)

    def __exit__(self, *exc_info) -> None:
        for lib, threads in zip(self.libs, self.previous, strict=True):
            if threads > 1:
                lib.set(threads)


def step_work(state, w_hh) -> int:
    """Multiply-adds of one step's recurrent matmul, (B, H) @ (H, kH)."""
    return state.shape[0] * w_hh.shape[0] * w_hh.shape[1]
