"""Save a trained forecast in the registry and write its ``MODEL_CARD.md``."""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn

from microstream.errors import MicroStreamError
from microstream.evaluation.forecast_eval import MODEL, ORACLE
from microstream.evaluation.report import margin_text
from microstream.evaluation.runner import EvalRun
from microstream.evaluation.selection import SEED
from microstream.models.engine import FORECAST_MODEL_NAME
from microstream.models.registry import read_meta, save_model

log = logging.getLogger(__name__)


def _ts(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _metrics(verdict_block: dict[str, Any]) -> dict[str, Any]:
    metrics = verdict_block["metrics"]
    keep = ("n", "log_loss", "brier", "accuracy", "macro_f1", "ece")
    return {name: {k: m.get(k) for k in keep} for name, m in metrics.items()}


def _training_data(run: EvalRun) -> dict[str, Any]:
    data = run.evaluation.report["data"]
    return {
        "sources": run.sources,
        "rows": data["rows"],
        "symbols": data["symbols"],
        "start": _ts(data["start_ns"]),
        "end": _ts(data["end_ns"]),
        "class_shares": data["class_shares"],
    }


def _signal_models(run: EvalRun, out: Path) -> str:
    from microstream.models.signals import train_signal_models

    bars = run.tables.get("bars_1m")
    if bars is None or bars.is_empty():
        return "not trained: no bars_1m rows"
    try:
        models = train_signal_models(bars)
    except (MicroStreamError, ValueError) as exc:
        return f"not trained: {exc}"
    paths = models.save(
        out, training_data=f"{bars.height} bars_1m rows from {run.sources['train']}"
    )
    return "saved " + ", ".join(p.name for p in paths)


def save_trained(
    run: EvalRun, out_dir: str | Path, report_md: Path, signals: bool = False
) -> dict[str, Path]:
    """Save the forecast (and, if asked, the HMM/forest) and write ``MODEL_CARD.md``."""
    out = Path(out_dir)
    report = run.evaluation.report
    model = run.evaluation.model
    metrics: dict[str, Any] = {
        "walk_forward": _metrics(report["walk_forward"]),
        "inference_us": report["inference"],
    }
    if "holdout" in report:
        metrics["holdout"] = _metrics(report["holdout"])
    meta = {
        "training_data": _training_data(run),
        "feature_names": list(model.feature_names),
        "metrics": metrics,
        "used_features": list(model.used_features),
        "estimator": report["selection"]["selected"],
        "horizon_s": model.horizon_s,
        "threshold_bps": model.threshold_bps,
        "seed": SEED,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }
    path = save_model(model, out, FORECAST_MODEL_NAME, "forecast", meta)
    signal_note = _signal_models(run, out) if signals else "not part of this training run"
    card = out / "MODEL_CARD.md"
    card.write_text(model_card(run, read_meta(path).tag, path.name, signal_note, report_md))
    return {"forecast": path, "card": card}


def _row(name: str, m: dict[str, Any]) -> str:
    return f"| {name} | {m['log_loss']:.4f} | {m['brier']:.4f} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['ece']:.4f} |"


def _table(block: dict[str, Any]) -> list[str]:
    lines = [
        "| forecast | log-loss | Brier | accuracy | macro-F1 | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in sorted(block["metrics"].items(), key=lambda kv: kv[1]["log_loss"]):
        lines.append(_row(f"**{name}**" if name == MODEL else name, m))
    return lines


def _says(verdict: dict[str, Any]) -> str:
    lost = [n for n, ok in verdict["beats"].items() if not ok]
    if not lost:
        return "has a lower log-loss than every baseline, including the hindsight class prior of the evaluated rows"
    oracle = "beats" if verdict["beats"].get(ORACLE) else "does NOT beat"
    return f"does not beat {', '.join(lost)}; it {oracle} the hindsight class prior of the evaluated rows"


def model_card(run: EvalRun, tag: str, filename: str, signal_note: str, report_md: Path) -> str:
    """The Markdown model card of a trained forecast."""
    report = run.evaluation.report
    data = _training_data(run)
    model = run.evaluation.model
    inf = report["inference"]
    lines = [
        f"# Model card: `{tag}`",
        "",
        f"File `{filename}` (+ `.json` sidecar with the SHA-256), trained "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} with `microstream train` "
        f"(seed {SEED}, scikit-learn {sklearn.__version__}).",
        "",
        "## What it predicts",
        "",
        f"Direction of the mid over the next {model.horizon_s:g} s: up / down if it moves more "
        f"than {model.threshold_bps:g} bp, else neutral; probabilities (p_up, p_neutral, p_down). "
        f"Estimator: `{report['selection']['selected']}` on inputs "
        f"{', '.join(model.used_features)} (see docs/forecast.md).",
        "",
        "## Data",
        "",
        f"Training/selection: {data['rows']} labelled 1-s grid rows, {data['start']} → {data['end']} UTC, "
        + ", ".join(f"{s} {n}" for s, n in data["symbols"].items())
        + ". Sources: "
        + ", ".join(f"`{Path(s).name}`" for s in data["sources"]["train"])
        + ".",
        "",
        "Hold-out (never used for fitting or selection): "
        + (", ".join(f"`{Path(s).name}`" for s in data["sources"]["holdout"]) or "none")
        + ".",
        "",
        "## Results",
        "",
        f"Walk-forward ({report['config']['n_folds']} expanding folds, gap {report['config']['gap_s']:g} s): "
        f"the model {_says(report['walk_forward']['verdict'])}."
        + margin_text(report["walk_forward"]["verdict"]),
        "",
        *_table(report["walk_forward"]),
    ]
    if "holdout" in report:
        hold = report["holdout"]
        lines += [
            "",
            f"Hold-out ({hold['data']['rows']} rows): the model {_says(hold['verdict'])}."
            + margin_text(hold["verdict"]),
            "",
            *_table(hold),
        ]
    lines += [
        "",
        f"Inference: median {inf['median_us']:.1f} µs, p99 {inf['p99_us']:.1f} µs per prediction "
        "(measured on the training machine, which was shared and loaded).",
        "",
        f"HMM / Isolation Forest: {signal_note}.",
        "",
        "## Limits",
        "",
        "- Very little data: a few short sessions (8-11 minutes each). Numbers move a lot "
        "between folds; treat any edge as unproven until it holds on more sessions.",
        "- Class shares shift strongly between sessions (volatility), so the class prior of the "
        "training data is a poor forecast of another session; the hindsight prior of the "
        "evaluated rows is the honest bar.",
        "- How the candidate list came about: the compact set with C = 0.01 was added after a "
        "first walk-forward run that also printed the hold-out numbers; the symmetric, "
        "intercept-free candidates (`symlogistic_*`, the book-only input set, C = 0.003/0.01) "
        "and the resolved-label inputs were added after about a hundred exploratory "
        "walk-forward runs (input sets × C × intercept/mirroring × window), without looking at "
        "the hold-out. The walk-forward figure of the selected candidate is therefore "
        "optimistic (chosen as the best of many); the hold-out had been seen once before, with "
        "the earlier model.",
        "- A margin over the hindsight prior whose bootstrap interval contains 0 is not an edge; "
        "the margin over `uniform` (a forecast known at t) is the more telling number.",
        f"- Full report: `{report_md}`.",
    ]
    return "\n".join(lines) + "\n"
