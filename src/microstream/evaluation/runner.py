"""Load data and run the forecast evaluation (shared by ``train`` and ``evaluate``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from microstream.evaluation.data import load_tables
from microstream.evaluation.forecast_eval import ForecastEvaluation, evaluate_forecast
from microstream.evaluation.regimes import detect_regimes, regime_report, sim_accuracy
from microstream.evaluation.selection import BASE_CANDIDATES


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate: training data, hold-out data, label and fold settings."""

    lakes: Sequence[str | Path] = ()
    captures: Sequence[str | Path] = ()
    holdout_lakes: Sequence[str | Path] = ()
    holdout_captures: Sequence[str | Path] = ()
    horizon_s: float = 10.0
    threshold_bps: float = 1.0
    folds: int = 5
    candidates: tuple[str, ...] = BASE_CANDIDATES
    sim_seconds: float = 0.0
    sim_seed: int = 7


@dataclass
class EvalRun:
    """The evaluation and the data it ran on."""

    evaluation: ForecastEvaluation
    tables: dict[str, pl.DataFrame]
    holdout: pl.DataFrame | None
    request: EvalRequest
    sources: dict[str, list[str]] = field(default_factory=dict)

    def regime_report(self) -> dict[str, Any]:
        """Regime durations / forward returns on all rows, and sim accuracy if simulated."""
        features = self.tables["features"]
        if self.holdout is not None:
            features = pl.concat([features, self.holdout], how="diagonal_relaxed")
        report = regime_report(features, self.request.horizon_s)
        report["sim"] = sim_accuracy(detect_regimes(features), self.tables["sim_truth"])
        if self.request.sim_seconds > 0:
            from microstream.models.regime_eval import evaluate_regimes, simulate_features

            sim = simulate_features(self.request.sim_seed, self.request.sim_seconds)
            report["sim_run"] = {
                "seed": self.request.sim_seed,
                "seconds": self.request.sim_seconds,
                **evaluate_regimes(sim),
            }
        return report


def run(request: EvalRequest) -> EvalRun:
    """Load the data of ``request`` and run :func:`evaluate_forecast` on it."""
    tables = load_tables(request.lakes, request.captures)
    holdout = None
    if request.holdout_lakes or request.holdout_captures:
        holdout = load_tables(request.holdout_lakes, request.holdout_captures)["features"]
    evaluation = evaluate_forecast(
        tables["features"],
        holdout,
        request.horizon_s,
        request.threshold_bps,
        request.folds,
        request.candidates,
    )
    sources = {
        "train": [str(p) for p in (*request.lakes, *request.captures)],
        "holdout": [str(p) for p in (*request.holdout_lakes, *request.holdout_captures)],
    }
    return EvalRun(evaluation, tables, holdout, request, sources)
