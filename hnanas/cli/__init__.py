"""The ``hnanas`` command line: a thin layer that parses arguments and calls library functions.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed namespace, returning an exit code). Library modules never parse arguments.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import hnanas
from hnanas.errors import HnanasError

# Subcommand modules, in the order `hnanas --help` lists them. Only commands that work are listed.
COMMANDS: list[str] = [
    "hnanas.cli.data",
    "hnanas.cli.ops",
    "hnanas.cli.retrain",
    "hnanas.cli.evaluate",
    "hnanas.cli.export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hnanas",
        description="Hardware-aware neural architecture search for infrared small-target segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"hnanas {hnanas.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HnanasError as exc:
        print(f"hnanas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hnanas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hnanas ops list | head`: the reader left, which is not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
