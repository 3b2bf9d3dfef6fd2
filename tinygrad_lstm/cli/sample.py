"""`tinygrad-lstm sample`: text from a checkpoint of `tinygrad-lstm train`, as char-rnn's sample script writes it:
the prime, then the characters the model draws one at a time."""

from __future__ import annotations

import argparse
import os

import numpy as np

import tinygrad_lstm as tl

from ..experiments import CharLM, generate
from ..tasks import CharCorpus
from .common import add_device_argument, device_from


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("sample", help="generate text from a trained character model's checkpoint",
                       description="Print --prime followed by --length characters drawn from a checkpoint written "
                                   "by `tinygrad-lstm train` (its best.npz or checkpoint.npz).")
    p.add_argument("checkpoint", nargs="?", default=os.path.join("runs", "train", "best.npz"),
                   help="checkpoint file (default: runs/train/best.npz, the best by validation loss)")
    p.add_argument("--prime", default=None,
                   help="text to start from, printed first (default: the first character of the corpus)")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1: safer, above 1: more surprising; 0: always the most likely character (greedy)")
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)
    return p


def load_char_model(path: str, device: str) -> tuple[CharLM, CharCorpus, dict]:
    """The model of a `train` checkpoint in eval mode, its vocabulary (as a corpus of its characters) and config."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `tinygrad-lstm train` first")
    state = tl.load(path)
    if "config" not in state or "model" not in state or "vocab" not in state["config"]:
        raise ValueError(f"{path} is not a checkpoint of `tinygrad-lstm train` (no 'config' with a vocabulary)")
    config = state["config"]
    vocab = [str(ch) for ch in config["vocab"]]
    model = CharLM(len(vocab), int(config["hidden_size"]), int(config["layers"]), str(config["model"]),
                   int(config["embedding_dim"]), device=device)
    model.load_state_dict(state["model"])
    return model.eval(), CharCorpus("".join(vocab) * 2, path, vocab), config


def run(args: argparse.Namespace) -> int:
    if args.length < 0:
        raise ValueError(f"--length must be >= 0, got {args.length}")
    if not args.temperature >= 0:
        raise ValueError(f"--temperature must be >= 0 (0: greedy), got {args.temperature}")
    device = device_from(args)
    model, vocab, config = load_char_model(args.checkpoint, device)
    prime = args.prime if args.prime is not None else str(config["prime"]) if "prime" in config else vocab.vocab[0]
    if not prime:
        raise ValueError("--prime must not be empty")
    tl.manual_seed(args.seed)
    print(generate(model, vocab, prime, args.length, np.random.default_rng(args.seed), args.temperature))
    return 0
