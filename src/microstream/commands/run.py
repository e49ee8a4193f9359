"""``microstream run``: the pipeline, the engine API and the dashboard."""

from __future__ import annotations

import argparse
from pathlib import Path

from microstream.commands.replay import parse_speed


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the live pipeline, the engine API and the dashboard",
        description=(
            "Run MicroStream: connect to the source, keep the order books, compute "
            "features, regimes and forecasts, write the Parquet lake under --data-dir, "
            "serve the engine API and the dashboard (http://localhost:8501). "
            "--source auto tries Binance and falls back to the simulator, loudly."
        ),
    )
    parser.add_argument(
        "--source",
        choices=("auto", "binance", "binance-futures", "sim", "replay"),
        default="auto",
        help="data source (default: auto = Binance, else the simulator)",
    )
    parser.add_argument("--symbols", default=None, help="comma-separated symbols (default: SYMBOL)")
    parser.add_argument(
        "--bus",
        choices=("memory", "kafka"),
        default="memory",
        help="memory: one process (default); kafka: start the ingest and engine services "
        "over KAFKA_BOOTSTRAP_SERVERS",
    )
    parser.add_argument("--data-dir", default=None, help="lake directory (default: ./data)")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.add_argument(
        "--captures", nargs="*", default=[], help="capture files for --source replay"
    )
    parser.add_argument(
        "--speed", type=parse_speed, default=1.0, help="replay pace: factor or 'max' (default 1)"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    parser.add_argument("--api-port", type=int, default=None, help="engine API port (8765)")
    parser.add_argument("--dashboard-port", type=int, default=None, help="dashboard port (8501)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.config import Settings
    from microstream.run import LiveRun, RunOptions

    settings = Settings.from_env()
    symbols = (
        [s.strip().upper() for s in args.symbols.split(",")] if args.symbols else settings.symbols
    )
    options = RunOptions(
        source=args.source,
        symbols=symbols,
        bus=args.bus,
        data_dir=Path(args.data_dir) if args.data_dir else settings.data_dir,
        dashboard=not args.no_dashboard,
        duration=args.duration,
        captures=list(args.captures),
        speed=args.speed,
        seed=args.seed,
        api_port=args.api_port,
        dashboard_port=args.dashboard_port,
    )
    return LiveRun(options, settings).run()
