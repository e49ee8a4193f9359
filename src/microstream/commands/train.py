"""``microstream train``: reproducibly train the forecast model and write a model card.

Without ``--lake``/``--captures`` it uses the real captures in
``<data-root>`` (default ``../shared/data/binance``): spot BTCUSDT and the
USD-M sessions for training and selection, the COIN-M session kept aside for
the final check only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from microstream.commands.evaluate import add_data_arguments, request_from_args

TRAIN_SESSIONS = (
    "usdm/btcusdt_20230404.dat.gz",
    "usdm/btcusdt_20230405.dat.gz",
    "usdm/btcusdt_20240718.gz",
    "usdm/btcusdt_20240719.gz",
    "usdm/ethusdt_20240718.gz",
    "usdm/ethusdt_20240719.gz",
    "spot/btcusdt_20240808.gz",
    "spot/btcusdt_20240809.gz",
)
HOLDOUT_SESSIONS = ("cm/btcusd_perp_20240808.gz", "cm/btcusd_perp_20240809.gz")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the forecast model (walk-forward selection) and write a model card",
        description=(
            "Select the direction forecast by walk-forward out-of-sample log-loss, fit it on "
            "all training rows (fixed seeds), save it in the model registry under --out with "
            "MODEL_CARD.md, and write the evaluation report under --report."
        ),
    )
    add_data_arguments(parser)
    parser.add_argument("--data-root", default="../shared/data/binance", help="default captures")
    parser.add_argument("--out", default="models", help="model registry directory")
    parser.add_argument("--report", default="reports/train", help="evaluation report directory")
    parser.add_argument(
        "--signals", action="store_true", help="also fit the HMM and Isolation Forest on bars_1m"
    )
    parser.set_defaults(handler=_run)


def _default_captures(root: Path, names: tuple[str, ...]) -> list[str]:
    from microstream.errors import CaptureError

    paths = [root / name for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CaptureError(f"default captures missing: {', '.join(missing)}")
    return [str(p) for p in paths]


def _run(args: argparse.Namespace) -> int:
    import json

    from microstream.evaluation.model_card import save_trained
    from microstream.evaluation.report import write_report
    from microstream.evaluation.runner import run

    overrides = {}
    if not args.lake and not args.captures:
        root = Path(args.data_root)
        overrides["captures"] = _default_captures(root, TRAIN_SESSIONS)
        if not args.holdout and not args.holdout_lake:
            overrides["holdout_captures"] = _default_captures(root, HOLDOUT_SESSIONS)
    result = run(request_from_args(args, **overrides))
    paths = write_report(result.evaluation, result.regime_report(), args.report)
    saved = save_trained(result, args.out, Path(paths["markdown"]), signals=args.signals)
    report = result.evaluation.report
    print(
        json.dumps(
            {
                "model": str(saved["forecast"]),
                "selected": report["selection"]["selected"],
                "walk_forward": report["walk_forward"]["verdict"],
                "holdout": report.get("holdout", {}).get("verdict"),
                "model_card": str(saved["card"]),
            },
            default=float,
        )
    )
    return 0
