"""The order book simulator: determinism, book invariants, trades against the right side."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from microstream.sim.market import Market, MarketParams, spec_for
from microstream.sim.regimes import DEFAULT_REGIME_PARAMS, RegimeChain

START = 1_700_000_000_000


def _market(seed: int, warmup_s: float = 5.0) -> Market:
    return Market(spec_for("BTCUSDT"), np.random.default_rng(seed), START, warmup_s=warmup_s)


def test_same_seed_same_events_different_seed_different() -> None:
    a, b, c = _market(5), _market(5), _market(6)
    for m in (a, b, c):
        m.run_until(START + 5_000)
    assert a.drain() == b.drain()
    assert a.drain() != c.drain() or a.best() != c.best()
    assert a.best() == b.best()


def test_book_never_crossed_and_spread_mostly_one_tick() -> None:
    m = _market(1)
    spreads = []
    for k in range(1, 3001):  # 30 s in 10 ms steps
        m.run_until(START + 10 * k)
        bid, bid_lots, ask, ask_lots = m.best()
        assert ask > bid
        assert bid_lots > 0 and ask_lots > 0
        spreads.append(ask - bid)
    assert np.mean(np.array(spreads) == 1) > 0.9


def test_levels_are_best_first_and_match_the_book() -> None:
    m = _market(2)
    m.run_until(START + 3_000)
    bids, asks = m.book()
    top_bids, top_asks = m.levels(True, 20), m.levels(False, 20)
    assert top_bids == sorted(bids.items(), reverse=True)[:20]
    assert top_asks == sorted(asks.items())[:20]
    assert all(lots > 0 for lots in list(bids.values()) + list(asks.values()))


def test_each_fill_hits_the_resting_side_of_its_aggressor() -> None:
    m = _market(3)
    m.run_until(START + 20_000)
    changes, trades, _ = m.drain()
    by_uid = {c.update_id: c for c in changes}
    assert len(trades) > 100
    for trade in trades:
        change = by_uid[trade.update_id]
        # buyer is maker <=> the aggressor sold into a bid
        assert change.is_bid == trade.buyer_is_maker
        assert change.tick == trade.tick


def test_update_ids_are_consecutive() -> None:
    m = _market(4)
    m.run_until(START + 2_000)
    ids = [c.update_id for c in m.drain()[0]]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_event_times_follow_the_exchange_clock() -> None:
    m = _market(4)
    m.run_until(START + 10_000)
    _, trades, tops = m.drain()
    times = [t.ts_ms for t in trades]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] < START + 10_000
    assert [t.ts_ms for t in tops] == sorted(t.ts_ms for t in tops)


def test_other_symbols_scale_sizes_and_prices() -> None:
    m = Market(spec_for("ETHUSDT"), np.random.default_rng(0), START, MarketParams(), warmup_s=2)
    bid, _, ask, _ = m.best()
    assert 2000 < bid / 100 < 4000 and ask > bid
    assert spec_for("FOOUSDT").tick_size == 0.01


def test_run_until_the_past_is_a_no_op() -> None:
    m = _market(4)
    m.run_until(START + 1_000)
    state = (m.t_ms, m.best(), m.update_id)
    m.run_until(START + 500)
    assert (m.t_ms, m.best(), m.update_id) == state


def _one_regime_market(regime: str, seed: int, mean_duration_s: float) -> Market:
    rng = np.random.default_rng(seed)
    params = {
        r: replace(p, mean_duration_s=mean_duration_s) for r, p in DEFAULT_REGIME_PARAMS.items()
    }
    chain = RegimeChain(rng, START - 2_000, params, initial=regime)
    return Market(spec_for("BTCUSDT"), rng, START, regimes=chain, warmup_s=2.0)


def test_a_regime_switch_ends_every_live_metaorder() -> None:
    m = _one_regime_market("strongly_bullish", 3, mean_duration_s=10.0)
    switch = m.regimes.next_switch_ms
    m.run_until(switch)
    before = m.regime
    m._start_metaorder(m.regimes.params[before])  # at least one live metaorder
    assert m._meta_total > 0
    m.run_until(switch + 1)
    assert m.regime != before
    assert m._meta_total == 0 and m._meta_net == 0 and not m._meta


def test_regime_trend_moves_the_price_its_way() -> None:
    """One simulated minute in each strong regime: the mid drifts the named way."""
    moves = {}
    for regime in ("strongly_bullish", "strongly_bearish"):
        m = _one_regime_market(regime, 4, mean_duration_s=1e6)
        bid0, _, ask0, _ = m.best()
        m.run_until(START + 60_000)
        assert m.regime == regime
        bid1, _, ask1, _ = m.best()
        moves[regime] = math.log((bid1 + ask1) / (bid0 + ask0)) * 1e4  # bps
    assert moves["strongly_bullish"] > 15 and moves["strongly_bearish"] < -15, moves
