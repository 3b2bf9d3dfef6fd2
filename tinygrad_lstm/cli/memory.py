"""`tinygrad-lstm memory`: the article's claim as numbers. A plain RNN, a GRU and an LSTM on the adding problem
for several delays, then the gradient that reaches each input step: fading for the RNN, carried by the LSTM."""

from __future__ import annotations

import argparse
import os

import numpy as np

from ..experiments import input_gradient_norms, train_adding
from ..plots import plot_gradient_flow, plot_memory
from ..tasks import ADDING_BASELINE_MSE
from .common import add_device_argument, device_from, output_dir, progress


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("memory", help="RNN vs GRU vs LSTM on the adding problem, and their gradient flow",
                       description="Train a plain RNN, a GRU and an LSTM on the adding problem (Hochreiter & "
                                   "Schmidhuber 1997) for each delay T; print test errors against the 0.167 "
                                   "baseline of guessing the mean, and how much gradient reaches each input step.")
    p.add_argument("--delays", type=int, nargs="+", default=[10, 25, 50, 100], help="sequence lengths T")
    p.add_argument("--models", nargs="+", choices=["rnn", "gru", "lstm"], default=["rnn", "gru", "lstm"])
    p.add_argument("--steps", type=int, default=1500, help="training steps per model and delay")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "memory"), help="folder for the plots")
    p.add_argument("--quiet", action="store_true")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    if min(args.delays) < 2 or args.steps <= 0:
        raise ValueError("--delays must be >= 2 and --steps positive")
    device = device_from(args)
    results = {}
    with progress(len(args.delays) * len(args.models) * args.steps, "training", args.quiet) as bar:
        for delay in args.delays:
            for kind in args.models:
                bar.set_description(f"{kind} T={delay}")
                results[kind, delay] = train_adding(kind, delay, args.steps, args.hidden_size, args.batch_size,
                                                    args.lr, device, args.seed, lambda i, loss: bar.update())
    print(format_error_table(results, args.models, args.delays))

    longest = max(args.delays)
    norms = {kind: input_gradient_norms(results[kind, longest].model, longest) for kind in args.models}
    print(f"\nGradient reaching input x_t from the loss at the last step (T={longest}), relative to the last input:")
    print(format_gradient_table(norms, longest))

    out = output_dir(args.out)
    try:
        errors = {kind: [results[kind, d].mse for d in args.delays] for kind in args.models}
        paths = [plot_memory(errors, args.delays, ADDING_BASELINE_MSE, os.path.join(out, "memory.png")),
                 plot_gradient_flow(norms, os.path.join(out, "gradient_flow.png"))]
        print("\nplots: " + ", ".join(paths))
    except ImportError as exc:
        print(f"\n{exc}")
    return 0


def format_error_table(results: dict, models: list[str], delays: list[int]) -> str:
    header = f"test MSE (baseline of guessing the mean: {ADDING_BASELINE_MSE:.3f})\n"
    header += "T".rjust(6) + "".join(kind.upper().rjust(10) for kind in models)
    rows = [str(d).rjust(6) + "".join(f"{results[k, d].mse:10.4f}" for k in models) for d in delays]
    return "\n".join([header, *rows])


def format_gradient_table(norms: dict[str, np.ndarray], steps: int) -> str:
    picks = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    lines = ["t".rjust(6) + "".join(kind.upper().rjust(12) for kind in norms)]
    for t in picks:
        lines.append(str(t).rjust(6) + "".join(f"{values[t] / values[-1]:12.2e}" for values in norms.values()))
    return "\n".join(lines)
