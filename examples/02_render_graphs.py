"""Render an LSTM's computation graph: one cell, then a 3-step unroll, before and after backward.

The gates are clusters named as in the article, each time step is a cluster, and the cell state's "highway"
is one bold line through every step. After backward, edges are coloured by the size of the gradient they carry.

    python examples/02_render_graphs.py            # writes runs/examples/graphs/*.svg
"""

import argparse
import os

from tinygrad_lstm import viz
from tinygrad_lstm.experiments import unrolled_cell

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--format", default="svg", choices=["svg", "png", "pdf", "dot"])
parser.add_argument("--out", default=os.path.join("runs", "examples", "graphs"))
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)

for steps in (1, args.steps):
    for backward in (False, True):
        loss = unrolled_cell("lstm", steps, backward=backward)  # built with nn.LSTMCell inside "step t" scopes
        graph = viz.draw_graph(loss, show_grad=backward)
        name = f"lstm-{steps}step{'s' if steps > 1 else ''}{'-grad' if backward else ''}.{args.format}"
        try:
            print(viz.render(graph, os.path.join(args.out, name), format=args.format))
        except RuntimeError as exc:  # no Graphviz `dot`: the .dot source was written, and the error says how to install
            print(exc)
