"""``microstream features``: recompute a lake's features and 1-minute bars in batch."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``features`` sub-command."""
    parser = subparsers.add_parser(
        "features",
        help="compute the features and bars_1m tables from a lake's trades and book_top (batch)",
    )
    parser.add_argument("--lake", required=True, help="lake directory to read")
    parser.add_argument("--out", default=None, help="lake directory to write (default: --lake)")
    parser.add_argument(
        "--grid-ms", type=int, default=1000, help="feature grid step in milliseconds (default 1000)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing features/bars_1m partitions of the symbols computed",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from microstream.features.offline import recompute_lake

    if args.grid_ms < 10:
        raise SystemExit("microstream features: --grid-ms must be at least 10")
    results = recompute_lake(args.lake, args.out, args.grid_ms, args.overwrite)
    for r in results:
        print(f"{r.exchange} {r.symbol}: {r.features} feature rows, {r.bars} bars")
    summary = {
        "symbols": len(results),
        "features": sum(r.features for r in results),
        "bars": sum(r.bars for r in results),
    }
    print(json.dumps(summary))
    return 0
