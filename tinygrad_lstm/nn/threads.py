"""How many BLAS threads the recurrent layers' matmuls get: one when they are small or the machine is busy.

A step's matmul (B, H) @ (H, kH) is tiny next to what BLAS threads are built for: waking them, and on
a loaded machine waiting for a core to run them, costs more than the product itself, and OpenBLAS
threads spin while they wait, taking the core the Python loop needs. Measured on the project's 2-core
VM (2026-12-02, `benchmarks/lstm.py --threads both`): loaded by other jobs, two threads made a whole
training step of nn.LSTM at (1, 32, 32, 200) 11x slower (57.7 vs 5.1 ms); idle, two threads made the
steps from 2^21 multiply-adds per matmul up 1.5-1.8x faster ((32, 128, 128, 50): 11.0 vs 17.0 ms;
(32, 512, 512, 100): 221 vs 389 ms) and changed nothing below. So every BLAS call of the fused ops runs
on one thread below `PARALLEL_WORK` multiply-adds per call or while other processes keep the cores busy
(the load average), and on what BLAS was given otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import os

PARALLEL_WORK = 1 << 20
"""Multiply-adds in one matmul from which BLAS keeps all its threads (on a machine that is not busy)."""


@functools.lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    """NumPy's BLAS libraries as threadpoolctl sees them (found once: the scan takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@functools.lru_cache(maxsize=1)
def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _busy() -> bool:
    """Other processes keep the cores busy: the 1-minute load average, less this process, fills them."""
    return os.getloadavg()[0] - 1 >= _cores() - 1


@contextlib.contextmanager
def blas_threads(xp, work: int):
    """Context for BLAS calls of about `work` multiply-adds each: one thread unless they are large and cores are free.

    Nothing to do on CuPy, or where BLAS already runs on one thread. Costs ~3 us (threadpoolctl's own
    `limit` costs ~15 us, measured), once per op's forward or backward.
    """
    libs = () if xp.__name__ != "numpy" or (work >= PARALLEL_WORK and not _busy()) else _blas_libraries()
    previous = [lib.get_num_threads() for lib in libs]
    for lib, threads in zip(libs, previous, strict=True):
        if threads > 1:
            lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in zip(libs, previous, strict=True):
            if threads > 1:
                lib.set_num_threads(threads)


def step_work(state, w_hh) -> int:
    """Multiply-adds of one step's recurrent matmul, (B, H) @ (H, kH)."""
    return state.shape[0] * w_hh.shape[0] * w_hh.shape[1]
