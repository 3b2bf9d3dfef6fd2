"""How many BLAS threads a recurrent loop's per-step matmuls get: one when they are small, all when they are large.

A step's matmul (B, H) @ (H, kH) is tiny next to what BLAS threads are built for: waking them, and on
a loaded machine waiting for a core to run them, costs more than the product itself. OpenBLAS threads
also spin while they wait, taking the core the Python loop needs. Measured on the project's 2-core VM
(2026-12-02, loaded by other jobs; benchmarks/lstm.py): two threads made the step's matmuls 0.9-1.2x
as fast up to B*kH*H = 2^20 multiply-adds and 2-6x slower from there up to 2^29, so the loops run on one
thread below `PARALLEL_WORK` and on what BLAS was given above it (large batches and hidden sizes on
many-core machines). The matmuls over all steps at once (input projection, weight gradients) keep all
threads: they are large.
"""

from __future__ import annotations

import contextlib
import functools

PARALLEL_WORK = 1 << 29
"""Multiply-adds in one step's matmul from which the loop keeps all of BLAS's threads."""


@functools.lru_cache(maxsize=1)
def _blas():
    """NumPy's BLAS libraries as threadpoolctl sees them (found once: the scan takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def loop_threads(xp, batch: int, width: int, hidden: int):
    """Context for a loop of (batch, hidden) @ (hidden, width) matmuls: one BLAS thread unless they are large.

    Nothing to do on CuPy, or where BLAS already runs on one thread. Entering costs ~15 us (measured),
    once per layer forward or backward.
    """
    if xp.__name__ != "numpy" or batch * width * hidden >= PARALLEL_WORK:
        return contextlib.nullcontext()
    blas = _blas()
    if all(lib.num_threads == 1 for lib in blas.lib_controllers):
        return contextlib.nullcontext()
    return blas.limit(limits=1)
