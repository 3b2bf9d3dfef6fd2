"""The forget gate at work: an LSTM reads a stream cut into segments by a reset symbol and must name the first
symbol of the current segment. Whatever it remembered before a reset is useless after it, so it learns to
close the forget gate there (the article's "why is it necessary to discard?").

    python examples/04_forget_gate.py              # prints the gate per step, writes runs/examples/forget_gate.png
"""

import argparse
import os

import numpy as np

from tinygrad_lstm.experiments import forget_gate_trace, train_segment_recall
from tinygrad_lstm.tasks import segment_recall

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300, help="training steps")
parser.add_argument("--length", type=int, default=40, help="stream length to show")
parser.add_argument("--out", default=os.path.join("runs", "examples"))
args = parser.parse_args()

result = train_segment_recall(args.steps)
print(f"accuracy {result.accuracy:.1%} (chance {1 / result.num_symbols:.0%})")

inputs, targets, resets = segment_recall(1, args.length, result.num_symbols, (6, 14), np.random.default_rng(1))
trace = forget_gate_trace(result.model, inputs)  # (T, H): f_t recomputed from the layer's weights
at_reset = trace[resets[1:, 0].nonzero()[0] + 1].mean()  # the resets after the first: something to erase
elsewhere = trace[~resets[:, 0]].mean()
print(f"mean forget gate at the resets: {at_reset:.2f}, elsewhere: {elsewhere:.2f} (lower at the resets: it erases)")
print("\n step  symbol  mean f_t over units")
for t in range(args.length):
    symbol = "RESET" if resets[t, 0] else str(inputs[t, 0].argmax())
    print(f"{t:5d}  {symbol:>6s}  {'#' * int(30 * trace[t].mean()):30s} {trace[t].mean():.2f}")

try:
    from tinygrad_lstm.plots import plot_forget_gate

    os.makedirs(args.out, exist_ok=True)
    print("heatmap:", plot_forget_gate(trace, resets[:, 0], os.path.join(args.out, "forget_gate.png")))
except ImportError as exc:
    print(exc)
