"""``microstream import-archive``: Binance (data.binance.vision) or Tardis files → the lake."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``import-archive`` sub-command."""
    parser = subparsers.add_parser(
        "import-archive",
        help="import Binance historical archives (aggTrades, trades, 1m klines) into the lake",
        description=(
            "Import files downloaded from https://data.binance.vision (aggTrades, trades, "
            "1m klines; .zip or .csv, with or without header, ms or µs times) or Tardis "
            "trade CSVs. Trades go to the trades table and to computed bars_1m; klines "
            "to bars_1m. Prints a JSON summary on its last line."
        ),
    )
    parser.add_argument("files", nargs="+", help="archive files (.zip or .csv)")
    parser.add_argument("--lake", required=True, help="lake directory")
    parser.add_argument("--symbol", required=True, help="symbol of the data, e.g. BTCUSDT")
    parser.add_argument(
        "--market",
        choices=("spot", "usdm", "coinm"),
        default="spot",
        help="market of the data: spot (exchange=binance), usdm (binance-futures), "
        "coinm (binance-coinm); default spot",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.archive import import_archives

    result = import_archives(
        args.files, args.lake, args.symbol, args.market, progress=not args.no_progress
    )
    for report in result.files:
        print(
            f"{report.path}: {report.kind}, {report.trades} trades, {report.bars} bars, "
            f"{report.rejected} malformed rows skipped"
        )
    summary = {
        "files": len(result.files),
        "trades": result.trades,
        "bars": result.bars,
        "rejected": sum(f.rejected for f in result.files),
        "rows_written": result.rows_written,
    }
    print(json.dumps(summary))
    return 0
