"""`tinygrad-lstm bench`: the benchmark scripts (benchmarks/), side by side with a hand-fused NumPy LSTM and PyTorch."""

from __future__ import annotations

import argparse

from .common import device_from


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="time the engine's overhead and recurrent training steps (ratios)",
                       description="Run the benchmarks: 'overhead' (per-op cost beside PyTorch) and 'lstm' (one "
                                   "training step of nn.LSTM, nn.GRU and nn.RNN and of loops over their cells, "
                                   "beside hand-fused NumPy layers and PyTorch). Options after '--' go to the "
                                   "benchmark script, e.g. bench lstm -- --memory --cells gru.")
    p.add_argument("which", nargs="?", choices=["overhead", "lstm", "all"], default="all")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="device for the LSTM benchmark (default: the GPU when usable)")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="options passed on to the benchmark script")
    return p


def run(args: argparse.Namespace) -> int:
    from ..benchmarks import lstm, overhead

    extra = [a for a in args.extra if a != "--"]
    chosen = [name for name in ("overhead", "lstm") if args.which in (name, "all")]
    for k, name in enumerate(chosen, 1):
        print(f"[{k}/{len(chosen)}] benchmark {name!r}: timing, this takes a while...", flush=True)
        if name == "overhead":
            overhead.main(extra if args.which == "overhead" else [])
        else:
            lstm.main(["--device", device_from(args).split(":")[0], *extra])
    return 0
