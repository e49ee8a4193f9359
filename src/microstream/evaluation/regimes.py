"""Regime detector evaluation: per-row regimes, durations, forward-return separation.

On real data there is no true regime, so the report shows how long regimes
last and whether they separate what happens next (mean forward return per
regime). On simulated data (a lake with a ``sim_truth`` table) it adds the
balanced accuracy against the simulator's hidden regime.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from microstream.bus.protocol import Row
from microstream.models.labels import label_frame
from microstream.models.regime import REGIMES, RegimeDetector
from microstream.models.regime_eval import balanced_accuracy

KEYS = ("exchange", "symbol")


def detect_regimes(features: pl.DataFrame) -> pl.DataFrame:
    """Run a :class:`RegimeDetector` over each symbol's rows; ``keys, ts, regime, score``."""
    out: list[dict[str, Any]] = []
    keys = [k for k in KEYS if k in features.columns]
    groups = (
        features.sort([*keys, "ts"]).partition_by(keys, maintain_order=True)
        if keys
        else [features.sort("ts")]
    )
    for group in groups:
        exchange = str(group["exchange"][0]) if "exchange" in group.columns else "unknown"
        symbol = str(group["symbol"][0]) if "symbol" in group.columns else "UNKNOWN"
        rows: list[Row] = []
        detector = RegimeDetector(exchange, symbol, rows.append)
        for values in group.iter_rows(named=True):
            detector.on_features(values)
        out.extend(
            {
                "exchange": exchange,
                "symbol": symbol,
                "ts": r.values["ts"],
                "regime": r.values.get("regime"),
                "score": r.values.get("score"),
            }
            for r in rows
        )
    schema = {
        "exchange": pl.String,
        "symbol": pl.String,
        "ts": pl.Int64,
        "regime": pl.String,
        "score": pl.Float64,
    }
    return pl.DataFrame(out, schema=schema)


def _durations(regimes: pl.DataFrame, grid_s: float) -> dict[str, dict[str, float]]:
    runs: dict[str, list[float]] = {}
    for group in regimes.sort(["exchange", "symbol", "ts"]).partition_by(
        ["exchange", "symbol"], maintain_order=True
    ):
        labels = group["regime"].to_list()
        start = 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start]:
                if labels[start] is not None:
                    runs.setdefault(labels[start], []).append((i - start) * grid_s)
                start = i
    return {
        name: {
            "episodes": len(v),
            "mean_s": float(np.mean(v)),
            "median_s": float(np.median(v)),
            "max_s": float(np.max(v)),
        }
        for name, v in runs.items()
    }


def regime_report(
    features: pl.DataFrame, horizon_s: float = 10.0, grid_s: float = 1.0
) -> dict[str, Any]:
    """Durations and mean forward return (bps, at ``horizon_s``) per detected regime.

    ``t_stat`` is the mean over its standard error with an effective sample size
    of ``n · grid_s / horizon_s`` (overlapping forward windows are not independent).
    """
    regimes = detect_regimes(features)
    fwd = label_frame(features, horizon_s, 1.0, by=KEYS).select(*KEYS, "ts", "fwd_return")
    joined = regimes.join(fwd, on=[*KEYS, "ts"], how="left").filter(pl.col("regime").is_not_null())
    stats = (
        joined.filter(pl.col("fwd_return").is_not_null())
        .group_by("regime")
        .agg(
            pl.len().alias("n"),
            (pl.col("fwd_return").mean() * 1e4).alias("mean_fwd_bps"),
            (pl.col("fwd_return").std() * 1e4).alias("std_fwd_bps"),
            ((pl.col("fwd_return") > 0).mean()).alias("share_positive"),
        )
    )
    by_regime = {
        r["regime"]: {k: v for k, v in r.items() if k != "regime"} for r in stats.to_dicts()
    }
    for row in by_regime.values():
        n, sd = row["n"], row["std_fwd_bps"]
        # consecutive grid points share most of their forward window: count
        # about one independent observation per horizon
        n_eff = max(1.0, n * grid_s / horizon_s)
        row["n_eff"] = n_eff
        ok = n_eff > 1 and sd
        row["t_stat"] = float(row["mean_fwd_bps"] / (sd / np.sqrt(n_eff))) if ok else None
    report: dict[str, Any] = {
        "horizon_s": horizon_s,
        "rows": joined.height,
        "share": {r: float(np.mean(joined["regime"].to_numpy() == r)) for r in REGIMES}
        if joined.height
        else {},
        "durations": _durations(joined, grid_s),
        "forward_return": by_regime,
    }
    return report


def sim_accuracy(regimes: pl.DataFrame, truth: pl.DataFrame) -> dict[str, Any] | None:
    """Balanced accuracy of detected vs true regimes (None without truth rows)."""
    if truth.is_empty() or "regime" not in truth.columns:
        return None
    keys = [k for k in KEYS if k in truth.columns and k in regimes.columns]
    joined = regimes.join(
        truth.select(*keys, "ts", pl.col("regime").alias("truth")), on=[*keys, "ts"], how="inner"
    )
    pairs = list(zip(joined["regime"].to_list(), joined["truth"].to_list(), strict=True))
    return {"points": len(pairs), "balanced_accuracy": balanced_accuracy(pairs) if pairs else None}
