"""Pictures of the experiments, with matplotlib (a dependency of the package; the engine never imports it)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np

from .tensor import write_atomically

MATPLOTLIB_HINT = ("plots need matplotlib, which installs with the package; reinstall it (`pip install .` in a clone, "
                   "`pip install tinygrad-lstm` from an index) or `pip install matplotlib`; the numbers are printed")


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError(MATPLOTLIB_HINT) from None
    matplotlib.use("Agg")  # files only: works without a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str) -> str:
    """Write the figure to `path` atomically (an older picture stays until the new one is complete), then close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=120, format=os.path.splitext(path)[1][1:] or "png")
    _pyplot().close(fig)
    write_atomically(path, buffer.getvalue())
    return path


def _save(fig, ax, path: str) -> str:
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


COLOURS = {"rnn": "#d62728", "gru": "#2ca02c", "lstm": "#1f77b4"}


def plot_memory(errors: Mapping[str, Sequence[float]], delays: Sequence[int], baseline: float, path: str) -> str:
    """Test error of each model against the delay T, beside the guess-the-mean baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, values in errors.items():
        ax.plot(delays, values, "o-", label=kind.upper(), color=COLOURS.get(kind))
    ax.axhline(baseline, ls="--", color="grey", label=f"guess the mean ({baseline:.3f})")
    ax.set(xlabel="delay T (steps the first number must be remembered)", ylabel="test MSE", yscale="log",
           title="The adding problem: who remembers?")
    return _save(fig, ax, path)


def plot_gradient_flow(norms: Mapping[str, np.ndarray], path: str) -> str:
    """||d loss / d x_t|| against t: how strongly each input still reaches the answer at the last step."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, values in norms.items():
        ax.plot(np.arange(len(values)), values, label=kind.upper(), color=COLOURS.get(kind))
    ax.set(xlabel="input step t", ylabel="||d loss / d x_t||", yscale="log",
           title="Gradient reaching each input from the last step")
    return _save(fig, ax, path)


def plot_forget_gate(trace: np.ndarray, resets: np.ndarray, path: str) -> str:
    """Heatmap of forget-gate activations (units x time) with the reset symbols marked."""
    plt = _pyplot()
    steps, units = trace.shape
    fig, ax = plt.subplots(figsize=(min(14, 3 + steps / 8), 1.5 + units / 5))
    image = ax.imshow(trace.T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    for t in np.flatnonzero(resets):
        ax.axvline(t, color="white", lw=1.2, ls="--")
    ax.set(xlabel="time step (dashed: reset symbol)", ylabel="LSTM unit",
           title="Forget gate f_t: 1 keeps the cell state, 0 erases it")
    fig.colorbar(image, ax=ax, label="f_t")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_loss_curve(train_steps: Sequence[int], train_bits: Sequence[float], val_steps: Sequence[int],
                    val_bits: Sequence[float], path: str) -> str:
    """Training and validation loss in bits per character against the step, the best validation marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(train_steps, train_bits, label="train", color="#1f77b4")
    ax.plot(val_steps, val_bits, "o-", ms=3, label="validation", color="#d62728")
    if len(val_bits):
        best = int(np.argmin(val_bits))
        ax.plot([val_steps[best]], [val_bits[best]], "*", ms=12, color="#d62728",
                label=f"best validation {val_bits[best]:.3f} (step {val_steps[best]})")
    ax.set(xlabel="training step", ylabel="bits per character", title="Character model: loss")
    return _save(fig, ax, path)
