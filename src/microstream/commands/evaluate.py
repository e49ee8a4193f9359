"""``microstream evaluate``: walk-forward report of the forecast and the regime detector."""

from __future__ import annotations

import argparse
import os
from typing import Any


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data and label options shared by ``train`` and ``evaluate``."""
    parser.add_argument("--lake", action="append", default=[], help="lake directory (repeatable)")
    parser.add_argument("--captures", nargs="+", default=[], help="capture files to replay")
    parser.add_argument(
        "--holdout", nargs="+", default=[], help="capture files kept aside for a final check"
    )
    parser.add_argument("--holdout-lake", action="append", default=[], help="hold-out lake")
    parser.add_argument("--horizon-s", type=float, default=None, help="label horizon (s)")
    parser.add_argument("--threshold-bps", type=float, default=None, help="label threshold (bp)")
    parser.add_argument("--folds", type=int, default=5, help="walk-forward folds")
    parser.add_argument("--no-hgb", action="store_true", help="skip gradient boosting (faster)")


def request_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    """An :class:`~microstream.evaluation.runner.EvalRequest` from parsed arguments."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # no thread oversubscription; reproducible
    from microstream.config import Settings
    from microstream.evaluation.runner import EvalRequest
    from microstream.evaluation.selection import BASE_CANDIDATES

    settings = Settings.from_env()
    fields: dict[str, Any] = {
        "lakes": args.lake,
        "captures": args.captures,
        "holdout_lakes": args.holdout_lake,
        "holdout_captures": args.holdout,
        "horizon_s": args.horizon_s if args.horizon_s is not None else float(settings.horizon_s),
        "threshold_bps": (
            args.threshold_bps if args.threshold_bps is not None else settings.threshold_bps
        ),
        "folds": args.folds,
        "candidates": tuple(
            c for c in BASE_CANDIDATES if not (args.no_hgb and c.startswith("hgb"))
        ),
    }
    fields.update(overrides)
    return EvalRequest(**fields)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="walk-forward evaluation report (JSON, Markdown, PNG)",
        description=(
            "Evaluate the direction forecast by walk-forward out-of-sample log-loss against "
            "baselines, and the regime detector (durations, forward returns; balanced accuracy "
            "on simulated lakes). Writes report.json, report.md and plots under --out."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument("--out", default="reports", help="report directory")
    parser.add_argument(
        "--sim-seconds",
        type=float,
        default=0.0,
        help="also simulate this many seconds and score the regime detector against the "
        "simulator's true regimes (balanced accuracy)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from microstream.evaluation.report import write_report
    from microstream.evaluation.runner import run

    result = run(request_from_args(args, sim_seconds=args.sim_seconds))
    paths = write_report(result.evaluation, result.regime_report(), args.out)
    report = result.evaluation.report
    summary = {
        "selected": report["selection"]["selected"],
        "walk_forward": report["walk_forward"]["verdict"],
        "holdout": report.get("holdout", {}).get("verdict"),
        "report": str(paths["markdown"]),
    }
    print(json.dumps(summary, default=float))
    return 0
