"""`tinygrad-lstm train`: the main job. A character-level LSTM language model on a corpus that ships with the
package, with a progress bar, samples that improve, atomic checkpoints, --resume and a summary."""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn

from ..experiments import CharLM, char_lm_loss, generate, train_adding, train_segment_recall
from ..tasks import ADDING_BASELINE_MSE, load_corpus
from .common import add_device_argument, device_from, output_dir, progress

CONFIG_KEYS = ("model", "hidden_size", "layers", "embedding_dim", "corpus")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a small LSTM (default: a character-level language model)",
                       description="Train a character-level language model on a corpus that ships with the package "
                                   "(or a memory task), with samples, checkpoints and --resume.")
    p.add_argument("--task", choices=["chars", "adding", "recall"], default="chars",
                   help="chars: next-character prediction; adding: the adding problem; recall: segment recall")
    p.add_argument("--model", choices=["lstm", "gru", "rnn"], default="lstm", help="recurrent layer (default: lstm)")
    p.add_argument("--corpus", default="article",
                   help="'article' (the LSTM article), 'python' (sources shipped with Python) or a text file path")
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding-dim", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64, help="characters per training window (BPTT length)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate")
    p.add_argument("--steps", type=int, default=1000, help="training steps in all (a resumed run continues to it)")
    p.add_argument("--delay", type=int, default=50, help="sequence length T for --task adding/recall")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-every", type=int, default=250, help="print a generated sample every N steps (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=250, help="write a checkpoint every N steps (0: at the end)")
    p.add_argument("--out", default=os.path.join("runs", "train"), help="folder for checkpoint and samples")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    for name in ("hidden_size", "layers", "embedding_dim", "seq_len", "batch_size", "steps", "delay"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    device = device_from(args)
    if args.task == "chars":
        return _train_chars(args, device)
    return _train_memory_task(args, device)


def _train_memory_task(args: argparse.Namespace, device: str) -> int:
    start = time.perf_counter()
    with progress(args.steps, f"{args.task} T={args.delay}", args.quiet) as bar:
        def on_step(i: int, loss: float) -> None:
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}")

        if args.task == "adding":
            result = train_adding(args.model, args.delay, args.steps, args.hidden_size, args.batch_size, args.lr,
                                  device, args.seed, on_step)
            summary = f"test MSE {result.mse:.4f} (guessing the mean: {ADDING_BASELINE_MSE:.3f})"
        else:
            if args.model != "lstm":
                raise ValueError("--task recall trains an LSTM (it shows the forget gate); drop --model")
            result = train_segment_recall(args.steps, args.hidden_size, steps=args.delay, batch=args.batch_size,
                                          lr=args.lr, device=device, seed=args.seed, on_step=on_step)
            summary = f"test accuracy {result.accuracy:.1%} (chance: {1 / result.num_symbols:.0%})"
    elapsed = time.perf_counter() - start
    print(f"{args.model} on {args.task}, T={args.delay}: {summary}; {args.steps / elapsed:.1f} steps/s")
    return 0


def _checkpoint_config(args: argparse.Namespace, vocab: list[str]) -> dict:
    config = {key: getattr(args, key) for key in CONFIG_KEYS}
    config["vocab"] = np.array(vocab)
    return config


def _check_resumable(saved: dict, args: argparse.Namespace, vocab: list[str], path: str) -> None:
    for key in CONFIG_KEYS:
        value = saved[key].item()
        if value != getattr(args, key):
            raise ValueError(f"{path} was trained with --{key.replace('_', '-')} {value}, "
                             f"not {getattr(args, key)}; pass the same options to --resume")
    if list(saved["vocab"]) != vocab:
        raise ValueError(f"{path} was trained on a corpus with another vocabulary")


def _train_chars(args: argparse.Namespace, device: str) -> int:
    corpus = load_corpus(args.corpus)
    out = output_dir(args.out)
    checkpoint = os.path.join(out, "checkpoint.npz")
    tl.manual_seed(args.seed)
    model = CharLM(corpus.vocab_size, args.hidden_size, args.layers, args.model, args.embedding_dim, device=device)
    optimizer = nn.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if args.resume:
        if not os.path.exists(checkpoint):
            raise FileNotFoundError(f"--resume: no checkpoint at {checkpoint}; train without --resume first")
        state = tl.load(checkpoint)
        _check_resumable(state["config"], args, corpus.vocab, checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resumed from {checkpoint} at step {step}")
    print(f"corpus {corpus.name!r}: {len(corpus.text)} characters, {corpus.vocab_size} distinct; "
          f"{args.model} with {sum(p.numel() for p in model.parameters())} parameters")

    def save() -> None:
        tl.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "config": _checkpoint_config(args, corpus.vocab)}, checkpoint)

    samples_path = os.path.join(out, "samples.txt")
    losses: list[float] = []
    first_step, start = step, time.perf_counter()
    with progress(args.steps - step, f"train {args.model}", args.quiet) as bar:
        while step < args.steps:
            rng = np.random.default_rng([args.seed, step])  # per-step data: a resumed run sees the same batches
            inputs, targets = corpus.batch(args.seq_len, args.batch_size, rng)
            loss = char_lm_loss(model, inputs, targets)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            losses.append(loss.item())
            bar.update()
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if args.sample_every and step % args.sample_every == 0:
                text = generate(model, corpus, corpus.text[:1], 160, np.random.default_rng(step))
                bar.write(f"--- step {step}, loss {np.mean(losses[-20:]):.3f}:\n{text}\n")
                with open(samples_path, "a", encoding="utf-8") as f:
                    f.write(f"--- step {step}\n{text}\n")
            if args.checkpoint_every and step % args.checkpoint_every == 0:
                save()
    save()
    elapsed = time.perf_counter() - start
    done = step - first_step
    final = float(np.mean(losses[-20:])) if losses else float("nan")
    print(f"done: {step} steps, final loss {final:.3f} (uniform guess: {np.log(corpus.vocab_size):.3f}), "
          f"{done / elapsed if elapsed else 0:.1f} steps/s on {device}")
    print(f"checkpoint: {checkpoint}" + (f"\nsamples: {samples_path}" if os.path.exists(samples_path) else ""))
    print("sample:\n" + generate(model, corpus, corpus.text[:1], 240, np.random.default_rng(args.seed)))
    return 0
