"""How much the engine's machinery costs per op, beside PyTorch on the same machine in the same run.

Two cases, both small enough that the arithmetic is negligible and what is timed is the Python
around it (building graph nodes, the backward walk, gradient accumulation):

- `(x * y).sum().backward()` on 4x4 float32 tensors;
- a chain of elementwise ops (`z * 0.999 + 0.001`, repeated), forward and backward.

Each case runs `--repeat` times, alternating between the engines so both see the same machine
load; the table shows the best time (the median in brackets) and the ratio ours / PyTorch
(below 1 means faster).
"""

from __future__ import annotations

import argparse
import statistics
import timeit
from collections.abc import Callable
from typing import Any

import numpy as np

import tinygrad_lstm as tl


def _mul_sum_backward(x, y) -> Callable[[], None]:
    def run() -> None:
        (x * y).sum().backward()

    return run


def _chain(x, length: int) -> Callable[[], None]:
    def run() -> None:
        z = x
        for _ in range(length // 2):
            z = z * 0.999 + 0.001
        z.sum().backward()

    return run


def _cases(length: int, device: str, torch) -> list[tuple[str, Callable, Callable | None]]:
    """(name, our callable, PyTorch's callable or None) for each case."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4, 4), dtype=np.float32)
    x = tl.Tensor(a, requires_grad=True, device=device)
    y = tl.Tensor(b, requires_grad=True, device=device)
    ours = [_mul_sum_backward(x, y), _chain(x, length)]
    theirs: list[Callable | None] = [None, None]
    if torch is not None:
        torch_device = "cuda" if device.startswith("cuda") else "cpu"
        tx = torch.tensor(a, requires_grad=True, device=torch_device)
        ty = torch.tensor(b, requires_grad=True, device=torch_device)
        theirs = [_mul_sum_backward(tx, ty), _chain(tx, length)]
    names = ["(x * y).sum().backward(), 4x4", f"{length}-op elementwise chain, fwd+bwd"]
    return list(zip(names, ours, theirs, strict=True))


def _loops_for(run: Callable, min_time: float) -> int:
    """How many calls make one measurement last about `min_time` seconds."""
    number, elapsed = 1, 0.0
    while elapsed < min_time / 4:
        number *= 2
        elapsed = timeit.timeit(run, number=number)
    return max(1, int(number * min_time / elapsed))


def _format(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:8.2f} ms"


def measure(run: Callable, other: Callable | None, repeat: int, min_time: float) -> tuple[list, list]:
    """Per-call times of `run` and `other`, measured alternately, `repeat` times each."""
    number = _loops_for(run, min_time)
    other_number = _loops_for(other, min_time) if other is not None else 0
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(timeit.timeit(run, number=number) / number)
        if other is not None:
            theirs.append(timeit.timeit(other, number=other_number) / other_number)
    return ours, theirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/overhead.py",
        description="Time the engine's per-op overhead beside PyTorch (when installed) and print the ratio.",
    )
    parser.add_argument("--repeat", type=int, default=7, help="measurements per case and engine (default 7)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement (default 0.2)")
    parser.add_argument("--chain-length", type=int, default=1000, help="ops in the elementwise chain (default 1000)")
    parser.add_argument("--device", default="cpu", help="device for both engines: cpu or cuda (default cpu)")
    parser.add_argument("--no-torch", action="store_true", help="time only this engine")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.min_time <= 0 or args.chain_length < 2:
        parser.error("--repeat must be >= 1, --min-time > 0 and --chain-length >= 2")

    torch: Any = None  # the module, when it is installed and asked for
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: timing this engine only")
        else:
            if args.device.startswith("cuda") and not torch.cuda.is_available():
                print("PyTorch sees no GPU: timing this engine only")
                torch = None

    print(f"engine overhead on {args.device}, float32: best of {args.repeat} (median in brackets)")
    header = f"{'case':<40} {'tinygrad-lstm':>24} {'PyTorch':>24} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, ours, theirs in _cases(args.chain_length, args.device, torch):
        mine, other = measure(ours, theirs, args.repeat, args.min_time)
        ours_text = f"{_format(min(mine))} ({_format(statistics.median(mine)).strip()})"
        if other:
            theirs_text = f"{_format(min(other))} ({_format(statistics.median(other)).strip()})"
            ratio = f"{min(mine) / min(other):7.2f}"
        else:
            theirs_text, ratio = "-", "-"
        print(f"{name:<40} {ours_text:>24} {theirs_text:>24} {ratio:>7}")
    print("ratio = tinygrad-lstm / PyTorch (below 1: faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
