"""``microstream compact``: merge the lake's small files, one file per partition."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``compact`` sub-command."""
    parser = subparsers.add_parser(
        "compact", help="merge each lake partition's small Parquet files into one (crash-safe)"
    )
    parser.add_argument("--lake", required=True, help="lake directory")
    parser.add_argument("--table", default=None, help="only this table (default: all)")
    parser.add_argument(
        "--min-files",
        type=int,
        default=2,
        help="compact a partition only when it has at least this many files (default 2)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from microstream.store.compact import compact_lake

    results = compact_lake(args.lake, args.table, args.min_files)
    merged = [r for r in results if r.output is not None]
    summary = {
        "partitions": len(results),
        "compacted": len(merged),
        "files_in": sum(r.files_in for r in merged),
        "rows": sum(r.rows for r in merged),
        "cleaned": sum(r.cleaned for r in results),
    }
    for result in merged:
        print(
            f"{result.partition}: {result.files_in} files -> {result.output} ({result.rows} rows)"
        )
    print(json.dumps(summary))
    return 0
