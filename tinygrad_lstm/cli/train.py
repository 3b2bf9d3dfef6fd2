"""`tinygrad-lstm train`: the main job. A character-level language model trained as char-rnn trains one: a
validation split, train and validation loss in bits per character, the best checkpoint by validation loss kept
beside the last, samples that improve, a loss curve, Ctrl-C that saves, and --resume that continues exactly."""

from __future__ import annotations

import argparse
import math
import os
import signal
import time
from dataclasses import dataclass, field

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn

from ..experiments import CharLM, char_lm_bits, char_lm_loss, generate, train_adding, train_segment_recall
from ..plots import plot_loss_curve
from ..tasks import ADDING_BASELINE_MSE, CharCorpus, load_corpus
from .common import add_device_argument, check_numbers, device_from, output_dir, progress

#: the settings each --task trains with unless an option says otherwise (what works for that task)
PRESETS = {
    "chars": {"model": "lstm", "hidden_size": 128, "batch_size": 32, "lr": 5e-3, "steps": 1000},
    "adding": {"model": "lstm", "hidden_size": 32, "batch_size": 64, "lr": 1e-2, "steps": 1000, "delay": 50},
    "recall": {"model": "lstm", "hidden_size": 16, "batch_size": 32, "lr": 2e-2, "steps": 300, "delay": 60},
}
#: what a checkpoint must match to be resumed: the model's shape and the data it learned
CONFIG_KEYS = ("model", "hidden_size", "layers", "embedding_dim", "corpus", "val_fraction")
CHECKPOINT, BEST = "checkpoint.npz", "best.npz"
LOG2 = math.log(2)


def _preset_help(name: str) -> str:
    return "default " + ", ".join(f"{preset[name]:g} for {task}" for task, preset in PRESETS.items() if name in preset)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a small LSTM (default: a character-level language model)",
                       description="Train a character-level language model as char-rnn does: the last "
                                   "--val-fraction of the corpus validates, losses in bits per character, the best "
                                   "checkpoint by validation loss kept beside the last (sample from it with "
                                   "`tinygrad-lstm sample`). Ctrl-C saves a checkpoint of the last step. "
                                   "--task adding/recall trains a memory task with its own preset.")
    p.add_argument("--task", choices=list(PRESETS), default="chars",
                   help="chars: next-character prediction; adding: the adding problem; recall: segment recall")
    p.add_argument("--model", choices=["lstm", "gru", "rnn"], default=None, help="recurrent layer (default: lstm)")
    p.add_argument("--corpus", default="article",
                   help="'article' (the LSTM article, 6 KB), 'python' (Python's own sources, 32 KB) or a text file")
    p.add_argument("--hidden-size", type=int, default=None, help=_preset_help("hidden_size"))
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding-dim", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64, help="characters per training window (BPTT length)")
    p.add_argument("--batch-size", type=int, default=None, help=_preset_help("batch_size"))
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate ({_preset_help('lr')}); given with --resume it replaces the saved one")
    p.add_argument("--lr-decay", type=float, default=0.5, help="multiply the learning rate by this (default 0.5) ...")
    p.add_argument("--lr-decay-every", type=int, default=500, help="... every N steps (0: constant; default 500)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="chars: dropout on embeddings and layer outputs (default 0)")
    p.add_argument("--grad-clip", type=float, default=1.0,
                   help="chars: clip the gradient norm to this (default 1; 0: no clipping)")
    p.add_argument("--steps", type=int, default=None,
                   help=f"training steps in all; a resumed run continues to it ({_preset_help('steps')})")
    p.add_argument("--delay", type=int, default=None,
                   help=f"sequence length T for --task adding/recall ({_preset_help('delay')})")
    p.add_argument("--val-fraction", type=float, default=0.1, help="the end of the corpus kept for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=25,
                   help="read the training loss back and update the progress bar every N steps")
    p.add_argument("--eval-every", type=int, default=100, help="validation loss every N steps (0: at the end)")
    p.add_argument("--sample-every", type=int, default=250, help="print a generated sample every N steps (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="write a checkpoint every N steps (0: at the end)")
    p.add_argument("--out", default=os.path.join("runs", "train"),
                   help="folder for checkpoint.npz, best.npz, samples.txt and loss.png")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    group.add_argument("--overwrite", action="store_true", help="start afresh even if OUT holds a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    given_lr = args.lr
    for name, value in PRESETS[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    check_numbers(args, positive=("hidden_size", "layers", "embedding_dim", "seq_len", "batch_size", "steps",
                                  "delay", "log_every", "lr"),
                  non_negative=("sample_every", "checkpoint_every", "eval_every", "lr_decay_every", "grad_clip"))
    if not 0 <= args.dropout < 1:
        raise ValueError(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 < args.lr_decay <= 1:
        raise ValueError(f"--lr-decay must be in (0, 1], got {args.lr_decay}")
    if args.task == "chars":
        _check_model_fits(args)
        device = device_from(args)
        return _train_chars(args, device, given_lr)
    if args.delay < 2:
        raise ValueError(f"--delay must be at least 2 for --task {args.task}, got {args.delay}")
    device = device_from(args)
    return _train_memory_task(args, device)


def _check_model_fits(args: argparse.Namespace) -> None:
    """Refuse a model whose weights, gradients and Adam moments (4 float32 copies) exceed this machine's memory."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[args.model]
    h, e = args.hidden_size, args.embedding_dim
    recurrent = gates * h * (e + h + 2) + (args.layers - 1) * gates * h * (2 * h + 2)
    needed = 16 * (256 * e + recurrent + (h + 1) * 256)  # at most 256 distinct characters assumed here
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if needed > available:
        raise ValueError(f"--hidden-size {h} with --layers {args.layers} needs about {needed / 2**30:.0f} GiB for "
                         f"weights, gradients and Adam's moments; this machine has {available / 2**30:.0f} GiB")


def _train_memory_task(args: argparse.Namespace, device: str) -> int:
    start = time.perf_counter()
    with progress(args.steps, f"{args.task} T={args.delay}", args.quiet) as bar:
        def on_step(i: int, loss: float | None) -> None:
            bar.update()
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.4f}")

        if args.task == "adding":
            result = train_adding(args.model, args.delay, args.steps, args.hidden_size, args.batch_size, args.lr,
                                  device, args.seed, on_step)
            ratio = ADDING_BASELINE_MSE / result.mse if result.mse > 0 else math.inf
            summary = (f"test MSE {result.mse:.4f}, {ratio:.0f}x better than guessing the mean "
                       f"({ADDING_BASELINE_MSE:.3f})")
        else:
            if args.model != "lstm":
                raise ValueError("--task recall trains an LSTM (it shows the forget gate); drop --model")
            result = train_segment_recall(args.steps, args.hidden_size, steps=args.delay, batch=args.batch_size,
                                          lr=args.lr, device=device, seed=args.seed, on_step=on_step)
            summary = f"test accuracy {result.accuracy:.1%} (chance: {1 / result.num_symbols:.0%})"
    elapsed = time.perf_counter() - start
    print(f"{args.model} on {args.task}, T={args.delay}: {summary}; {args.steps / elapsed:.1f} steps/s")
    return 0


# ---------------------------------------------------------------- the character model


@dataclass
class _History:
    """Train bits/char every --log-every steps and validation bits/char every --eval-every, for the curve."""

    train_steps: list[int] = field(default_factory=list)
    train_bits: list[float] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val_bits: list[float] = field(default_factory=list)

    def state(self) -> dict:
        return {name: np.array(value, dtype=np.float64) for name, value in vars(self).items()}

    @classmethod
    def from_state(cls, state: dict) -> _History:
        history = cls()
        for name, values in state.items():
            cast = int if name.endswith("steps") else float
            setattr(history, name, [cast(v) for v in values])
        return history

    @property
    def best(self) -> tuple[int, float] | None:
        if not self.val_bits:
            return None
        i = int(np.argmin(self.val_bits))
        return self.val_steps[i], self.val_bits[i]


class _Interrupt:
    """Ctrl-C sets a flag that the loop reads after each completed step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self) -> _Interrupt:
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C keeps its usual meaning
            self.previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _corpus_key(name: str) -> str:
    """The corpus as a checkpoint records it: the same file by relative or absolute path is one corpus."""
    return name if name in ("article", "python") else os.path.realpath(name)


def _learning_rate(args: argparse.Namespace, step: int) -> float:
    """The step schedule: the rate is multiplied by --lr-decay every --lr-decay-every steps (a function of the
    step alone, so a resumed run follows it exactly)."""
    return args.lr * args.lr_decay ** (step // args.lr_decay_every) if args.lr_decay_every else args.lr


def _load_checkpoint(path: str, args: argparse.Namespace, vocab: list[str], given_lr: float | None) -> dict:
    state = tl.load(path)
    missing = [key for key in ("config", "model", "optimizer", "step") if key not in state]
    if missing:
        raise ValueError(f"{path} is not a checkpoint of `tinygrad-lstm train` (no {', '.join(map(repr, missing))} "
                         "in it); give another --out or start afresh with --overwrite")
    saved = state["config"]
    for key in CONFIG_KEYS:
        if key not in saved:
            raise ValueError(f"{path} does not record --{key.replace('_', '-')}; it was written by another version")
        value = saved[key].item()
        wanted = _corpus_key(args.corpus) if key == "corpus" else getattr(args, key)
        if value != wanted:
            raise ValueError(f"{path} was trained with --{key.replace('_', '-')} {value}, "
                             f"not {wanted}; pass the same options to --resume")
    if list(saved["vocab"]) != vocab:
        raise ValueError(f"{path} was trained on a corpus with another vocabulary")
    step = int(state["step"])
    if step >= args.steps:
        raise ValueError(f"{path} already holds step {step}; give --steps above {step} to train further")
    saved_lr = float(saved["lr"])
    if given_lr is None:
        args.lr = saved_lr
    elif given_lr != saved_lr:
        print(f"--lr {given_lr:g} replaces the checkpoint's learning rate {saved_lr:g}")
    return state


def _train_chars(args: argparse.Namespace, device: str, given_lr: float | None) -> int:
    corpus = load_corpus(args.corpus)
    train_text, val_text = corpus.split(args.val_fraction)
    if len(val_text.text) <= args.seq_len:
        raise ValueError(f"the validation part of corpus {corpus.name!r} ({len(val_text.text)} characters) is not "
                         f"longer than --seq-len {args.seq_len}: raise --val-fraction or lower --seq-len")
    val_inputs, val_targets = val_text.windows(args.seq_len)
    out = output_dir(args.out)
    paths = {name: os.path.join(out, name) for name in (CHECKPOINT, BEST, "samples.txt", "loss.png")}
    checkpoint = paths[CHECKPOINT]
    if os.path.exists(checkpoint) and not (args.resume or args.overwrite):
        raise ValueError(f"{out} already holds a checkpoint: continue it with --resume, or start afresh (replacing "
                         "it) with --overwrite, or give another --out")
    if args.resume and not os.path.exists(checkpoint):
        raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}; train without --resume first")

    tl.manual_seed(args.seed)
    model = CharLM(corpus.vocab_size, args.hidden_size, args.layers, args.model, args.embedding_dim, args.dropout,
                   device=device)
    step, history = 0, _History()
    if args.resume:
        state = _load_checkpoint(checkpoint, args, corpus.vocab, given_lr)
        model.load_state_dict(state["model"])
        step, history = int(state["step"]), _History.from_state(state["history"])
    optimizer = nn.optim.Adam(model.parameters(), lr=args.lr)
    if args.resume:
        optimizer.load_state_dict(state["optimizer"])
        print(f"resumed from {checkpoint} at step {step}")
    elif args.overwrite:
        for path in paths.values():
            if os.path.exists(path):
                os.remove(path)
    print(f"corpus {corpus.name!r}: {len(corpus.text)} characters, {corpus.vocab_size} distinct, the last "
          f"{len(val_text.text)} kept for validation; {args.model} with {sum(p.numel() for p in model.parameters())} "
          f"parameters; uniform guess {math.log2(corpus.vocab_size):.2f} bits/char")

    def save(path: str) -> None:
        weights = model.state_dict()
        if not all(np.isfinite(w.numpy()).all() for w in weights.values()):
            raise RuntimeError(f"the weights became NaN or Inf at step {step}: training diverged; nothing was saved "
                               "over the last good checkpoint. Try a lower --lr or --grad-clip")
        config = {key: getattr(args, key) for key in CONFIG_KEYS} | {
            "corpus": _corpus_key(args.corpus), "vocab": np.array(corpus.vocab), "lr": args.lr,
            "dropout": args.dropout, "prime": corpus.text[:1]}
        tl.save({"model": weights, "optimizer": optimizer.state_dict(), "step": step, "config": config,
                 "history": history.state()}, path)

    pending: list[tuple[int, tl.Tensor]] = []  # (step, loss) not yet read back to the host

    def read_losses() -> None:
        """One host sync for the losses since the last: into the history, stopping at the first non-finite."""
        if not pending:
            return
        values = [(s, loss.item()) for s, loss in pending]
        pending.clear()
        for s, value in values:
            if not math.isfinite(value):
                kept = (f"the last good checkpoint, {checkpoint} (step {int(tl.load(checkpoint)['step'])}), is kept"
                        if os.path.exists(checkpoint) else "no checkpoint was written")
                raise RuntimeError(f"the training loss became {value} at step {s} (learning rate "
                                   f"{_learning_rate(args, s - 1):g}): training diverged; {kept}. Try a lower --lr "
                                   "or --grad-clip")
        history.train_steps.append(values[-1][0])
        history.train_bits.append(float(np.mean([v for _, v in values])) / LOG2)

    def sample(length: int, final: bool = False) -> str:
        rng = np.random.default_rng([args.seed, step, int(final)])
        return generate(model, corpus, corpus.text[:1], length, rng)

    def postfix() -> dict:
        shown = {"train": f"{history.train_bits[-1]:.3f}"} if history.train_bits else {}
        if history.val_bits:
            shown["val"] = f"{history.val_bits[-1]:.3f}"
        return shown | {"unit": "bits/char"}

    samples = open(paths["samples.txt"], "a" if args.resume else "w", encoding="utf-8")  # closed below
    first_step, start = step, time.perf_counter()
    try:
        with progress(args.steps - step, f"train {args.model}", args.quiet) as bar, _Interrupt() as interrupt:
            if not args.quiet:
                bar.write("training: Ctrl-C stops after the current step and saves a checkpoint")
            while step < args.steps and not interrupt.requested:
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(args, step)
                if args.dropout:
                    tl.manual_seed(args.seed * 1_000_003 + step)  # per-step masks: a resumed run draws the same
                rng = np.random.default_rng([args.seed, step])  # per-step data: a resumed run sees the same batches
                inputs, targets = train_text.batch(args.seq_len, args.batch_size, rng)
                loss = char_lm_loss(model, inputs, targets)
                optimizer.zero_grad()
                loss.backward()
                if args.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
                optimizer.step()
                step += 1
                pending.append((step, loss.detach()))
                bar.update()
                if step % args.log_every == 0 or step == args.steps:
                    read_losses()
                    bar.set_postfix(postfix())
                if (args.eval_every and step % args.eval_every == 0) or step == args.steps:
                    read_losses()
                    history.val_steps.append(step)
                    history.val_bits.append(char_lm_bits(model, val_inputs, val_targets))
                    bar.set_postfix(postfix())
                    if history.best == (step, history.val_bits[-1]):
                        save(paths[BEST])
                if args.sample_every and step % args.sample_every == 0:
                    text = sample(200)
                    val = f", validation {history.val_bits[-1]:.3f} bits/char" if history.val_bits else ""
                    bar.write(f"--- step {step}{val}:\n{text}\n")
                    samples.write(f"--- step {step}{val}\n{text}\n\n")
                    samples.flush()
                if args.checkpoint_every and step % args.checkpoint_every == 0:
                    read_losses()
                    save(checkpoint)
            read_losses()
            save(checkpoint)
    finally:
        samples.close()
    elapsed = time.perf_counter() - start
    plot = _plot(history, paths["loss.png"])
    if interrupt.requested:
        print(f"\ninterrupted: {checkpoint} holds step {step} of {args.steps}; continue with the same options "
              f"and --resume, e.g. tinygrad-lstm train --resume --out {out}")
        return 130
    _summary(args, history, step - first_step, elapsed, device, corpus, paths, plot)
    print(f"sample (temperature 0.8; more with `tinygrad-lstm sample {paths[BEST]}`):\n{sample(300, final=True)}")
    return 0


def _plot(history: _History, path: str) -> str | None:
    try:
        return plot_loss_curve(history.train_steps, history.train_bits, history.val_steps, history.val_bits, path)
    except ImportError as exc:
        print(exc)
        return None


def _summary(args: argparse.Namespace, history: _History, done: int, elapsed: float, device: str,
             corpus: CharCorpus, paths: dict[str, str], plot: str | None) -> None:
    best_step, best_bits = history.best
    print(f"done: {args.steps} steps ({done} in this run, {done / elapsed if elapsed else 0:.1f} steps/s on {device}); "
          f"bits per character: train {history.train_bits[-1]:.3f}, validation {history.val_bits[-1]:.3f}, best "
          f"validation {best_bits:.3f} at step {best_step} (uniform guess {math.log2(corpus.vocab_size):.2f})")
    print(f"checkpoints: {paths[CHECKPOINT]} (last), {paths[BEST]} (best validation)")
    print(f"samples: {paths['samples.txt']}" + (f"\nloss curve: {plot}" if plot else ""))
