"""One training step of a recurrent layer (forward + full backward of output.sum(), float32), ours beside
its ceiling and PyTorch, for the LSTM, the GRU and the Elman RNN (`--cells`).

For each cell and size (batch, input, hidden, steps) it times, in the same run and alternating between them:

- layer: our `nn.LSTM` / `nn.GRU` / `nn.RNN` (the fused path: one graph node for the input projection and
  the recurrence);
- ceiling: the same layer hand-fused on the bare array module (NumPy, or CuPy on cuda), written below
  with the project's step formula (`nn.cell_math`), the same batched input projection, one matmul per
  step for all gates and an analytic backward with batched weight gradients. No autograd engine on
  NumPy can beat it by much;
- cells: a user's loop over our `nn.LSTMCell` / `GRUCell` / `RNNCell` (composed from primitive ops,
  as people write it when they learn), and for the LSTM also over `LSTMCell(fused=True)`;
- PyTorch, when installed: the layer (cuDNN on cuda) and the same cell loop.

It prints the best of `--repeat` runs per contender and the ratios layer / ceiling, layer / PyTorch's
layer and cells / PyTorch's cells. `--threads 1` re-runs the benchmark in a child process with
OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS set to 1 (BLAS reads them only when it loads,
so a fresh process is the one reliable way) and `torch.set_num_threads(1)`. `--memory` measures the
high-water resident memory of one LSTM step at a long sequence, each implementation in its own process.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn.cell_math import (
    GRU_BACKWARD,
    GRU_FORWARD,
    LSTM_BACKWARD,
    LSTM_FORWARD,
    RNN_STEPS,
    gate_views,
    gru_gate_views,
)
from tinygrad_lstm.tensor import array_module

CPU_SIZES = ["1,32,32,200", "32,128,128,50", "32,512,512,100"]
CUDA_SIZES = ["32,128,128,50", "32,512,512,100", "128,1024,1024,100"]
MEMORY_SIZE = "32,512,512,1000"
_CHILD_FLAG = "TINYGRAD_LSTM_BENCH_ONE_THREAD"
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


# ---------------------------------------------------------------- the ceilings: hand-fused layers on bare arrays


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
        i, f, g, o = gate_views(gates)
        for t in range(steps):
            gates[t] += xp.dot(h[t], w_hh_t)
            LSTM_FORWARD(xp, c[t], i[t], f[t], g[t], o[t], c[t + 1], h[t + 1], all_gates=gates[t])

        dgates = xp.empty_like(gates)
        di, df, dg, do = gate_views(dgates)
        ones = xp.ones((batch, hidden), dtype=x.dtype)  # d(output.sum()) / d(h_t)
        dh = xp.zeros((batch, hidden), dtype=x.dtype)
        dc, dc_prev = xp.zeros_like(dh), xp.empty_like(dh)
        for t in reversed(range(steps)):
            dh += ones
            LSTM_BACKWARD(xp, i[t], f[t], g[t], o[t], c[t], c[t + 1], dh, dc, di[t], df[t], dg[t], do[t], dc_prev,
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

class HandFusedGRU:
    """The GRU's ceiling, as `HandFusedLSTM`: b_hh added per step (the reset gate scales its candidate part)."""

    def __init__(self, xp, w_ih, w_hh, b_ih, b_hh):
        self.xp, self.w_ih, self.w_hh, self.b_ih, self.b_hh = xp, w_ih, w_hh, b_ih, b_hh

    def train_step(self, x):
        xp, w_ih, w_hh = self.xp, self.w_ih, self.w_hh
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        x2d = x.reshape(steps * batch, -1)
        gates = (x2d @ w_ih.T).reshape(steps, batch, 3 * hidden)
        gates += self.b_ih
        h = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)
        hn = xp.empty((steps, batch, hidden), dtype=x.dtype)
        hw = xp.empty((batch, 3 * hidden), dtype=x.dtype)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in range(steps):
            xp.dot(h[t], w_hh_t, out=hw)
            hw += self.b_hh
            GRU_FORWARD(xp, h[t], *gru_gate_views(hw), *gru_gate_views(gates[t]), h[t + 1], hn[t],
                        rz=gates[t, :, : 2 * hidden], hrz=hw[:, : 2 * hidden])

        dhw = xp.empty_like(gates)
        dn = xp.empty_like(hn)
        ones = xp.ones((batch, hidden), dtype=x.dtype)
        gh, direct = xp.zeros_like(ones), xp.empty_like(ones)
        for t in reversed(range(steps)):
            gh += ones
            dr, dz, dhn = gru_gate_views(dhw[t])
            GRU_BACKWARD(xp, *gru_gate_views(gates[t]), hn[t], h[t], gh, dr, dz, dn[t], dhn, direct)
            xp.dot(dhw[t], w_hh, out=gh)
            gh += direct
        rows = dhw.reshape(steps * batch, -1)
        grads = {"weight_hh": rows.T @ h[:-1].reshape(steps * batch, hidden), "bias_hh": rows.sum(axis=0)}
        dhw[..., 2 * hidden :] = dn
        grads |= {"x": (rows @ w_ih).reshape(x.shape), "weight_ih": rows.T @ x2d, "bias_ih": rows.sum(axis=0)}
        return h[1:], grads


class HandFusedRNN:
    """The Elman RNN's ceiling (tanh), as `HandFusedLSTM`."""

    def __init__(self, xp, w_ih, w_hh, b_ih, b_hh):
        self.xp, self.w_ih, self.w_hh, self.bias = xp, w_ih, w_hh, b_ih + b_hh

    def train_step(self, x):
        xp, w_ih, w_hh = self.xp, self.w_ih, self.w_hh
        step_forward, step_backward = RNN_STEPS["tanh"]
        steps, batch, _ = x.shape
        hidden = w_hh.shape[1]
        x2d = x.reshape(steps * batch, -1)
        h = xp.zeros((steps + 1, batch, hidden), dtype=x.dtype)
        h[1:] = (x2d @ w_ih.T).reshape(steps, batch, hidden)
        h[1:] += self.bias
        hw = xp.empty((batch, hidden), dtype=x.dtype)
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        for t in range(steps):
            xp.dot(h[t], w_hh_t, out=hw)
            step_forward(xp, hw, h[t + 1])

        dpre = xp.empty((steps, batch, hidden), dtype=x.dtype)
        ones = xp.ones((batch, hidden), dtype=x.dtype)
        gh = xp.zeros_like(ones)
        for t in reversed(range(steps)):
            gh += ones
            step_backward(xp, h[t + 1], gh, dpre[t])
            xp.dot(dpre[t], w_hh, out=gh)
        rows = dpre.reshape(steps * batch, -1)
        grads = {
            "x": (rows @ w_ih).reshape(x.shape),
            "weight_ih": rows.T @ x2d,
            "weight_hh": rows.T @ h[:-1].reshape(steps * batch, hidden),
            "bias": rows.sum(axis=0),
        }
        return h[1:], grads


CEILINGS: dict[str, Any] = {"lstm": HandFusedLSTM, "gru": HandFusedGRU, "rnn": HandFusedRNN}


# ---------------------------------------------------------------- the contenders, each a no-argument callable


def _weights(size: tuple[int, int, int, int], gates: int = 4) -> tuple[np.ndarray, ...]:
    batch, inputs, hidden, steps = size
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(hidden)
    shapes = [(gates * hidden, inputs), (gates * hidden, hidden), (gates * hidden,), (gates * hidden,)]
    weights = [rng.uniform(-bound, bound, s).astype(np.float32) for s in shapes]
    x = rng.standard_normal((steps, batch, inputs)).astype(np.float32)
    return x, *weights


def _training_step(model, x) -> Callable[[], None]:
    """Forward + full backward of output.sum(); the same code drives our layers and torch's."""

    def step() -> None:
        model.zero_grad()
        x.grad = None
        output, _ = model(x)
        output.sum().backward()

    return step


def _cell_loop(cell, x, stack) -> Callable[[], None]:
    """A user's loop over a cell: every step's h stacked, then the backward of their sum (ours and torch's alike)."""

    def step() -> None:
        cell.zero_grad()
        x.grad = None
        state, outputs = None, []
        for x_t in x:
            state = cell(x_t, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        stack(outputs).sum().backward()

    return step


def _ours_with_weights(module, kind: str, size, device: str):
    """`module` holding the benchmark's weights, and the benchmark's input as a leaf on `device`."""
    x_data, *weights = _weights(size, GATES[kind])
    names = [name for name, _ in module.named_parameters()]
    module.load_state_dict(dict(zip(names, weights, strict=True)))
    return module, tl.Tensor(x_data, device=device, requires_grad=True)


_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


def ours(size, device: str, kind: str = "lstm") -> Callable[[], None]:
    return _training_step(*_ours_with_weights(_LAYERS[kind](size[1], size[2], device=device), kind, size, device))


def our_cells(size, device: str, kind: str = "lstm", **options) -> Callable[[], None]:
    cell, x = _ours_with_weights(_CELLS[kind](size[1], size[2], device=device, **options), kind, size, device)
    return _cell_loop(cell, x, tl.stack)


def ceiling(size, device: str, kind: str = "lstm") -> Callable[[], None]:
    xp = array_module(device)
    x, *weights = (xp.asarray(a) for a in _weights(size, GATES[kind]))
    layer = CEILINGS[kind](xp, *weights)
    return lambda: layer.train_step(x)


def _torch_with_our_weights(torch, module, size, device: str, kind: str = "lstm") -> tuple[Any, Any]:
    """`module` on `device` holding the benchmark's weights, and the benchmark's input as a leaf."""
    x_data, *weights = _weights(size, GATES[kind])
    module = module.to(device)
    with torch.no_grad():
        for p, w in zip(module.parameters(), weights, strict=True):
            p.copy_(torch.from_numpy(w))
    return module, torch.tensor(x_data, device=device, requires_grad=True)


_TORCH_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def torch_layer(torch, size, device: str, kind: str = "lstm") -> Callable[[], None]:
    module = getattr(torch.nn, _TORCH_NAMES[kind])(size[1], size[2])
    return _training_step(*_torch_with_our_weights(torch, module, size, device, kind))


def torch_cells(torch, size, device: str, kind: str = "lstm") -> Callable[[], None]:
    module = getattr(torch.nn, _TORCH_NAMES[kind] + "Cell")(size[1], size[2])
    return _cell_loop(*_torch_with_our_weights(torch, module, size, device, kind), torch.stack)


def _on_one_blas_thread(run: Callable[[], None]) -> Callable[[], None]:
    """`run` with NumPy's BLAS held to one thread (threadpoolctl), to compare with its default in the same rounds."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")

    def limited() -> None:
        with blas.limit(limits=1):
            run()

    return limited


def contenders(kind: str, size, device: str, torch, torch_device: str, loops: bool,
               one_thread_too: bool = False) -> dict[str, Callable]:
    """Every contender for one cell kind and size, by the column name the table shows."""
    made = {"layer": ours(size, device, kind), "ceiling": ceiling(size, device, kind)}
    if one_thread_too:
        made["layer 1 thread"] = _on_one_blas_thread(ours(size, device, kind))
    if loops:
        made["cells"] = our_cells(size, device, kind)
        if kind == "lstm":
            made["fused cells"] = our_cells(size, device, kind, fused=True)
    if torch is not None:
        made["torch layer"] = torch_layer(torch, size, torch_device, kind)
        if loops:
            made["torch cells"] = torch_cells(torch, size, torch_device, kind)
    return made


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


RUNS_PER_ROUND = 3
MIN_TIMED_SECONDS = 1.0
"""A contender that has run for less than this after `--repeat` rounds gets more rounds (up to `MAX_ROUNDS`)."""
MAX_ROUNDS = 60


def time_contenders(contenders: dict[str, Callable], repeat: int, synchronize: Callable, progress) -> dict[str, float]:
    """Best wall time per contender, alternating so that all see the same machine load.

    Each round runs a contender `RUNS_PER_ROUND` times back to back and keeps the best: the steady state of
    a training loop, which runs its step again and again. The first runs after another contender pay for the
    CPU caches and allocator state it left behind: after PyTorch's layer at (1, 32, 32, 200) our RNN layer
    took 1.17, 1.12 and 1.05 ms in its first, second and third run, the ceiling 0.93 ms from the first
    (measured), which says more about the neighbour in this table than about either.
    Every contender gets `repeat` rounds; the fast ones more, until each has run `MIN_TIMED_SECONDS`: a 1 ms
    step's best of 15 runs moved by 10-20% from one process to the next on this machine, its best of ~120
    by a few percent (measured).
    """
    for run in contenders.values():  # warm-up: caches, kernel compilation, allocator pools
        run()
    synchronize()
    best = dict.fromkeys(contenders, float("inf"))
    spent = dict.fromkeys(contenders, 0.0)
    for round_ in range(MAX_ROUNDS):
        running = [name for name in contenders if round_ < repeat or spent[name] < MIN_TIMED_SECONDS]
        if not running:
            break
        for name in running:
            if round_ < repeat:  # a full collection costs tens of ms with PyTorch loaded: not every extra round
                gc.collect()
            for _ in range(RUNS_PER_ROUND):
                start = time.perf_counter()
                contenders[name]()
                synchronize()
                elapsed = time.perf_counter() - start
                best[name], spent[name] = min(best[name], elapsed), spent[name] + elapsed
            if round_ < repeat:
                progress.update()
    return best


RATIOS = {"layer/ceiling": ("layer", "ceiling"), "layer/1 thread": ("layer", "layer 1 thread"),
          "layer/torch": ("layer", "torch layer"),
          "cells/torch": ("cells", "torch cells"), "fused cells/torch": ("fused cells", "torch cells")}


def print_table(kind: str, rows: list[tuple[tuple, dict[str, float]]]) -> None:
    """Milliseconds per contender, then the ratios that the goals are stated in (below 1: ours is faster)."""
    names = list(rows[0][1])
    ratios = {label: (a, b) for label, (a, b) in RATIOS.items() if a in names and b in names}
    print(f"\n{kind.upper()} (ms)")
    header = f"{'batch,input,hidden,steps':>24} " + " ".join(f"{n:>14}" for n in names)
    print(header + "".join(f" {label:>17}" for label in ratios))
    for size, best in rows:
        line = f"{','.join(map(str, size)):>24} " + " ".join(f"{best[n] * 1e3:14.3f}" for n in names)
        print(line + "".join(f" {best[a] / best[b]:17.2f}" for a, b in ratios.values()))


# ---------------------------------------------------------------- memory: one process per implementation

MEMORY_CONTENDERS = ["layer", "ceiling", "cells", "fused cells", "torch layer", "torch cells"]


def _one_memory_measurement(name: str, size) -> tuple[int, int]:
    """(resident bytes before the step, high-water resident bytes after it), in this process."""
    torch = _import_torch("cpu") if name.startswith("torch") else None
    if name.startswith("torch") and torch is None:
        raise SystemExit("PyTorch is not installed")
    run = {
        "layer": lambda: ours(size, "cpu"),
        "ceiling": lambda: ceiling(size, "cpu"),
        "cells": lambda: our_cells(size, "cpu"),
        "fused cells": lambda: our_cells(size, "cpu", fused=True),
        "torch layer": lambda: torch_layer(torch, size, "cpu"),
        "torch cells": lambda: torch_cells(torch, size, "cpu"),
    }[name]()
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    run()
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_memory(size_text: str, names: list[str], progress) -> dict[str, tuple[int, int]]:
    """Each implementation's (baseline, peak) resident memory, from a fresh process (high-water marks never drop)."""
    peaks = {}
    for name in names:
        out = subprocess.run([sys.executable, "-m", "tinygrad_lstm.benchmarks.lstm", "--memory-of", name,
                              "--sizes", size_text], capture_output=True, text=True, env=_child_environment({}))
        if out.returncode:
            print(f"memory of {name}: failed ({out.stderr.strip().splitlines()[-1:]})")
        else:
            before, peak = (int(v) for v in out.stdout.split()[-2:])
            peaks[name] = (before, peak)
        progress.update()
    return peaks


def _parse_size(text: str) -> tuple[int, int, int, int]:
    try:
        size = tuple(int(v) for v in text.split(","))
    except ValueError:
        size = ()
    if len(size) != 4 or min(size) <= 0:
        raise argparse.ArgumentTypeError(f"a size is batch,input,hidden,steps (four positive integers), got {text!r}")
    return size


def blas_kernels() -> str:
    """Which BLAS and which of its CPU kernels NumPy runs here (OpenBLAS picks them when it loads, unless
    OPENBLAS_CORETYPE names some), for the table's header: the same NumPy can differ 1.5x between them."""
    from threadpoolctl import threadpool_info

    found = [f"{info['internal_api']} {info.get('architecture') or ''}".strip()
             for info in threadpool_info() if info["user_api"] == "blas"]
    forced = os.environ.get("OPENBLAS_CORETYPE")
    kernels = f", NumPy's BLAS: {', '.join(found)}" if found else ""
    return kernels + (f" (OPENBLAS_CORETYPE={forced})" if forced else "")


def _import_torch(device: str):
    try:
        import torch
    except ImportError:
        return None
    if device != "cpu" and not torch.cuda.is_available():
        print("PyTorch has no CUDA here: its columns are left out")
        return None
    return torch


def _child_environment(extra: dict[str, str]) -> dict[str, str]:
    """This environment, with this checkout importable (installed or not) and `extra` set."""
    package_root = str(Path(tl.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, **extra)


def _rerun_with_one_thread(argv: list[str]) -> int:
    """BLAS picks its thread count when it loads: a child process with the variables set is the reliable way."""
    env = _child_environment({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                              _CHILD_FLAG: "1"})
    return subprocess.call([sys.executable, "-m", "tinygrad_lstm.benchmarks.lstm", *argv], env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/lstm.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--cells", nargs="+", choices=list(GATES), default=list(GATES),
                        help="which recurrent layers to time (default: all three)")
    parser.add_argument("--sizes", nargs="+", type=_parse_size, metavar="B,I,H,T",
                        help=f"batch,input,hidden,steps (default on cpu: {' '.join(CPU_SIZES)}; "
                             f"on cuda: {' '.join(CUDA_SIZES)})")
    parser.add_argument("--threads", choices=["1", "all", "both"], default="all",
                        help="BLAS and PyTorch threads; 'both' also times our layers on one BLAS thread in the same "
                             "rounds (column 'layer 1 thread')")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per size; the best is kept")
    parser.add_argument("--no-loops", dest="loops", action="store_false",
                        help="leave out the cell loops (ours and PyTorch's), the slowest contenders")
    parser.add_argument("--memory", action="store_true",
                        help=f"also the high-water resident memory of one LSTM step at {MEMORY_SIZE}, each "
                             "implementation in its own process (cpu)")
    parser.add_argument("--memory-of", choices=MEMORY_CONTENDERS, help=argparse.SUPPRESS)  # one child's measurement
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.memory_of:
        print(*_one_memory_measurement(args.memory_of, args.sizes[0] if args.sizes else _parse_size(MEMORY_SIZE)))
        return 0
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
    one_thread_too = args.threads == "both" and device == "cpu"
    print(f"one training step of a 1-layer recurrent layer, float32, {args.device}, {threads}{blas_kernels()}; "
          f"best of at least {args.repeat} rounds")

    synchronize = _synchronizer(device, torch)
    per_size = 2 + one_thread_too + (torch is not None) + args.loops * (1 + (torch is not None))
    total = sum(len(sizes) * (per_size + (args.loops and kind == "lstm")) for kind in args.cells) * args.repeat
    tables: dict[str, list] = {}
    with tqdm(total=total, desc="timing", leave=False) as progress:
        for kind in args.cells:
            tables[kind] = []
            for size in sizes:
                runs = contenders(kind, size, device, torch, torch_device, args.loops, one_thread_too)
                tables[kind].append((size, time_contenders(runs, args.repeat, synchronize, progress)))
                del runs
    for kind, rows in tables.items():
        print_table(kind, rows)

    if args.memory:
        names = [n for n in MEMORY_CONTENDERS if torch is not None or not n.startswith("torch")]
        with tqdm(total=len(names), desc="memory", leave=False) as progress:
            peaks = measure_memory(MEMORY_SIZE, names, progress)
        print(f"\nLSTM, one training step at {MEMORY_SIZE}: high-water resident memory (MiB), one process each")
        print(f"{'':>14} {'peak':>8} {'step adds':>10}")
        for name, (before, peak) in peaks.items():
            print(f"{name:>14} {peak / 2**20:8.0f} {(peak - before) / 2**20:10.0f}")
        if "cells" in peaks and "torch cells" in peaks:
            print(f"cells / torch cells: peak {peaks['cells'][1] / peaks['torch cells'][1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
