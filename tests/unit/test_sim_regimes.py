"""The hidden regime chain: names, holding times, determinism, history."""

from __future__ import annotations

import itertools

import numpy as np

from microstream.sim.regimes import DEFAULT_REGIME_PARAMS, REGIMES, RegimeChain


def _chain(seed: int) -> RegimeChain:
    return RegimeChain(np.random.default_rng(seed), start_ms=0)


def test_regime_names_are_the_contract_names() -> None:
    assert REGIMES == ("strongly_bullish", "bullish", "neutral", "bearish", "strongly_bearish")
    assert set(DEFAULT_REGIME_PARAMS) == set(REGIMES)


def test_holding_times_are_minutes_and_switches_change_regime() -> None:
    chain = _chain(3)
    chain.regime_at(6 * 3600 * 1000)  # six simulated hours
    switches = chain.switches()
    durations = np.diff([s for s, _ in switches]) / 1000.0
    assert 60.0 < durations.mean() < 360.0
    assert durations.min() >= 1.0
    assert all(a != b for (_, a), (_, b) in itertools.pairwise(switches))
    assert {r for _, r in switches} == set(REGIMES)


def test_same_seed_same_chain_and_history_lookup() -> None:
    a, b = _chain(11), _chain(11)
    assert [a.regime_at(t) for t in range(0, 3_600_000, 1000)] == [
        b.regime_at(t) for t in range(0, 3_600_000, 1000)
    ]
    assert a.switches() != _chain(12).switches() or a.current != _chain(12).current
    for start, regime in a.switches():
        assert a.history_at(start) == regime
    assert a.history_at(-1) is None


def test_buy_share_orders_regimes_from_bullish_to_bearish() -> None:
    shares = [DEFAULT_REGIME_PARAMS[r].buy_share for r in REGIMES]
    assert shares == sorted(shares, reverse=True)
    assert DEFAULT_REGIME_PARAMS["neutral"].skew == 0.0
    trends = [DEFAULT_REGIME_PARAMS[r].trend for r in REGIMES]
    assert trends == sorted(trends, reverse=True) and len(set(trends)) == len(trends)
    assert DEFAULT_REGIME_PARAMS["neutral"].trend == 0.0
