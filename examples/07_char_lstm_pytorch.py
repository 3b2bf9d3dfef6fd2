"""The default `tinygrad-lstm train` run, written in PyTorch: the yardstick for docs/results.md.

Same model (Embedding 32 -> LSTM 128 -> Linear), same data (the package's corpus, its validation split and the
very same batches), same optimiser and schedule (Adam, lr 5e-3 halved every 500 steps, gradient norm clipped
to 1), same validation loss in bits per character. Only the engine differs.

    pip install torch
    python examples/07_char_lstm_pytorch.py --corpus python
"""

import argparse
import math
import time

import numpy as np
import torch
from torch import nn

from tinygrad_lstm.tasks import load_corpus

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--corpus", default="article")
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--hidden-size", type=int, default=128)
parser.add_argument("--embedding-dim", type=int, default=32)
parser.add_argument("--seq-len", type=int, default=64)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=5e-3)
parser.add_argument("--eval-every", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

corpus = load_corpus(args.corpus)
train_text, val_text = corpus.split(0.1)  # as `train --val-fraction 0.1`
val_inputs, val_targets = (torch.from_numpy(a) for a in val_text.windows(args.seq_len))
torch.manual_seed(args.seed)


class CharLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(corpus.vocab_size, args.embedding_dim)
        self.rnn = nn.LSTM(args.embedding_dim, args.hidden_size)
        self.head = nn.Linear(args.hidden_size, corpus.vocab_size)

    def forward(self, ids):
        output, _ = self.rnn(self.embed(ids))
        return self.head(output)


def bits(logits, targets) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, corpus.vocab_size), targets.reshape(-1)) / math.log(2)


model = CharLM()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=500, gamma=0.5)
best, start = math.inf, time.perf_counter()
for step in range(1, args.steps + 1):
    inputs, targets = train_text.batch(args.seq_len, args.batch_size, np.random.default_rng([args.seed, step - 1]))
    loss = bits(model(torch.from_numpy(inputs)), torch.from_numpy(targets))
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    if step % args.eval_every == 0 or step == args.steps:
        with torch.no_grad():
            val = bits(model(val_inputs), val_targets).item()
        best = min(best, val)
        print(f"step {step}: train {loss.item():.3f}, validation {val:.3f} bits/char")
elapsed = time.perf_counter() - start
print(f"PyTorch {torch.__version__}: {args.steps} steps in {elapsed:.0f} s ({args.steps / elapsed:.1f} steps/s, "
      f"{torch.get_num_threads()} threads); best validation {best:.3f} bits/char")
