"""``microstream bench``: pipeline throughput, time by stage and memory."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="replay captures through the whole pipeline at full speed and report rates",
        description=(
            "Replay capture files through parse, book, features, models and the lake at full "
            "speed. Sessions (same market and symbol, consecutive days) run back to back. "
            "The last line printed is one JSON object with events, seconds, events_per_s, "
            "counts by event type, time by stage and peak RSS."
        ),
    )
    parser.add_argument("captures", nargs="+", help="capture files (.gz)")
    parser.add_argument("--no-features", action="store_true", help="parse + book + lake only")
    parser.add_argument("--no-models", action="store_true", help="skip the model stage")
    parser.add_argument("--no-stages", action="store_true", help="skip the instrumented run")
    parser.add_argument(
        "--reference-parser",
        action="store_true",
        help="read every frame with the reference parser, not the compiled fast lane",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.bench import bench
    from microstream.config import Settings
    from microstream.engine import PipelineOptions

    settings = Settings.from_env()
    options = PipelineOptions(
        features=not args.no_features,
        models=not (args.no_models or args.no_features),
        grid_ms=settings.grid_ms,
        settings=settings,
    )
    summary = bench(
        args.captures, options, stages=not args.no_stages, fast_lane=not args.reference_parser
    )
    print(json.dumps(summary))
    return 0
