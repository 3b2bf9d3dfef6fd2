"""Why a plain RNN forgets and an LSTM remembers, as numbers.

Both learn the adding problem: the answer is the sum of two numbers marked somewhere in a long sequence, so
the first must be carried across many steps. Then we measure how much gradient reaches each input step from
the loss at the end: it fades geometrically through the RNN's repeated tanh, and travels the LSTM's highway.

    python examples/03_rnn_vs_lstm_memory.py       # about 10 s: "RNN ... forgets", "LSTM ... remembers"
"""

import argparse

from tinygrad_lstm.experiments import input_gradient_norms, train_adding
from tinygrad_lstm.tasks import ADDING_BASELINE_MSE

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--delay", type=int, default=30, help="sequence length T")
parser.add_argument("--steps", type=int, default=800, help="training steps per model (400 is too few for the LSTM)")
args = parser.parse_args()

print(f"adding problem, T={args.delay}: test MSE (guessing the mean gives {ADDING_BASELINE_MSE:.3f})")
norms = {}
for kind in ("rnn", "lstm"):
    result = train_adding(kind, args.delay, args.steps)
    norms[kind] = input_gradient_norms(result.model, args.delay)
    print(f"  {kind.upper():5s} {result.mse:.4f}  {'remembers' if result.solved else 'forgets'}")

print("\ngradient reaching x_t, relative to the last step's (1.0 = as strong as the newest input):")
print("   t " + "".join(f"{k.upper():>10s}" for k in norms))
for t in range(0, args.delay, max(1, args.delay // 6)):
    print(f"{t:4d} " + "".join(f"{v[t] / v[-1]:10.2e}" for v in norms.values()))
