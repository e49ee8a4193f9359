"""The ``microstream`` command: a thin router over :mod:`microstream.commands`.

Each sub-command lives in its own module exposing ``register(subparsers)``;
heavy imports happen inside the command, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from microstream import __version__
from microstream.errors import MicroStreamError

COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "replay",
    "bench",
    "compact",
    "record",
    "sim_exchange",
    "dashboard",
    "ingest",
    "engine",
    "import_archive",
    "features",
    "train",
    "evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="microstream",
        description="Real-time market-microstructure analytics for crypto markets.",
    )
    parser.add_argument("--version", action="version", version=f"microstream {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING, ERROR)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"microstream.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.handler(args)
    except MicroStreamError as exc:
        print(f"microstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
