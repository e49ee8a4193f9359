"""Live scorecard: resolution at t+h, running log-loss vs baselines."""

from __future__ import annotations

import math

import pytest

from microstream.models.labels import NS_PER_S
from microstream.models.scorecard import ForecastScorecard

S = NS_PER_S


def _row(t: int, mid: float | None) -> dict[str, object]:
    return {"ts": t * S, "mid": mid, "book_valid": mid is not None}


def test_predictions_resolve_at_horizon_and_score_against_baselines() -> None:
    card = ForecastScorecard(horizon_s=2, threshold_bps=1.0)
    mids = [100.0, 100.0, 101.0, 101.0, 100.0]
    sure_up = (0.8, 0.1, 0.1)
    scored = [card.on_features(_row(t, m), sure_up) for t, m in enumerate(mids)]
    # t=0 resolves at t=2 (up), t=1 at t=3 (up), t=2 at t=4 (down)
    assert scored == [0, 0, 1, 1, 1]
    d = card.as_dict()
    assert d["class_counts"] == {"up": 2, "neutral": 0, "down": 1}
    assert d["pending"] == 2
    total = d["total"]
    assert total["model"]["n"] == 3
    assert total["model"]["hit_rate"] == pytest.approx(2 / 3)
    expected = (-math.log(0.8) * 2 - math.log(0.1)) / 3
    assert total["model"]["log_loss"] == pytest.approx(expected)
    # prior before 1st: 1/3 each; before 2nd: up 2/4; before 3rd: down 1/5
    prior = (-math.log(1 / 3) - math.log(2 / 4) - math.log(1 / 5)) / 3
    assert total["prior"]["log_loss"] == pytest.approx(prior)
    assert total["always_neutral"]["hit_rate"] == 0.0
    assert total["beats_prior"] is True
    assert d["recent"]["model"]["n"] == 3


def test_null_predictions_and_invalid_mids_are_not_scored() -> None:
    card = ForecastScorecard(horizon_s=1, threshold_bps=1.0)
    card.on_features(_row(0, 100.0), None)
    card.on_features(_row(1, None), (0.3, 0.4, 0.3))
    card.on_features(_row(2, 100.0), (0.3, 0.4, 0.3))
    card.on_features(_row(3, 100.0), None)
    d = card.as_dict()
    assert d["total"]["model"]["n"] == 1  # only t=2 -> t=3
    assert d["unscored"] == 2
    assert d["total"]["model"]["hit_rate"] == 1.0


def test_recent_window_is_bounded() -> None:
    card = ForecastScorecard(horizon_s=1, threshold_bps=1.0, window=5)
    for t in range(50):
        card.on_features(_row(t, 100.0 + t), (0.5, 0.25, 0.25))
    d = card.as_dict()
    assert d["total"]["model"]["n"] == 49
    assert d["recent"]["model"]["n"] == 5
