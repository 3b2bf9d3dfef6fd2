"""Pieces every subcommand shares: the --device option, progress bars and the output folder."""

from __future__ import annotations

import argparse
import importlib.util
import os

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


def progress(total: int, description: str, quiet: bool = False) -> tqdm:
    """A tqdm bar (loss and speed in its postfix); silent with --quiet."""
    return tqdm(total=total, desc=description, unit="step", disable=quiet, dynamic_ncols=True, leave=False)


def output_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
