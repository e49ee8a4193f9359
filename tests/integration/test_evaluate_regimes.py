"""Regime evaluation: durations, forward-return separation, accuracy vs truth."""

from __future__ import annotations

import polars as pl
import pytest

from microstream.evaluation.regimes import _durations, detect_regimes, regime_report, sim_accuracy
from microstream.evaluation.synthetic import synthetic_features


def test_durations_count_runs_per_symbol() -> None:
    frame = pl.DataFrame(
        {
            "exchange": ["x"] * 6 + ["y"] * 2,
            "symbol": ["A"] * 6 + ["B"] * 2,
            "ts": [0, 1, 2, 3, 4, 5, 0, 1],
            "regime": [
                "bullish",
                "bullish",
                "neutral",
                "bullish",
                None,
                "neutral",
                "neutral",
                "neutral",
            ],
        }
    )
    d = _durations(frame, grid_s=1.0)
    assert d["bullish"]["episodes"] == 2
    assert d["bullish"]["mean_s"] == pytest.approx(1.5)
    assert d["neutral"]["episodes"] == 3  # runs in A (2) and B (1), not merged across symbols
    assert d["neutral"]["max_s"] == 2.0


def test_regime_report_on_features() -> None:
    features = synthetic_features(900, seed=12)
    report = regime_report(features, horizon_s=10)
    assert report["rows"] > 0
    assert sum(report["share"].values()) == pytest.approx(1.0)
    for stats in report["forward_return"].values():
        assert stats["n"] > 0 and "mean_fwd_bps" in stats
    regimes = detect_regimes(features)
    truth = regimes.filter(pl.col("regime").is_not_null()).select(
        "exchange", "symbol", "ts", "regime"
    )
    acc = sim_accuracy(regimes, truth)
    assert acc is not None and acc["balanced_accuracy"] == pytest.approx(1.0)
    assert sim_accuracy(regimes, pl.DataFrame()) is None
