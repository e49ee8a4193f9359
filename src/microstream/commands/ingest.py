"""``microstream ingest``: exchange feeds -> normalized events -> Kafka."""

from __future__ import annotations

import argparse

SOURCES = ("auto", "binance", "binance-futures", "sim", "replay")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ingest`` sub-command."""
    parser = subparsers.add_parser(
        "ingest",
        help="publish a market-data feed on Kafka (distributed mode)",
        description=(
            "Read a feed (live Binance spot or USD-M futures, the simulator, or capture "
            "files), normalize it and publish the events on Kafka, keyed by symbol. "
            "Answers the engines' snapshot requests (CONTROL topic) and republishes "
            "every symbol's snapshot periodically. KAFKA_BOOTSTRAP_SERVERS names the brokers."
        ),
    )
    parser.add_argument("--symbols", default=None, help="comma-separated symbols (default: SYMBOL)")
    parser.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help=(
            "default: replay if --captures, else auto (Binance spot if it answers within a "
            "few seconds, else the simulator, said loudly and marked simulated)"
        ),
    )
    parser.add_argument(
        "--captures", nargs="+", default=None, help="capture files for --source replay"
    )
    parser.add_argument(
        "--market",
        choices=("spot", "usdm", "coinm"),
        default=None,
        help="market of the capture files",
    )
    parser.add_argument(
        "--speed", default="max", help="replay pace: 'max' or a factor (1 = recorded pace)"
    )
    parser.add_argument(
        "--record", default=None, metavar="DIR", help="also record raw frames to DIR"
    )
    parser.add_argument(
        "--snapshot-every",
        type=float,
        default=60.0,
        help="republish snapshots every SECONDS (0: never)",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.add_argument(
        "--exit-at-end", action="store_true", help="replay: exit after the last frame"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve GET /health (503 when down) and /metrics on this port (default: none)",
    )
    parser.add_argument("--health-host", default="127.0.0.1", help="address of the health endpoint")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.services.runner import run_ingest

    return run_ingest(args)
