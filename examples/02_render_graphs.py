"""Render an LSTM's computation graph: one cell, then a 3-step unroll, before and after backward; then a model of
your own, fused and op by op.

The gates are clusters named as in the article, each time step is a cluster, and the cell state's "highway"
is one bold line through every step. After backward, edges are coloured by the size of the gradient they carry,
on one fixed scale so the pictures compare by colour. A model's parameters are labelled with their module path
(`lstm.weight_hh_l0`); its fused nn.LSTM is one box per layer listing what it computed (steps, gates), and
`fused=False` draws every op instead.

    python examples/02_render_graphs.py            # writes runs/examples/graphs/*.svg
"""

import argparse
import os

import tinygrad_lstm as tl
from tinygrad_lstm import nn, viz
from tinygrad_lstm.experiments import unrolled_cell

GRAD_RANGE = (1e-4, 1e1)  # the colour scale of `tinygrad-lstm graph --grad` and the README's pictures

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--format", default="svg", choices=["svg", "png", "pdf", "dot"])
parser.add_argument("--out", default=os.path.join("runs", "examples", "graphs"))
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)


def write(graph, name: str) -> None:
    try:
        print(viz.render(graph, os.path.join(args.out, f"{name}.{args.format}")))
    except RuntimeError as exc:  # no Graphviz `dot`: the .dot source was written, and the error says how to install
        print(exc)


for steps in (1, args.steps):
    for backward in (False, True):
        loss = unrolled_cell("lstm", steps, backward=backward)  # built with nn.LSTMCell inside "step t" scopes
        graph = viz.draw_graph(loss, show_grad=backward, grad_range=GRAD_RANGE if backward else None)
        write(graph, f"lstm-{steps}step{'s' if steps > 1 else ''}{'-grad' if backward else ''}")


class Tagger(nn.Module):
    """A model of your own: an LSTM over the sequence, a Linear layer on every step."""

    def __init__(self, fused: bool):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, fused=fused)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        output, _ = self.lstm(x)
        return self.head(output)


for fused in (True, False):
    tl.manual_seed(0)
    model = Tagger(fused)
    tokens = tl.randn(3, 1, 3)  # 3 steps, batch 1, 3 features
    tokens.name = "tokens"
    loss = model(tokens).sum()
    # params= labels each parameter with its module path, as named_parameters() gives it
    write(viz.draw_graph(loss, params=dict(model.named_parameters())), f"model-{'fused' if fused else 'op-by-op'}")
