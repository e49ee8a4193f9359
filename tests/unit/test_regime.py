"""Regime detector: hysteresis, monotone response, missing data, bounds."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from microstream.bus.protocol import Row
from microstream.models.regime import REGIMES, RegimeConfig, RegimeDetector

S = 1_000_000_000
LEVEL = {name: 2 - i for i, name in enumerate(REGIMES)}


def features(ts_s: int, mid: float | None = 100.0, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ts": ts_s * S,
        "mid": mid,
        "volatility_1m": 0.0005,
        "flow_imbalance_1m": 0.0,
        "imbalance_l5": 0.0,
        "book_valid": mid is not None,
    }
    row.update(kw)
    return row


def run(rows: list[dict[str, Any]], config: RegimeConfig | None = None) -> list[dict[str, Any]]:
    out: list[Row] = []
    detector = RegimeDetector("binance", "BTCUSDT", out.append, config=config)
    for values in rows:
        detector.on_features(values)
    return [r.values for r in out]


def changes(values: list[dict[str, Any]]) -> int:
    return sum(a["regime"] != b["regime"] for a, b in itertools.pairwise(values))


DEFAULTS = RegimeConfig()


@pytest.mark.parametrize(
    "centre",
    [
        DEFAULTS.exit,
        (DEFAULTS.exit + DEFAULTS.enter) / 2,
        DEFAULTS.enter,
        (DEFAULTS.strong_exit + DEFAULTS.strong_enter) / 2,
    ],
)
def test_hysteresis_does_not_flap_on_a_noisy_constant_input(centre: float) -> None:
    """A score that sits on a class edge with second-to-second noise (sd 0.15).

    Only the flow counts here (``raw = tanh(flow)``), so the raw score is the
    edge plus noise; smoothing, hysteresis and dwell are the defaults.
    """
    rng = np.random.default_rng(0)
    rows = [
        features(
            i, flow_imbalance_1m=float(np.clip(math.atanh(centre) + rng.normal(0, 0.15), -1, 1))
        )
        for i in range(600)
    ]
    only_flow = {"w_trend": 0.0, "w_pressure": 0.0, "w_book": 0.0, "flow_scale": 1.0}
    with_hysteresis = run(rows, RegimeConfig(**only_flow))
    plain = run(
        rows,
        RegimeConfig(
            **only_flow,
            smoothing_s=0,
            enter=DEFAULTS.enter,
            exit=DEFAULTS.enter,
            strong_enter=DEFAULTS.strong_enter,
            strong_exit=DEFAULTS.strong_enter,
            min_dwell_s=0,
        ),
    )
    assert changes(with_hysteresis) <= 20  # at most one change per 30 s on average
    assert changes(plain) > 10 * max(1, changes(with_hysteresis))


def test_min_dwell_is_respected() -> None:
    rows = [features(i, flow_imbalance_1m=(0.9 if (i // 2) % 2 else -0.9)) for i in range(300)]
    cfg = RegimeConfig(smoothing_s=0, min_dwell_s=5, w_trend=0, w_flow=1, w_book=0)
    values = run(rows, cfg)
    switch_times = [b["ts"] for a, b in itertools.pairwise(values) if a["regime"] != b["regime"]]
    gaps = np.diff(switch_times) / S
    assert len(switch_times) > 5 and (gaps >= 5).all()


@pytest.mark.parametrize("component", ["flow_imbalance_1m", "imbalance_l5", "trend"])
def test_response_is_monotone_in_each_component(component: str) -> None:
    levels, scores = [], []
    # A noiseless drift has no volatility of its own: take σ̄ from the rows'
    # volatility_1m (5 bps) instead of the mid's own returns.
    config = RegimeConfig(vol_baseline_s=0) if component == "trend" else None
    for x in np.linspace(-1, 1, 21):
        if component == "trend":  # a steady drift of x bps per second
            rows = [features(i, 100.0 * math.exp(x * 1e-4 * i)) for i in range(120)]
        else:
            rows = [features(i, **{component: float(x)}) for i in range(120)]
        last = run(rows, config)[-1]
        levels.append(LEVEL[last["regime"]])
        scores.append(last["score"])
    assert levels == sorted(levels) and levels[10] == 0
    assert all(a < b for a, b in itertools.pairwise(scores))
    assert scores[0] < 0 < scores[-1] and scores[10] == pytest.approx(0.0, abs=1e-12)


def test_invalid_book_gives_no_stale_regime() -> None:
    bullish = [features(i, 100.0 * math.exp(2e-4 * i), flow_imbalance_1m=0.1) for i in range(90)]
    invalid = [features(90 + i, None, flow_imbalance_1m=0.1, imbalance_l5=None) for i in range(5)]
    back = [features(95 + i, 90.0, flow_imbalance_1m=0.1) for i in range(30)]
    cfg = RegimeConfig()
    values = run(bullish + invalid + back, cfg)
    assert values[89]["regime"] in ("bullish", "strongly_bullish")
    flow_only = cfg.w_flow / cfg.total_weight
    assert flow_only < cfg.min_coverage
    for v in values[90:95]:  # only flow is left: not enough to name a regime
        assert v["regime"] is None and v["score"] is None
        assert v["confidence"] == 0.0 and v["status"] == "insufficient_data"
        assert v["trend"] is None and v["book"] is None
        assert v["coverage"] == pytest.approx(flow_only)
    # back at a mid 10 % lower: the old mids are forgotten, no huge bearish trend
    for v in values[95:]:
        assert v["trend"] is None or abs(v["trend_z"]) < 1e-9
    assert values[95]["coverage"] == pytest.approx((cfg.w_flow + cfg.w_book) / cfg.total_weight)
    shortest = int(cfg.trend_min_window_s) + 1  # the trend needs its shortest look-back
    assert values[95 + shortest]["trend"] == pytest.approx(0.0)
    assert values[95 + shortest]["regime"] == "neutral"


def test_rows_without_data_or_time_are_handled() -> None:
    out: list[Row] = []
    detector = RegimeDetector("binance", "BTCUSDT", out.append)
    assert detector.on_features({"ts": None}) is None
    assert detector.on_features({"mid": 1.0}) is None
    row = detector.on_features({"ts": 5 * S})
    assert row is not None and row.values["regime"] is None
    assert detector.on_features({"ts": 4 * S}) is None  # going back in time
    nan_row = detector.on_features(features(6, float("nan"), flow_imbalance_1m=float("nan")))
    assert nan_row is not None and nan_row.values["regime"] is None
    assert detector.rows_rejected == 3 and len(out) == 2


def test_score_and_confidence_bounds_on_random_inputs() -> None:
    rng = np.random.default_rng(9)
    rows = []
    mid = 100.0
    for i in range(800):
        mid *= math.exp(rng.normal(0, 3e-4))
        rows.append(
            features(
                i,
                None if rng.random() < 0.05 else mid,
                volatility_1m=None if rng.random() < 0.05 else float(rng.uniform(0, 1e-3)),
                flow_imbalance_1m=None if rng.random() < 0.1 else float(rng.uniform(-1, 1)),
                imbalance_l5=float(rng.uniform(-1, 1)),
            )
        )
    values = run(rows)
    assert len(values) == 800
    for v in values:
        assert 0.0 <= v["confidence"] <= 1.0
        if v["regime"] is None:
            assert v["score"] is None
        else:
            assert v["regime"] in REGIMES and -1.0 <= v["score"] <= 1.0


def test_confidence_is_full_deep_inside_a_band_and_half_on_its_edge() -> None:
    cfg = RegimeConfig(smoothing_s=0, w_trend=0, w_pressure=0, w_book=0, flow_scale=1.0)
    # the score is the flow component tanh(flow_imbalance_1m) alone
    centre = run([features(i, flow_imbalance_1m=0.0) for i in range(5)], cfg)[-1]
    inside, edge = math.atanh(0.45), math.atanh(cfg.exit + 1e-9)
    rows = [features(i, flow_imbalance_1m=inside if i < 10 else edge) for i in range(20)]
    near = run(rows, cfg)[-1]  # bullish was entered at 0.45 and is kept down to `exit`
    assert centre["regime"] == "neutral" and centre["confidence"] == pytest.approx(1.0)
    assert near["regime"] == "bullish" and near["confidence"] == pytest.approx(0.5, abs=1e-6)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        RegimeConfig(enter=0.1, exit=0.2)
    with pytest.raises(ValueError):
        RegimeConfig(w_trend=0, w_flow=0, w_pressure=0, w_book=0)


def test_trend_look_back_adapts_after_a_turn() -> None:
    """200 s up at 2 bps/s, then 20 s down: the short look-back sees the turn."""
    log_mid = [2e-4 * i if i <= 200 else 2e-4 * (400 - i) for i in range(221)]
    rows = [features(i, 100.0 * math.exp(x)) for i, x in enumerate(log_mid)]
    adaptive = run(rows)[-1]
    fixed = run(rows, RegimeConfig(trend_consistency=0.0))[-1]
    assert RegimeConfig().trend_windows_s == (15.0, 30.0, 60.0, 120.0, 160.0)
    assert RegimeConfig(trend_consistency=0.0).trend_windows_s == (160.0,)
    assert adaptive["trend_z"] < 0 < fixed["trend_z"]
    # in the steady part both use the long look-back and agree
    steady = rows[:200]
    assert run(steady)[-1]["trend_z"] == pytest.approx(
        run(steady, RegimeConfig(trend_consistency=0.0))[-1]["trend_z"]
    )


def test_ofi_component_is_used_only_with_a_weight() -> None:
    only_ofi = {"w_trend": 0.0, "w_flow": 0.0, "w_pressure": 0.0, "w_book": 0.0, "w_ofi": 1.0}
    rows = [features(i, ofi_10s=3.0 + (i % 3)) for i in range(60)]
    values = run(rows, RegimeConfig(**only_ofi, smoothing_s=0))
    assert all(v["ofi"] is not None and v["ofi"] > 0 for v in values)
    assert values[-1]["score"] > 0
    assert all(v["ofi"] is None for v in run(rows))  # default weight 0: not computed
    missing = run([features(i, ofi_10s=None) for i in range(5)], RegimeConfig(**only_ofi))
    assert all(v["regime"] is None and v["coverage"] == 0.0 for v in missing)
