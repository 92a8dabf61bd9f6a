"""Command line: ``python -m nadlib <command> ...`` for long, resumable runs that write ``results/``.

Each experiment module contributes one sub-command through a ``register_cli(subparsers)`` function
that adds its parser and sets ``func`` (called with the parsed arguments).
"""

from __future__ import annotations

import argparse
import sys

# Modules that contribute sub-commands, in the order of ``--help``.
_COMMAND_MODULES = ("nadlib.training", "nadlib.cifar", "nadlib.nads")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="python -m nadlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted: progress so far is saved; run the same command again to resume", file=sys.stderr)
        return 130
    return 0
