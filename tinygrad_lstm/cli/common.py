"""Pieces every subcommand shares: the --device option, progress bars, checked numbers and the output folder."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import tempfile

from tqdm.auto import tqdm

import tinygrad_lstm as tl

from ..experiments import resolve_device


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where to compute: the GPU through CuPy when one is usable (auto), or force one")


def device_from(args: argparse.Namespace) -> str:
    """The device --device names; "auto" takes the GPU only when an op of each kind ran on it, and says
    why not when CuPy is installed but the GPU is unusable."""
    device = resolve_device(args.device)
    unusable = args.device == "auto" and device == "cpu" and importlib.util.find_spec("cupy") is not None
    print(f"device: {device}" + (f" (the GPU is not usable: {tl.cuda.problem()})" if unusable else ""))
    return device


def progress(total: int, description: str, quiet: bool = False, position: int | None = None) -> tqdm:
    """A tqdm bar (loss and speed in its postfix); silent with --quiet."""
    return tqdm(total=total, desc=description, unit="step", disable=quiet, dynamic_ncols=True, leave=False,
                position=position)


def check_numbers(args: argparse.Namespace, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()) -> None:
    """A clear error naming the option when a count that must be positive (or >= 0) is not, or is not finite."""
    for names, low, word in ((positive, 0, "positive"), (non_negative, -1, ">= 0")):
        for name in names:
            value = getattr(args, name)
            if value is not None and (not math.isfinite(value) or value <= low):
                raise ValueError(f"--{name.replace('_', '-')} must be {word}, got {value}")


def output_dir(path: str) -> str:
    """Create the folder `path` (and its parents) and check that files can be written there: a one-line error
    naming the folder otherwise (a file in the way, no permission, a read-only file system)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"output folder {path!r} is a file; give a folder with --out")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write to the output folder {path!r}: {exc.strerror or exc}") from None
    return path
