"""`tinygrad-lstm graph`: render an unrolled cell's computation graph: gates grouped and named, time steps
grouped, the cell-state highway drawn as one bold line, and (--grad) the gradients flowing back through it."""

from __future__ import annotations

import argparse
import os
import threading

from .. import viz
from ..experiments import unrolled_cell
from ..viz.draw import AUTO_FOLD_NODES
from .common import check_numbers, output_dir, progress

#: the colour scale of every --grad picture, so that pictures of different cells compare by colour
GRAD_RANGE = (1e-4, 1e1)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("graph", help="render the computation graph of an unrolled LSTM/GRU/RNN cell",
                       description="Render the graph of a cell unrolled over a few steps, built by the engine. "
                                   f"Graphs of more than {AUTO_FOLD_NODES} nodes (an LSTM cell beyond about 40 "
                                   "steps) are folded, which says so: --no-fold draws every step (slow for dot), "
                                   "--fold K keeps K steps at each end.")
    p.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    p.add_argument("--steps", type=int, default=3, help="time steps to unroll (default 3)")
    p.add_argument("--grad", action="store_true",
                   help="run backward and colour edges by gradient magnitude, on a fixed scale "
                        f"({GRAD_RANGE[0]:g} to {GRAD_RANGE[1]:g}) shared by every --grad picture")
    fold = p.add_mutually_exclusive_group()
    fold.add_argument("--fold", type=int, default=None, metavar="K",
                      help="show only the first and last K steps, eliding the middle (default: automatic)")
    fold.add_argument("--no-fold", action="store_true", help="draw every step, however many")
    p.add_argument("--format", choices=["svg", "png", "pdf", "dot"], default=None,
                   help="picture format (default: the suffix of --out, else svg)")
    p.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="layout direction (default: left to right)")
    p.add_argument("--out", default=None,
                   help="output path (default: runs/graph/<cell>-<steps>steps[-grad].<format>)")
    return p


def run(args: argparse.Namespace) -> int:
    check_numbers(args, positive=("steps", "fold"))
    fold = None if args.no_fold else args.fold if args.fold is not None else "auto"
    loss = unrolled_cell(args.cell, args.steps, backward=args.grad)
    graph = viz.draw_graph(loss, show_grad=args.grad, grad_range=GRAD_RANGE if args.grad else None,
                           rankdir=args.rankdir, fold=fold)
    if graph.comment:
        print(f"{graph.comment}; --no-fold draws them all, --fold K keeps K at each end")
    out = args.out or os.path.join("runs", "graph", f"{args.cell}-{args.steps}steps{'-grad' if args.grad else ''}."
                                                    f"{args.format or 'svg'}")
    output_dir(os.path.dirname(os.path.abspath(out)))
    print(_render_with_progress(graph, out, args.format))
    return 0


def _render_with_progress(graph, out: str, fmt: str | None) -> str:
    """Graphviz lays out in one call: a ticking bar shows that it works (big graphs take minutes)."""
    done, result, failed = threading.Event(), {}, []

    def work() -> None:
        try:
            result["path"] = viz.render(graph, out, format=fmt)
        except Exception as exc:  # handed over to the main thread, which raises it
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, daemon=True).start()
    if not done.wait(2.0):
        with progress(None, f"laying out {graph.source.count(' -> ')} edges with dot") as bar:
            bar.unit = "s"
            while not done.wait(1.0):
                bar.update()
    if failed:
        raise failed[0]
    return result["path"]
