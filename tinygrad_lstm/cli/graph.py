"""`tinygrad-lstm graph`: render an unrolled cell's computation graph: gates grouped and named, time steps
grouped, the cell-state highway drawn as one bold line, and (--grad) the gradients flowing back through it."""

from __future__ import annotations

import argparse
import os

from .. import viz
from ..experiments import unrolled_cell


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("graph", help="render the computation graph of an unrolled LSTM/GRU/RNN cell",
                       description="Render the graph of a cell unrolled over a few steps, built by the engine.")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--steps", type=int, default=3, help="time steps to unroll (default 3)")
    p.add_argument("--grad", action="store_true", help="run backward and colour edges by gradient magnitude")
    p.add_argument("--fold", type=int, default=None, metavar="K",
                   help="show only the first and last K steps, eliding the middle (for long unrolls)")
    p.add_argument("--format", choices=["svg", "png", "pdf", "dot"], default="svg")
    p.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="layout direction (default: left to right)")
    p.add_argument("--out", default=None, help="output path (default: runs/graph/<cell>-<steps>steps.<format>)")
    return p


def run(args: argparse.Namespace) -> int:
    if args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    loss = unrolled_cell(args.cell, args.steps, backward=args.grad)
    graph = viz.draw_graph(loss, show_grad=args.grad, rankdir=args.rankdir, fold=args.fold)
    out = args.out or os.path.join("runs", "graph", f"{args.cell}-{args.steps}steps.{args.format}")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    print(viz.render(graph, out, format=args.format))
    return 0
