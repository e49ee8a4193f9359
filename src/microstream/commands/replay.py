"""``microstream replay``: the live pipeline, fed from capture files."""

from __future__ import annotations

import argparse
import json
import sys

from microstream.errors import ConfigError


def parse_speed(text: str) -> float | None:
    """argparse type of ``--speed`` (see :func:`microstream.replay.parse_speed`)."""
    from microstream.replay import parse_speed as parse

    try:
        return parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay capture files through the pipeline into a lake",
        description=(
            "Replay Binance capture files (../shared/data/binance layout, or files written "
            "by `microstream record`) through the same pipeline as a live run, writing the "
            "Parquet lake under --out. Files of one session are read in order as one stream; "
            "several symbols are merged by receive time."
        ),
    )
    parser.add_argument("captures", nargs="+", help="capture files (.gz)")
    parser.add_argument("--out", required=True, help="lake directory to write")
    parser.add_argument(
        "--speed",
        type=parse_speed,
        default=None,
        help="'max' (default) or a factor of the recorded pace, e.g. 1 or 10",
    )
    parser.add_argument(
        "--market",
        choices=("spot", "usdm", "coinm"),
        default=None,
        help="market of the files when their folder does not tell (spot/, usdm/, cm/)",
    )
    parser.add_argument("--grid-ms", type=int, default=None, help="feature grid step (ms)")
    parser.add_argument("--no-features", action="store_true", help="book and trades only")
    parser.add_argument("--no-models", action="store_true", help="skip regime/HMM/forecast")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--reference-parser",
        action="store_true",
        help="read every frame with the reference parser, not the compiled fast lane "
        "(the same output, slower; for checking)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from microstream.config import Settings
    from microstream.engine import PipelineOptions
    from microstream.replay import replay

    settings = Settings.from_env()
    grid_ms = args.grid_ms or settings.grid_ms
    if not 100 <= grid_ms <= 60_000:
        raise ConfigError("--grid-ms must be between 100 and 60000")
    options = PipelineOptions(
        features=not args.no_features,
        models=not (args.no_models or args.no_features),
        grid_ms=grid_ms,
        settings=settings,
    )
    result = replay(
        args.captures,
        args.out,
        speed=args.speed,
        options=options,
        market=args.market,
        flush_rows=settings.flush_rows,
        flush_seconds=settings.flush_seconds,
        progress=not args.quiet and sys.stderr.isatty(),
        fast_lane=not args.reference_parser,
    )
    summary = {
        "frames": result.frames,
        "events": result.events,
        "rejected": result.rejected,
        "rows_written": result.rows,
        "rows_dropped": result.rows_dropped,
        "seconds": round(result.seconds, 3),
        "interrupted": result.interrupted,
        "symbols": result.symbols,
        "fast_lane_frames": result.fast_frames,
        "lake": str(args.out),
    }
    print(json.dumps(summary))
    return 130 if result.interrupted else 0
