"""The `tinygrad-lstm` command line: train (the main job), sample, memory, gates, graph, explore, bench, info."""

from __future__ import annotations

import argparse
import sys

from . import bench, explore, gates, graph, info, memory, sample, train, variants

SUBCOMMANDS = (train, sample, memory, gates, graph, explore, bench, info, variants)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygrad-lstm",
        description="Learn, see and train LSTMs with a from-scratch autograd engine (NumPy on CPU, CuPy on GPU).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        command = module.add_parser(sub)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args) or 0
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"tinygrad-lstm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
