"""`tinygrad-lstm explore`: one self-contained HTML page to watch backprop happen on an unrolled cell: step
through the backward walk node by node, inspect values and gradients, and (--compare) see the gradient that
reaches each step's input fade for an RNN and carry for an LSTM."""

from __future__ import annotations

import argparse
import os

from .. import viz
from ..experiments import unrolled_cell
from .common import add_device_argument, device_from


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("explore", help="write an interactive HTML page that replays the backward pass",
                       description="Unroll a cell, run backward, and write one self-contained HTML page (no "
                                   "network needed) that steps through the backward walk over the graph.")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--steps", type=int, default=3, help="time steps to unroll (default 3)")
    p.add_argument("--compare", action="store_true",
                   help="show a plain RNN beside the chosen cell (an LSTM by default), with the same steps")
    fold = p.add_mutually_exclusive_group()
    fold.add_argument("--fold", dest="fold", action="store_true", default=None,
                      help="start with the middle time steps folded (default: only for long unrolls, "
                           f"more than {viz.FOLD_ABOVE_OPS} ops)")
    fold.add_argument("--no-fold", dest="fold", action="store_false", help="never fold (slow to lay out when long)")
    p.add_argument("--out", default=None, help="output path (default: runs/explore/<cell>-<steps>steps.html)")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.compare and args.cell == "rnn":
        raise ValueError("--compare puts a plain RNN beside --cell lstm or gru; pick one of those")
    device = device_from(args)
    cells = ["rnn", args.cell] if args.compare else [args.cell]
    roots = {cell.upper(): unrolled_cell(cell, args.steps, backward=True, device=device, input_grad=True)
             for cell in cells}
    name = "-vs-".join(cells)
    out = args.out or os.path.join("runs", "explore", f"{name}-{args.steps}step{'s' if args.steps > 1 else ''}.html")
    print(viz.explore(roots if args.compare else roots[args.cell.upper()], out, fold=args.fold))
    return 0
