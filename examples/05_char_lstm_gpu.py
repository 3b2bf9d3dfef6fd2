"""A character-level LSTM trained on the GPU through CuPy (falls back to the CPU, saying why).

The model is Embedding -> LSTM -> Linear; the corpus is the LSTM article that ships with the package.
The same code runs on both devices: only device= changes.

    pip install 'tinygrad-lstm[cuda12]'   # or [cuda13]: CuPy with the CUDA libraries, for your CUDA version
    python examples/05_char_lstm_gpu.py
"""

import argparse
import time

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.experiments import CharLM, char_lm_loss, generate
from tinygrad_lstm.tasks import load_corpus

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--hidden-size", type=int, default=128)
parser.add_argument("--seq-len", type=int, default=64)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

# The check runs an elementwise op, a matmul and a random draw on the GPU; if CuPy, the GPU or one of the
# CUDA libraries they need is missing, it says which and what to install.
problem = tl.cuda.problem()
device = "cpu" if problem else "cuda"
if problem:
    print(f"no usable GPU, training on the CPU instead: {problem}")

tl.manual_seed(0)
corpus = load_corpus("article")
model = CharLM(corpus.vocab_size, hidden_size=args.hidden_size, device=device)  # parameters live on the device
optimizer = nn.optim.Adam(model.parameters(), lr=5e-3)
rng = np.random.default_rng(0)
start = time.perf_counter()
for step in range(1, args.steps + 1):
    inputs, targets = corpus.batch(args.seq_len, args.batch_size, rng)  # host data, moved to the device inside
    loss = char_lm_loss(model, inputs, targets)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if step % max(1, args.steps // 3) == 0:
        print(f"step {step}: loss {loss.item():.3f}  ({step / (time.perf_counter() - start):.1f} steps/s on {device})")
        print("  " + generate(model, corpus, "The ", 80, rng).replace("\n", " "))
