"""Data for the showcase: the adding problem, a stream whose context resets, and a character corpus.

Generated on the host with NumPy (data, not tensor ops); the experiments move it to the device.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

ADDING_BASELINE_MSE = 1 / 6  # variance of the sum of two U(0, 1) numbers: the error of always guessing the mean


def adding_problem(batch: int, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hochreiter & Schmidhuber's adding problem: (T, B, 2) inputs of (value, marker), target = sum of the 2 marked.

    One marker falls in the first half of the sequence and one in the second, so the network must carry the
    first marked value across at least T/2 steps.
    """
    if steps < 2:
        raise ValueError(f"the adding problem needs at least 2 steps, got {steps}")
    values = rng.random((steps, batch)).astype(np.float32)
    markers = np.zeros((steps, batch), dtype=np.float32)
    half = steps // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, steps, size=batch)
    columns = np.arange(batch)
    markers[first, columns] = 1.0
    markers[second, columns] = 1.0
    inputs = np.stack([values, markers], axis=-1)
    targets = (values * markers).sum(axis=0)[:, None]
    return inputs, targets


def segment_recall(batch: int, steps: int, num_symbols: int, reset_every: tuple[int, int],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stream of symbols cut into segments by a reset symbol; at each step, name the segment's first symbol.

    What came before the last reset is useless, so a good LSTM learns to forget at the resets: the article's
    "why is it necessary to discard?". Returns one-hot inputs (T, B, K+1) (index K is the reset symbol),
    integer targets (T, B) (-1 at resets, where there is nothing to recall) and the reset positions (T, B).
    """
    low, high = reset_every
    symbols = rng.integers(0, num_symbols, size=(steps, batch))
    resets = np.zeros((steps, batch), dtype=bool)
    for b in range(batch):
        t = int(rng.integers(low, high + 1))
        while t < steps - 1:
            resets[t, b] = True
            t += int(rng.integers(low, high + 1))
    resets[0] = True  # every stream starts with a reset
    symbols = np.where(resets, num_symbols, symbols)
    targets = np.full((steps, batch), -1, dtype=np.int64)  # -1 at a reset: nothing to recall yet
    current = np.full(batch, -1, dtype=np.int64)
    for t in range(1, steps):
        current = np.where(resets[t - 1], symbols[t], current)
        current = np.where(resets[t], -1, current)
        targets[t] = current
    inputs = np.eye(num_symbols + 1, dtype=np.float32)[symbols]
    return inputs, targets, resets


@dataclass
class CharCorpus:
    """A text and its character vocabulary, cut into random (input, next-char target) batches.

    `vocab` defaults to the text's own characters; `split` hands it to both parts, so a character seen only
    in the validation text still has an id.
    """

    text: str
    name: str
    vocab: list[str] | None = None

    def __post_init__(self):
        if len(self.text) < 2:
            raise ValueError(f"corpus {self.name!r} is too short to train on ({len(self.text)} characters)")
        if self.vocab is None:
            self.vocab = sorted(set(self.text))
        self.index = {ch: i for i, ch in enumerate(self.vocab)}
        self.encoded = self.encode(self.text)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters {unknown!r} are not in the vocabulary of corpus {self.name!r}")
        return np.array([self.index[ch] for ch in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def split(self, val_fraction: float) -> tuple[CharCorpus, CharCorpus]:
        """The first (1 - val_fraction) of the text to train on, the rest to validate on (as char-rnn does)."""
        if not 0 < val_fraction < 1:
            raise ValueError(f"the validation fraction must be between 0 and 1, got {val_fraction}")
        cut = round(len(self.text) * (1 - val_fraction))
        return (CharCorpus(self.text[:cut], self.name, self.vocab),
                CharCorpus(self.text[cut:], f"{self.name} (validation)", self.vocab))

    def batch(self, seq_len: int, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(T, B) input ids and (T, B) next-character targets from random places in the text."""
        self._check_length(seq_len)
        starts = rng.integers(0, len(self.encoded) - seq_len, size=batch)
        windows = np.stack([self.encoded[s : s + seq_len + 1] for s in starts], axis=1)
        return windows[:-1], windows[1:]

    def windows(self, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole text as consecutive (T, N) input and target windows: every character predicted once."""
        self._check_length(seq_len)
        count = (len(self.encoded) - 1) // seq_len
        inputs = self.encoded[: count * seq_len].reshape(count, seq_len).T
        targets = self.encoded[1 : count * seq_len + 1].reshape(count, seq_len).T
        return inputs, targets

    def _check_length(self, seq_len: int) -> None:
        if seq_len + 1 > len(self.encoded):
            raise ValueError(f"--seq-len {seq_len} is longer than corpus {self.name!r} ({len(self.encoded)} "
                             "characters): give a shorter --seq-len or a longer text")


def _python_sources() -> str:
    """Readable Python that ships with Python itself: a few small standard-library modules."""
    import string
    import textwrap

    with contextlib.redirect_stdout(io.StringIO()):  # `import this` prints the Zen of Python
        import this
    zen = "".join(this.d.get(ch, ch) for ch in this.s)
    return zen + "\n\n" + "\n\n".join(inspect.getsource(m) for m in (textwrap, string))


def load_corpus(name: str = "article") -> CharCorpus:
    """'article' (the LSTM article this project grew from, shipped with the package), 'python' (sources that ship
    with Python), or a path to a UTF-8 text file."""
    if name == "article":
        text = resources.files("tinygrad_lstm").joinpath("data/lstm-article.txt").read_text(encoding="utf-8")
    elif name == "python":
        text = _python_sources()
    else:
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ValueError(f"corpus {name!r} is neither 'article', 'python' nor a readable file: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"corpus file {name!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                             f"offset {exc.start}); give a text file") from None
    return CharCorpus(text=text, name=name)
