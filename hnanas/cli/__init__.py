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
from hnanas.errors import HnanasError, environment_error

# Subcommand modules, in the order `hnanas --help` lists them. Only commands that work are listed.
COMMANDS: list[str] = [
    "hnanas.cli.data",
    "hnanas.cli.ops",
    "hnanas.cli.profile",
    "hnanas.cli.search",
    "hnanas.cli.retrain",
    "hnanas.cli.evaluate",
    "hnanas.cli.predict",
    "hnanas.cli.export",
    "hnanas.cli.report",
    "hnanas.cli.sweep",
]


TCMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib64/libtcmalloc_minimal.so.4",
                  "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/libtcmalloc_minimal.so.4")


def _reexec_with_tcmalloc() -> None:
    """Restart this command with tcmalloc preloaded when it is installed and not loaded yet.

    With glibc's allocator, ONNX Runtime latencies of one model varied 15-30 % between sessions on the 2-core
    machine hnanas is developed on (2-6 % with tcmalloc), and CPU training ran ~1.6x slower. Set
    ``HNANAS_NO_TCMALLOC=1`` to keep the process as it is."""
    import os

    if os.environ.get("HNANAS_NO_TCMALLOC") or "tcmalloc" in os.environ.get("LD_PRELOAD", ""):
        return
    lib = next((p for p in TCMALLOC_PATHS if os.path.exists(p)), None)
    if lib is None:
        return
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(x for x in (lib, env.get("LD_PRELOAD", "")) if x)
    env["HNANAS_NO_TCMALLOC"] = "1"  # never loop
    os.execve(sys.executable, [sys.executable, "-m", "hnanas", *sys.argv[1:]], env)


def console_main() -> None:
    """The ``hnanas`` console script and ``python -m hnanas``."""
    _reexec_with_tcmalloc()
    sys.exit(main())


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
    except OSError as exc:  # a full disk or a read-only folder is the machine's state, not a bug
        user_error = environment_error(exc)
        if user_error is None:
            raise
        print(f"hnanas: error: {user_error}", file=sys.stderr)
        return user_error.exit_code
