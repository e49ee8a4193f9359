"""``microstream engine``: one engine of a consumer group (distributed mode)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``engine`` sub-command."""
    parser = subparsers.add_parser(
        "engine",
        help="consume market data from Kafka and run the pipeline (distributed mode)",
        description=(
            "Join a Kafka consumer group and run book, features and models for the "
            "symbols of the partitions assigned to this engine; publish the output rows "
            "on Kafka, write them to the lake and serve the engine API. Start several "
            "engines with the same --group to scale out by symbol."
        ),
    )
    parser.add_argument(
        "--group", default=None, help="consumer group (default: MICROSTREAM_KAFKA_GROUP)"
    )
    parser.add_argument("--name", default=None, help="engine name in logs and snapshot requests")
    parser.add_argument(
        "--data-dir", default=None, help="lake directory (default: MICROSTREAM_DATA_DIR)"
    )
    parser.add_argument("--no-lake", action="store_true", help="do not write the lake")
    parser.add_argument(
        "--api-host", default=None, help="engine API host (default: MICROSTREAM_API_HOST)"
    )
    parser.add_argument(
        "--api-port", type=int, default=None, help="engine API port (default: MICROSTREAM_API_PORT)"
    )
    parser.add_argument("--no-api", action="store_true", help="do not serve the engine API")
    parser.add_argument("--grid-ms", type=int, default=None, help="feature grid step (ms)")
    parser.add_argument("--no-features", action="store_true", help="book and trades only")
    parser.add_argument("--no-models", action="store_true", help="skip regime/HMM/forecast")
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="mark outputs simulated (sim source; or MICROSTREAM_SIMULATED=1)",
    )
    parser.add_argument(
        "--direct", action="store_true", help="read every partition without a group (one engine)"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.services.runner import run_engine

    return run_engine(args)
