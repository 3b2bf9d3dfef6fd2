"""One LSTM training step (forward + full backward of output.sum(), float32), ours beside its ceiling and PyTorch.

For each size (batch, input, hidden, steps) it times, in the same run and alternating between them:

- ours: `nn.LSTM` (the fused path: one graph node for the input projection, one for the recurrence);
- the ceiling: a hand-fused LSTM written below on the bare array module (NumPy, or CuPy on cuda),
  with the same batched input projection and one matmul per step for all gates, and an analytic
  backward with batched weight gradients (it keeps the gates, c, h and tanh(c) of every step and one
  gate-gradient buffer). No autograd engine on NumPy can beat it by much;
- PyTorch, when installed: `nn.LSTM` (cuDNN on cuda) and an `nn.LSTMCell` loop.

It prints the best of `--repeat` runs per engine and the ratios ours / ceiling and ours / PyTorch.
`--threads 1` re-runs the benchmark in a child process with OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS set to 1 (BLAS reads them only when it loads, so a fresh process is the one reliable
way) and `torch.set_num_threads(1)`. `--memory` measures the peak memory of one step (tracemalloc sees
every NumPy allocation) for ours and the ceiling, at a long sequence.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn.cell_math import LSTM_BACKWARD, LSTM_FORWARD, gate_views
from tinygrad_lstm.tensor import array_module

CPU_SIZES = ["1,32,32,200", "32,128,128,50", "32,512,512,100"]
CUDA_SIZES = ["32,128,128,50", "32,512,512,100", "128,1024,1024,100"]
MEMORY_SIZE = "32,512,512,1000"
_CHILD_FLAG = "TINYGRAD_LSTM_BENCH_ONE_THREAD"


# ---------------------------------------------------------------- the ceiling: a hand-fused LSTM on bare arrays


class HandFusedLSTM:
    """A one-layer LSTM with a hand-written backward on bare NumPy or CuPy arrays: what an engine can hope to reach.

    The step's gate math is the project's one formula (`nn.cell_math`), so the ratio ours / ceiling
    measures what the engine adds around it: graph nodes, checks, buffers.
    """

    def __init__(self, xp, w_ih, w_hh, b_ih, b_hh):
        self.xp, self.w_ih, self.w_hh, self.bias = xp, w_ih, w_hh, b_ih + b_hh

    def train_step(self, x):
        """Forward over x (steps, batch, input), then the gradients of output.sum() for x and every weight."""
        xp, w_ih, w_hh = self.xp, self.w_ih, self.w_hh
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        x2d = x.reshape(steps * batch, -1)
        gates = (x2d @ w_ih.T).reshape(steps, batch, 4 * hidden)
        gates += self.bias
        h = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)  # h[t + 1] is the output of step t
        c = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in range(steps):
            a = gates[t]
            a += xp.dot(h[t], w_hh_t)
            LSTM_FORWARD(xp, c[t], *gate_views(a), c[t + 1], h[t + 1], all_gates=a)

        dgates = xp.empty_like(gates)
        ones = xp.ones((batch, hidden), dtype=x.dtype)  # d(output.sum()) / d(h_t)
        dh = xp.zeros((batch, hidden), dtype=x.dtype)
        dc, dc_prev = xp.zeros_like(dh), xp.empty_like(dh)
        for t in reversed(range(steps)):
            dh += ones
            LSTM_BACKWARD(xp, *gate_views(gates[t]), c[t], c[t + 1], dh, dc, *gate_views(dgates[t]), dc_prev,
                          all_gates=gates[t], all_dgates=dgates[t])
            dc, dc_prev = dc_prev, dc
            xp.dot(dgates[t], w_hh, out=dh)
        dgates2d = dgates.reshape(steps * batch, -1)
        grads = {
            "x": (dgates2d @ w_ih).reshape(x.shape),
            "weight_ih": dgates2d.T @ x2d,
            "weight_hh": dgates2d.T @ h[:-1].reshape(steps * batch, hidden),
            "bias": dgates2d.sum(axis=0),
        }
        return h[1:], grads


# ---------------------------------------------------------------- the contenders, each a no-argument callable


def _weights(size: tuple[int, int, int, int]) -> tuple[np.ndarray, ...]:
    batch, inputs, hidden, steps = size
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(hidden)
    shapes = [(4 * hidden, inputs), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,)]
    weights = [rng.uniform(-bound, bound, s).astype(np.float32) for s in shapes]
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    return x, *weights


def _training_step(model, x) -> Callable[[], None]:
    """Forward + full backward of output.sum(); the same code drives our nn.LSTM and torch's."""

    def step() -> None:
        model.zero_grad()
        x.grad = None
        output, _ = model(x)
        output.sum().backward()

    return step


def ours(size, device: str) -> Callable[[], None]:
    x_data, *weights = _weights(size)
    model = nn.LSTM(size[1], size[2], device=device)
    model.load_state_dict(dict(zip(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"], weights, strict=True)))
    return _training_step(model, tl.Tensor(x_data, device=device, requires_grad=True))


def ceiling(size, device: str) -> Callable[[], None]:
    xp = array_module(device)
    x, *weights = (xp.asarray(a) for a in _weights(size))
    lstm = HandFusedLSTM(xp, *weights)
    return lambda: lstm.train_step(x)


def _torch_with_our_weights(torch, module, size, device: str):
    """`module` on `device` holding the benchmark's weights, and the benchmark's input as a leaf."""
    x_data, *weights = _weights(size)
    module = module.to(device)
    with torch.no_grad():
        for p, w in zip(module.parameters(), weights, strict=True):
            p.copy_(torch.from_numpy(w))
    return module, torch.tensor(x_data, device=device, requires_grad=True)


def torch_lstm(torch, size, device: str) -> Callable[[], None]:
    return _training_step(*_torch_with_our_weights(torch, torch.nn.LSTM(size[1], size[2]), size, device))


def torch_cell_loop(torch, size, device: str) -> Callable[[], None]:
    cell, x = _torch_with_our_weights(torch, torch.nn.LSTMCell(size[1], size[2]), size, device)

    def step() -> None:
        cell.zero_grad()
        x.grad = None
        state, outputs = None, []
        for x_t in x:
            state = cell(x_t, state)
            outputs.append(state[0])
        torch.stack(outputs).sum().backward()

    return step


# ---------------------------------------------------------------- timing


def _synchronizer(device: str, torch) -> Callable[[], None]:
    """Wait for the GPU before reading a clock (nothing to wait for on the CPU)."""
    if device == "cpu":
        return lambda: None
    cupy = array_module(device)

    def synchronize() -> None:
        cupy.cuda.get_current_stream().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    return synchronize


def time_contenders(contenders: dict[str, Callable], repeat: int, synchronize: Callable, progress) -> dict[str, float]:
    """Best wall time per contender over `repeat` rounds, alternating so that all see the same machine load."""
    for run in contenders.values():  # warm-up: caches, kernel compilation, allocator pools
        run()
    synchronize()
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(repeat):
        for name, run in contenders.items():
            gc.collect()
            start = time.perf_counter()
            run()
            synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
            progress.update()
    return best


def peak_memory(run: Callable[[], None]) -> int:
    """Peak bytes allocated (NumPy reports its buffers to tracemalloc) while `run` runs once."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _parse_size(text: str) -> tuple[int, int, int, int]:
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 4 or min(size) <= 0:
        raise argparse.ArgumentTypeError(f"a size is batch,input,hidden,steps (four positive integers), got {text!r}")
    return size


def _import_torch(device: str):
    try:
        import torch
    except ImportError:
        return None
    if device != "cpu" and not torch.cuda.is_available():
        print("PyTorch has no CUDA here: its columns are left out")
        return None
    return torch


def _rerun_with_one_thread(argv: list[str]) -> int:
    """BLAS picks its thread count when it loads: a child process with the variables set is the reliable way."""
    package_root = str(Path(tl.__file__).resolve().parents[1])  # the child imports this checkout, installed or not
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=path,
               **{_CHILD_FLAG: "1"})
    return subprocess.call([sys.executable, "-m", "tinygrad_lstm.benchmarks.lstm", *argv], env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/lstm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", nargs="+", type=_parse_size, metavar="B,I,H,T",
                        help=f"batch,input,hidden,steps (default on cpu: {' '.join(CPU_SIZES)}; "
                             f"on cuda: {' '.join(CUDA_SIZES)})")
    parser.add_argument("--threads", choices=["1", "all"], default="all", help="BLAS and PyTorch threads")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per size; the best is kept")
    parser.add_argument("--memory", action="store_true",
                        help=f"also the peak memory of one step at {MEMORY_SIZE} (ours vs the ceiling; cpu)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.device == "cuda" and not tl.cuda.is_available():
        parser.error("--device cuda needs CuPy and a GPU (see `tl.cuda.is_available()`); try --device cpu")
    if args.threads == "1" and os.environ.get(_CHILD_FLAG) != "1":
        return _rerun_with_one_thread(sys.argv[1:] if argv is None else list(argv))

    device = "cuda:0" if args.device == "cuda" else "cpu"
    torch = _import_torch(device)
    if torch is not None and args.threads == "1":
        torch.set_num_threads(1)
    torch_device = "cuda" if device != "cpu" else "cpu"
    sizes = args.sizes or [_parse_size(s) for s in (CUDA_SIZES if device != "cpu" else CPU_SIZES)]
    threads = "1 thread" if args.threads == "1" else f"all threads ({os.cpu_count()} cores)"
    print(f"one training step of a 1-layer LSTM, float32, {args.device}, {threads}; best of {args.repeat}")

    names = ["ours", "ceiling"] + (["torch LSTM", "torch cell loop"] if torch is not None else [])
    synchronize = _synchronizer(device, torch)
    rows = []
    with tqdm(total=len(sizes) * len(names) * args.repeat, desc="timing", leave=False) as progress:
        for size in sizes:
            contenders = {"ours": ours(size, device), "ceiling": ceiling(size, device)}
            if torch is not None:
                contenders["torch LSTM"] = torch_lstm(torch, size, torch_device)
                contenders["torch cell loop"] = torch_cell_loop(torch, size, torch_device)
            rows.append((size, time_contenders(contenders, args.repeat, synchronize, progress)))
            del contenders

    header = f"{'batch,input,hidden,steps':>24} " + " ".join(f"{n + ' ms':>16}" for n in names)
    header += f" {'ours/ceiling':>13}" + (f" {'ours/LSTM':>10} {'ours/cells':>10}" if torch is not None else "")
    print(header)
    for size, best in rows:
        line = f"{','.join(map(str, size)):>24} " + " ".join(f"{best[n] * 1e3:16.2f}" for n in names)
        line += f" {best['ours'] / best['ceiling']:13.2f}"
        if torch is not None:
            line += f" {best['ours'] / best['torch LSTM']:10.2f} {best['ours'] / best['torch cell loop']:10.2f}"
        print(line)

    if args.memory:
        size = _parse_size(MEMORY_SIZE)
        peaks = {}
        for name, make in (("ours", ours), ("ceiling", ceiling)):
            run = make(size, "cpu")
            peaks[name] = peak_memory(run)
            del run
        print(f"peak memory of one step at {MEMORY_SIZE}: ours {peaks['ours'] / 2**20:.0f} MiB, "
              f"ceiling {peaks['ceiling'] / 2**20:.0f} MiB, ratio {peaks['ours'] / peaks['ceiling']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
