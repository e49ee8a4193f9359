"""``microstream record``: write the live Binance feed to gzip capture files."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``record`` sub-command."""
    parser = subparsers.add_parser(
        "record",
        help="record the live Binance feed to capture files",
        description=(
            "Record every websocket frame (and the REST depth snapshots) as "
            "'<ts_recv_ns> <json>' lines in rotating gzip files, one file set per market. "
            "BINANCE_WS_URL / BINANCE_REST_URL point it at another server (e.g. the loopback exchange)."
        ),
    )
    parser.add_argument("--symbols", default=None, help="comma-separated symbols (default: SYMBOL)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.add_argument("--market", choices=("spot", "usdm", "coinm"), default="spot")
    parser.add_argument("--rotate-mb", type=float, default=None, help="rotate at N MB (compressed)")
    parser.add_argument("--rotate-minutes", type=float, default=60.0, help="rotate every M minutes")
    parser.add_argument(
        "--ws-url", default=None, help="websocket base URL (overrides BINANCE_WS_URL)"
    )
    parser.add_argument(
        "--rest-url", default=None, help="REST base URL (overrides BINANCE_REST_URL)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_record(args))


async def _record(args: argparse.Namespace) -> int:
    from microstream.config import Settings
    from microstream.errors import ConfigError
    from microstream.venues.binance.recorder import Recorder, install_signal_handlers, status_stream

    settings = Settings.from_env()
    raw_symbols = args.symbols or settings.symbol
    symbols = [s.strip().upper() for s in raw_symbols.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("no symbols to record")
    recorder = Recorder(
        args.out,
        args.market,
        symbols,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        settings=settings,
        rotate_bytes=None if args.rotate_mb is None else int(args.rotate_mb * 1_000_000),
        rotate_seconds=None if args.rotate_minutes is None else args.rotate_minutes * 60.0,
        status=status_stream(),
    )
    install_signal_handlers(recorder)
    result = await recorder.run(args.duration)
    for path in result.files:
        print(path)
    return 0
