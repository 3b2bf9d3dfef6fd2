"""The article's claims as experiments: models, training loops and measurements shared by the CLI and examples.

- `train_adding` / `input_gradient_norms`: why a plain RNN forgets and an LSTM remembers.
- `train_segment_recall` / `forget_gate_trace`: why an LSTM needs to forget.
- `CharLM` / `generate`: a character-level language model.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn import functional as F
from tinygrad_lstm.tasks import ADDING_BASELINE_MSE, CharCorpus, adding_problem, segment_recall

RECURRENT_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
#: the training loops read the loss back to the host (a device sync) only every LOG_EVERY steps
LOG_EVERY = 25
#: called after every training step with the step index and, every LOG_EVERY steps, the loss (else None)
OnStep = Callable[[int, "float | None"], None]


def resolve_device(name: str = "auto") -> str:
    """'auto' is the GPU when CuPy sees one, else the CPU; anything else is checked and returned."""
    if name == "auto":
        return "cuda" if tl.cuda.is_available() else "cpu"
    tl.zeros(1, device=name)  # raises a clear error when the device is unusable
    return name


def _recurrent(kind: str, input_size: int, hidden_size: int, num_layers: int = 1, device: str = "cpu",
               dropout: float = 0.0) -> nn.Module:
    if kind not in RECURRENT_LAYERS:
        raise ValueError(f"unknown model {kind!r}: choose one of {sorted(RECURRENT_LAYERS)}")
    layer = RECURRENT_LAYERS[kind]
    if dropout and num_layers > 1 and "dropout" in inspect.signature(layer).parameters:
        return layer(input_size, hidden_size, num_layers=num_layers, dropout=dropout, device=device)
    return layer(input_size, hidden_size, num_layers=num_layers, device=device)


def _logged(loss: tl.Tensor, i: int, losses: list[float], on_step: OnStep | None) -> None:
    """Every LOG_EVERY steps read the loss back (one host sync), keep it and hand it on; else just tick."""
    value = None
    if (i + 1) % LOG_EVERY == 0:
        value = loss.item()
        losses.append(value)
    if on_step is not None:
        on_step(i, value)


# ---------------------------------------------------------------- the adding problem: memory over long delays


class SequenceRegressor(nn.Module):
    """A recurrent layer whose last hidden state is read out by a Linear layer."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, device: str = "cpu"):
        super().__init__()
        self.rnn = _recurrent(kind, input_size, hidden_size, device=device)
        self.head = nn.Linear(hidden_size, 1, device=device)

    def forward(self, x: tl.Tensor) -> tl.Tensor:
        output, _ = self.rnn(x)
        return self.head(output[-1])


@dataclass
class AddingResult:
    """One trained model on the adding problem: its test error against the guess-the-mean baseline."""

    kind: str
    steps: int
    mse: float
    model: SequenceRegressor = field(repr=False)
    losses: list[float] = field(default_factory=list, repr=False)  # every LOG_EVERY steps

    @property
    def solved(self) -> bool:
        """Well below the baseline: the model carries the first marked number across the delay."""
        return self.mse < 0.1 * ADDING_BASELINE_MSE


def train_adding(kind: str, steps: int, train_steps: int = 600, hidden_size: int = 32, batch: int = 64,
                 lr: float = 1e-2, device: str = "cpu", seed: int = 0, on_step: OnStep | None = None) -> AddingResult:
    """Train a `kind` model ('rnn', 'gru', 'lstm') on the adding problem with delay `steps`; test on fresh data."""
    tl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SequenceRegressor(kind, 2, hidden_size, device=device)
    optimizer = nn.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for i in range(train_steps):
        inputs, targets = adding_problem(batch, steps, rng)
        loss = F.mse_loss(model(tl.Tensor(inputs, device=device)), tl.Tensor(targets, device=device))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _logged(loss, i, losses, on_step)
    inputs, targets = adding_problem(1000, steps, np.random.default_rng(seed + 10_000))
    with tl.no_grad():
        mse = F.mse_loss(model(tl.Tensor(inputs, device=device)), tl.Tensor(targets, device=device)).item()
    return AddingResult(kind, steps, mse, model, losses)


def input_gradient_norms(model: SequenceRegressor, steps: int, batch: int = 256, seed: int = 1) -> np.ndarray:
    """||d loss / d x_t|| for every step t: how much each input still influences the answer at the end."""
    device = next(model.parameters()).device
    inputs, targets = adding_problem(batch, steps, np.random.default_rng(seed))
    x = tl.Tensor(inputs, device=device, requires_grad=True)
    F.mse_loss(model(x), tl.Tensor(targets, device=device)).backward()
    grad = x.grad.numpy()
    return np.sqrt((grad.astype(np.float64) ** 2).sum(axis=(1, 2)))


# ---------------------------------------------------------------- segment recall: learning to forget


class SequenceTagger(nn.Module):
    """An LSTM that classifies every step of a sequence."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, device: str = "cpu"):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, device=device)
        self.head = nn.Linear(hidden_size, num_classes, device=device)

    def forward(self, x: tl.Tensor) -> tuple[tl.Tensor, tl.Tensor]:
        output, _ = self.rnn(x)
        return self.head(output), output


def masked_cross_entropy(logits: tl.Tensor, targets: np.ndarray) -> tl.Tensor:
    """Cross-entropy over the steps whose target is >= 0 (a reset step has nothing to recall)."""
    steps, batch, classes = logits.shape
    mask = targets.reshape(-1) >= 0
    flat_targets = np.where(mask, targets.reshape(-1), 0)
    per_step = F.cross_entropy(logits.reshape(steps * batch, classes),
                               tl.Tensor(flat_targets, device=logits.device), reduction="none")
    weights = tl.Tensor(mask.astype(np.float32) / max(mask.sum(), 1), device=logits.device)
    return (per_step * weights).sum()


@dataclass
class RecallResult:
    model: SequenceTagger
    accuracy: float
    num_symbols: int
    losses: list[float] = field(default_factory=list, repr=False)


def train_segment_recall(train_steps: int = 300, hidden_size: int = 16, num_symbols: int = 4, steps: int = 60,
                         batch: int = 32, reset_every: tuple[int, int] = (6, 14), lr: float = 2e-2,
                         device: str = "cpu", seed: int = 0, on_step: OnStep | None = None) -> RecallResult:
    """Train an LSTM to name the first symbol of the current segment; a reset symbol starts a new one."""
    tl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SequenceTagger(num_symbols + 1, hidden_size, num_symbols, device=device)
    optimizer = nn.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for i in range(train_steps):
        inputs, targets, _ = segment_recall(batch, steps, num_symbols, reset_every, rng)
        logits, _ = model(tl.Tensor(inputs, device=device))
        loss = masked_cross_entropy(logits, targets)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _logged(loss, i, losses, on_step)
    inputs, targets, _ = segment_recall(256, steps, num_symbols, reset_every, np.random.default_rng(seed + 10_000))
    with tl.no_grad():
        logits, _ = model(tl.Tensor(inputs, device=device))
    predicted = logits.numpy().argmax(axis=-1)
    scored = targets >= 0
    accuracy = float((predicted == targets)[scored].mean())
    return RecallResult(model, accuracy, num_symbols, losses)


def forget_gate_trace(model: SequenceTagger, inputs: np.ndarray) -> np.ndarray:
    """The forget gate f_t = sigmoid(W_f x_t + b_if + U_f h_{t-1} + b_hf) of every step, for one sequence (T, H).

    Recomputed from the layer's weights and its hidden states, in PyTorch's gate order (i, f, g, o).
    """
    rnn = model.rnn
    device = rnn.weight_ih_l0.device
    x = tl.Tensor(inputs[:, :1], device=device)  # (T, 1, I)
    with tl.no_grad():
        output, _ = rnn(x)
        hidden = output[:, 0]  # (T, H)
        previous = tl.cat([tl.zeros(1, rnn.hidden_size, device=device), hidden[:-1]], axis=0)
        _, w_if, _, _ = rnn.weight_ih_l0.chunk(4)
        _, w_hf, _, _ = rnn.weight_hh_l0.chunk(4)
        _, b_if, _, _ = rnn.bias_ih_l0.chunk(4)
        _, b_hf, _, _ = rnn.bias_hh_l0.chunk(4)
        forget = (x[:, 0] @ w_if.T + b_if + previous @ w_hf.T + b_hf).sigmoid()
    return forget.numpy()


# ---------------------------------------------------------------- a character-level language model


class CharLM(nn.Module):
    """Embedding -> recurrent layers -> Linear: predicts the next character.

    `dropout` zeroes that fraction of the embeddings and of the recurrent layers' outputs while training (and
    between stacked layers, where the layer takes `dropout=`); `eval()` turns it off.
    """

    def __init__(self, vocab_size: int, hidden_size: int = 128, num_layers: int = 1, kind: str = "lstm",
                 embedding_dim: int = 32, dropout: float = 0.0, device: str = "cpu"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim, device=device)
        self.drop = nn.Dropout(dropout)
        self.rnn = _recurrent(kind, embedding_dim, hidden_size, num_layers, device=device, dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size, device=device)

    def forward(self, ids: tl.Tensor, state=None):
        output, state = self.rnn(self.drop(self.embed(ids)), state)
        return self.head(self.drop(output)), state


def char_lm_loss(model: CharLM, inputs: np.ndarray, targets: np.ndarray) -> tl.Tensor:
    device = next(model.parameters()).device
    logits, _ = model(tl.Tensor(inputs, device=device))
    steps, batch, vocab = logits.shape
    return F.cross_entropy(logits.reshape(steps * batch, vocab), tl.Tensor(targets.reshape(-1), device=device))


def generate(model: CharLM, corpus: CharCorpus, prime: str, length: int, rng: np.random.Generator,
             temperature: float = 0.8) -> str:
    """`prime` followed by `length` sampled characters, feeding the state forward one character at a time.

    Each character is drawn from softmax(logits / temperature); temperature 0 takes the most likely one.
    The model samples in eval mode (no dropout) and is put back in the mode it was in.
    """
    if temperature < 0:
        raise ValueError(f"the temperature must be >= 0 (0: always the most likely character), got {temperature}")
    if not prime:
        raise ValueError("generate needs a non-empty prime to start from")
    device = next(model.parameters()).device
    ids = corpus.encode(prime)
    out = []
    training = model.training
    model.eval()
    try:
        with tl.no_grad():
            logits, state = model(tl.Tensor(ids[:, None], device=device))
            for _ in range(length):
                scores = logits[-1, 0].numpy().astype(np.float64)
                if not np.isfinite(scores).all():
                    raise RuntimeError("the model's predictions are NaN or Inf: its weights diverged in training "
                                       "(a lower --lr or --grad-clip helps); nothing to sample from")
                if temperature == 0:
                    nxt = int(scores.argmax())
                else:
                    probs = np.exp((scores - scores.max()) / temperature)
                    nxt = int(rng.choice(len(probs), p=probs / probs.sum()))
                out.append(nxt)
                logits, state = model(tl.Tensor(np.array([[nxt]]), device=device), state)
    finally:
        model.train(training)
    return prime + corpus.decode(out)


def char_lm_bits(model: CharLM, inputs: np.ndarray, targets: np.ndarray, batch: int = 256) -> float:
    """Mean bits per character over (T, N) windows, in eval mode without a graph (the validation loss)."""
    training = model.training
    model.eval()
    total = 0.0
    try:
        with tl.no_grad():
            for start in range(0, inputs.shape[1], batch):
                chunk = slice(start, start + batch)
                total += char_lm_loss(model, inputs[:, chunk], targets[:, chunk]).item() * targets[:, chunk].size
    finally:
        model.train(training)
    return total / targets.size / np.log(2)


# ---------------------------------------------------------------- a small unrolled cell, for pictures


CELLS = {"lstm": nn.LSTMCell, "gru": nn.GRUCell, "rnn": nn.RNNCell}


def unrolled_cell(kind: str = "lstm", steps: int = 3, input_size: int = 3, hidden_size: int = 4, batch: int = 1,
                  backward: bool = False, seed: int = 0, device: str = "cpu", input_grad: bool = False) -> tl.Tensor:
    """Unroll one cell for `steps` time steps (each in a "step t" name scope) and return a scalar loss on the
    last hidden state; with `backward`, run backward first, keeping every tensor's gradient for the picture.
    `input_grad`: the inputs x_t require grad, so the gradient reaching each step's input can be read."""
    if kind not in CELLS:
        raise ValueError(f"unknown cell {kind!r}: choose one of {sorted(CELLS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    tl.manual_seed(seed)
    cell = CELLS[kind](input_size, hidden_size, device=device)
    state = None
    for t in range(1, steps + 1):
        x = tl.randn(batch, input_size, device=device, requires_grad=input_grad)
        x.name = f"x_{t}"
        state = cell(x, state)  # the cell opens one "step t" scope per call
    h = state[0] if isinstance(state, tuple) else state
    loss = (h * h).sum()
    loss.name = "loss"
    if backward:
        tl.retain_grads(loss)
        loss.backward()
    return loss
