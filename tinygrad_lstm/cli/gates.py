"""`tinygrad-lstm gates`: why forget? An LSTM learns to name the first symbol of the current segment of a stream;
its forget gate closes at the reset symbols, where everything remembered becomes useless."""

from __future__ import annotations

import argparse
import os

import numpy as np

from ..experiments import forget_gate_trace, train_segment_recall
from ..plots import plot_forget_gate
from ..tasks import segment_recall
from .common import add_device_argument, check_numbers, device_from, output_dir, progress


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gates", help="watch the forget gate close when the context switches",
                       description="Train an LSTM on a stream cut into segments by a reset symbol (the answer depends "
                                   "only on the current segment), then show its forget gate over time as a heatmap.")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--hidden-size", type=int, default=16)
    p.add_argument("--symbols", type=int, default=4, help="distinct symbols in the stream")
    p.add_argument("--length", type=int, default=60, help="sequence length for training and the picture")
    p.add_argument("--lr", type=float, default=2e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "gates"), help="folder for the heatmap")
    p.add_argument("--quiet", action="store_true")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    check_numbers(args, positive=("steps", "hidden_size", "lr"))
    if args.length < 2 or args.symbols < 2:
        raise ValueError(f"--length and --symbols must be at least 2, got {args.length} and {args.symbols}")
    device = device_from(args)
    with progress(args.steps, "training", args.quiet) as bar:
        def on_step(i: int, loss: float | None) -> None:
            bar.update()
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}")

        result = train_segment_recall(args.steps, args.hidden_size, args.symbols, args.length, device=device,
                                      lr=args.lr, seed=args.seed, on_step=on_step)
    print(f"test accuracy {result.accuracy:.1%} (chance {1 / args.symbols:.0%})")
    inputs, _, resets = segment_recall(1, args.length, args.symbols, (6, 14), np.random.default_rng(args.seed + 1))
    trace = forget_gate_trace(result.model, inputs)
    at_reset, elsewhere = forget_gate_summary(trace, resets[:, 0])
    print(f"mean forget gate at reset symbols: {at_reset:.2f}; elsewhere: {elsewhere:.2f} "
          "(1 keeps the cell state, 0 erases it)")
    try:
        path = plot_forget_gate(trace, resets[:, 0], os.path.join(output_dir(args.out), "forget_gate.png"))
        print(f"heatmap: {path}")
    except ImportError as exc:
        print(exc)
    return 0


def forget_gate_summary(trace: np.ndarray, resets: np.ndarray) -> tuple[float, float]:
    """Mean forget-gate activation at the reset steps (after the first) and at all other steps."""
    resets = resets.copy()
    resets[0] = False  # the stream's opening reset has nothing to erase
    return float(trace[resets].mean()), float(trace[~resets].mean())
