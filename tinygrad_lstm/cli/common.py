"""Pieces every subcommand shares: the --device option, progress bars and the output folder."""

from __future__ import annotations

import argparse
import os

from tqdm.auto import tqdm

from ..experiments import resolve_device


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="where to compute: the GPU through CuPy when one is usable (auto), or force one")


def device_from(args: argparse.Namespace) -> str:
    device = resolve_device(args.device)
    print(f"device: {device}")
    return device


def progress(total: int, description: str, quiet: bool = False) -> tqdm:
    """A tqdm bar (loss and speed in its postfix); silent with --quiet."""
    return tqdm(total=total, desc=description, unit="step", disable=quiet, dynamic_ncols=True, leave=False)


def output_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
