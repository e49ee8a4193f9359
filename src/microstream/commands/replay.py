"""``microstream replay``: the live pipeline, fed from capture files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("replay", help="replay capture files through the pipeline")
    parser.add_argument("captures", nargs="+", help="capture files")
    parser.add_argument("--out", required=True, help="lake directory")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    raise NotImplementedError
