"""Walk-forward evaluation and selection of the direction forecast.

:func:`evaluate_forecast` builds the labelled dataset, runs every candidate
and baseline through time-ordered expanding-window folds (gap ≥ horizon),
selects the candidate with the lowest pooled out-of-sample log-loss, fits it
on all the data, and scores it on an optional hold-out set it never saw.
The result is a JSON-serialisable dict (the report) plus the arrays the plots
need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from microstream.evaluation.baselines import BASELINES, baseline_probs, class_frequencies
from microstream.evaluation.dataset import KEYS, Dataset, build_dataset
from microstream.evaluation.metrics import all_metrics, class_shares, log_loss, log_loss_margin
from microstream.evaluation.regimes import detect_regimes
from microstream.evaluation.selection import (
    BASE_CANDIDATES,
    fit_candidate,
    inference_micros,
    select_best,
    walk_forward,
)
from microstream.evaluation.walkforward import walk_forward_splits
from microstream.models.predictor import ForecastModel

ORACLE = "prior_evaluated_rows"
"""The class frequencies of the evaluated rows themselves (hindsight): the done-criterion bar."""
MODEL = "model"


@dataclass
class ForecastEvaluation:
    """The report dict, the final model and the arrays behind the plots.

    Attributes:
        report: JSON-serialisable results.
        model: the selected candidate fitted on all training rows.
        oos: ``name -> (y, probs)`` pooled out-of-sample forecasts (walk-forward).
        holdout: ``name -> (y, probs)`` on the hold-out rows (empty without one).
    """

    report: dict[str, Any]
    model: ForecastModel
    oos: dict[str, tuple[np.ndarray, np.ndarray]]
    holdout: dict[str, tuple[np.ndarray, np.ndarray]]


def describe(data: Dataset) -> dict[str, Any]:
    """Rows, symbols, time span and class shares of a dataset."""
    symbols = {
        str(s): int(n) for s, n in zip(*np.unique(data.symbol, return_counts=True), strict=True)
    }
    return {
        "rows": len(data),
        "symbols": symbols,
        "start_ns": int(data.ts.min()),
        "end_ns": int(data.ts.max()),
        "class_shares": class_shares(data.y),
    }


def _oracle(y: np.ndarray) -> np.ndarray:
    counts = np.bincount(y, minlength=3).astype(np.float64)
    return np.tile(counts / counts.sum(), (len(y), 1))


def _regimes_of(features: pl.DataFrame, data: Dataset) -> np.ndarray:
    regimes = detect_regimes(features)
    joined = data.frame.select(*KEYS, "ts").join(
        regimes, on=[*KEYS, "ts"], how="left", maintain_order="left"
    )
    return np.array(
        [r if r is not None else "none" for r in joined["regime"].to_list()], dtype=object
    )


def _per_group(
    groups: np.ndarray, forecasts: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    y_all = forecasts[MODEL][0]
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        y = y_all[mask]
        row: dict[str, Any] = {"n": int(mask.sum()), "class_shares": class_shares(y)}
        for name, (_, p) in forecasts.items():
            row[name] = {
                "log_loss": log_loss(y, p[mask]),
                "accuracy": float(np.mean(np.argmax(p[mask], 1) == y)),
            }
        row[ORACLE] = {"log_loss": log_loss(y, _oracle(y))}
        out[str(g)] = row
    return out


def _verdict(metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    model_ll = metrics[MODEL]["log_loss"]
    beats = {name: bool(model_ll < m["log_loss"]) for name, m in metrics.items() if name != MODEL}
    return {"model_log_loss": model_ll, "beats": beats, "beats_all": all(beats.values())}


MARGIN_REFERENCES = (ORACLE, "uniform")
"""The forecasts the model's log-loss margin (with a bootstrap interval) is reported against."""


def _margins(y: np.ndarray, model_p: np.ndarray) -> dict[str, dict[str, float]]:
    """Model log-loss minus each reference's, with a block-bootstrap 95 % interval."""
    refs = {ORACLE: _oracle(y), "uniform": np.full_like(model_p, 1.0 / 3.0)}
    return {name: log_loss_margin(y, model_p, refs[name]) for name in MARGIN_REFERENCES}


def _scored(y: np.ndarray, forecasts: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    metrics = {name: all_metrics(y, p) for name, p in forecasts.items()}
    metrics[ORACLE] = all_metrics(y, _oracle(y))
    return metrics


def _holdout(
    model: ForecastModel,
    train: Dataset,
    features: pl.DataFrame,
    horizon_s: float,
    threshold_bps: float,
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, np.ndarray]]]:
    data = build_dataset(features, horizon_s, threshold_bps)
    forecasts = {MODEL: model.predict_proba(data.x)}
    for name in BASELINES:
        forecasts[name] = baseline_probs(name, train.x, train.y, data.x)
    metrics = _scored(data.y, forecasts)
    pairs = {name: (data.y, p) for name, p in forecasts.items()}
    verdict = {**_verdict(metrics), "margins": _margins(data.y, forecasts[MODEL])}
    report = {"data": describe(data), "metrics": metrics, "verdict": verdict}
    report["per_regime"] = _per_group(_regimes_of(features, data), pairs)
    report["per_symbol"] = _per_group(data.symbol.astype(object), pairs)
    return report, pairs


def evaluate_forecast(
    features: pl.DataFrame,
    holdout_features: pl.DataFrame | None = None,
    horizon_s: float = 10.0,
    threshold_bps: float = 1.0,
    n_folds: int = 5,
    candidates: tuple[str, ...] = BASE_CANDIDATES,
    calibrate: bool = True,
) -> ForecastEvaluation:
    """Walk-forward selection on ``features``; final check on ``holdout_features``."""
    data = build_dataset(features, horizon_s, threshold_bps)
    gap_ns = round(horizon_s * 1e9)
    folds = walk_forward_splits(data.ts, n_folds, gap_ns)
    result = walk_forward(data, folds, horizon_s, threshold_bps, candidates, calibrate)
    selected = select_best(result, data.y)
    y_test = data.y[result.test_idx]
    oos = {MODEL: result.probs[selected], **{b: result.probs[b] for b in BASELINES}}
    metrics = _scored(y_test, oos)
    pairs = {name: (y_test, p) for name, p in oos.items()}
    model = fit_candidate(selected, data, horizon_s, threshold_bps)
    regimes = _regimes_of(features, data)[result.test_idx]
    report: dict[str, Any] = {
        "config": {
            "horizon_s": horizon_s,
            "threshold_bps": threshold_bps,
            "n_folds": len(folds),
            "gap_s": gap_ns / 1e9,
        },
        "data": describe(data),
        "folds": [_fold_row(data, f, result, selected) for f in folds],
        "selection": {
            "oos_log_loss": result.log_losses(data.y),
            "selected": selected,
            "failed": result.failed,
            "fit_seconds": result.fit_seconds,
        },
        "walk_forward": {
            "metrics": metrics,
            "verdict": {**_verdict(metrics), "margins": _margins(y_test, oos[MODEL])},
        },
        "per_regime": _per_group(regimes, pairs),
        "per_symbol": _per_group(data.symbol[result.test_idx].astype(object), pairs),
        "inference": inference_micros(model, data.x),
        "final_model": {
            "kind": selected,
            "train_rows": len(data),
            "used_features": list(model.used_features),
        },
    }
    hold: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if holdout_features is not None:
        report["holdout"], hold = _holdout(model, data, holdout_features, horizon_s, threshold_bps)
    return ForecastEvaluation(report, model, pairs, hold)


def _fold_row(data: Dataset, fold: Any, result: Any, selected: str) -> dict[str, Any]:
    pos = np.flatnonzero(result.fold_of == fold.index)
    y = data.y[fold.test]
    row: dict[str, Any] = {
        "fold": fold.index,
        "train_rows": len(fold.train),
        "test_rows": len(fold.test),
        "train_end_ns": int(data.ts[fold.train].max()),
        "test_start_ns": fold.test_start,
        "test_end_ns": int(data.ts[fold.test].max()),
        "train_class_prior": class_frequencies(data.y[fold.train]).tolist(),
        "log_loss": {name: log_loss(y, p[pos]) for name, p in result.probs.items()},
    }
    row["log_loss"][ORACLE] = log_loss(y, _oracle(y))
    row["log_loss"][MODEL] = row["log_loss"][selected]
    return row
