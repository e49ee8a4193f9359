"""Hand-computed examples of every feature formula (book, OFI, windows, bars)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from microstream.bus.protocol import Row
from microstream.events import BookTop, SyncStateChange, Trade
from microstream.features.book_math import (
    book_features,
    ofi_level1,
    ofi_multilevel,
    ofi_pair,
)
from microstream.features.streaming import FeatureEngine

EX, SYM = "binance", "BTCUSDT"
S = 1_000_000_000
T0 = 1_723_161_600 * S  # 2024-08-09 00:00:00 UTC, a day boundary
N5 = (None,) * 5


def top(
    ts: int,
    bids: list[tuple[float, float]],
    asks: list[tuple[float, float]],
    valid: bool = True,
    epoch: int = 1,
) -> BookTop:
    def side(levels: list[tuple[float, float]], k: int) -> tuple[float | None, ...]:
        return (tuple(lv[k] for lv in levels) + N5)[:5]

    return BookTop(
        EX, SYM, ts, ts, 1, side(bids, 0), side(bids, 1), side(asks, 0), side(asks, 1), valid, epoch
    )


def trade(ts: int, price: float, qty: float, side: str) -> Trade:
    return Trade(EX, SYM, ts, ts, ts, price, qty, side)  # type: ignore[arg-type]


BOOK = top(
    T0,
    [(100.00, 2.0), (99.95, 3.0), (99.80, 1.0)],
    [(100.02, 1.0), (100.10, 4.0), (100.30, 5.0)],
)


class Collector:
    def __init__(self, **kwargs: Any) -> None:
        self.rows: list[Row] = []
        self.engine = FeatureEngine(EX, SYM, self.rows.append, **kwargs)

    def feed(self, *events: Trade | BookTop | SyncStateChange) -> None:
        for ev in events:
            if isinstance(ev, Trade):
                self.engine.on_trade(ev)
            elif isinstance(ev, BookTop):
                self.engine.on_book_top(ev)
            else:
                self.engine.on_sync(ev)

    def features(self) -> dict[int, dict[str, Any]]:
        return {r.values["ts"]: r.values for r in self.rows if r.table == "features"}

    def bars(self) -> list[dict[str, Any]]:
        return [r.values for r in self.rows if r.table == "bars_1m"]


def test_book_features_by_hand() -> None:
    f = book_features(BOOK)
    assert f["mid"] == pytest.approx(100.01)
    assert f["spread"] == pytest.approx(0.02)
    assert f["spread_bps"] == pytest.approx(0.02 / 100.01 * 1e4)
    assert f["microprice"] == pytest.approx((100.00 * 1.0 + 100.02 * 2.0) / 3.0)
    assert f["imbalance_l1"] == pytest.approx(1 / 3)
    assert f["imbalance_l5"] == pytest.approx((6.0 - 10.0) / 16.0)
    # ±10 bps of 100.01 is [99.90999, 100.11001]: bids 100.00 + 99.95, asks 100.02 + 100.10
    assert f["depth_bid_10bps"] == pytest.approx(5.0)
    assert f["depth_ask_10bps"] == pytest.approx(5.0)


def test_book_features_null_rules() -> None:
    assert all(v is None for v in book_features(None).values())
    invalid = top(T0, [(100.0, 1.0)], [(101.0, 1.0)], valid=False)
    assert all(v is None for v in book_features(invalid).values())
    one_sided = book_features(top(T0, [(100.0, 1.0)], []))
    assert all(v is None for v in one_sided.values())


def test_ofi_level1_by_hand() -> None:
    prev = top(T0, [(100.00, 2.0)], [(100.02, 1.0)])
    # same bid price, qty 2 -> 3: +3 - 2; ask improves to 100.01 x 0.5: -0.5
    cur = top(T0 + 1, [(100.00, 3.0)], [(100.01, 0.5)])
    assert ofi_level1(prev, cur) == pytest.approx(0.5)
    # bid drops to 99.99 x 1: only -qb' = -2; ask unchanged: -1 + 1
    cur2 = top(T0 + 1, [(99.99, 1.0)], [(100.02, 1.0)])
    assert ofi_level1(prev, cur2) == pytest.approx(-2.0)
    # ask retreats to 100.03 x 7: +qa' = +1; bid improves to 100.01 x 4: +4
    cur3 = top(T0 + 1, [(100.01, 4.0)], [(100.03, 7.0)])
    assert ofi_level1(prev, cur3) == pytest.approx(5.0)
    assert ofi_pair(prev, cur3)[0] == ofi_level1(prev, cur3)


def test_ofi_multilevel_by_hand() -> None:
    prev = top(T0, [(100.00, 2.0), (99.99, 5.0)], [(100.02, 1.0), (100.03, 2.0)])
    cur = top(T0 + 1, [(100.00, 3.0), (99.98, 1.0)], [(100.02, 1.0), (100.03, 4.0)])
    # level 1: (3 - 2) - 1 + 1 = 1 ; level 2: bid falls (-5), ask same price (-4 + 2) -> -7
    assert ofi_multilevel(prev, cur) == pytest.approx(1.0 - 7.0)
    assert ofi_pair(prev, cur) == (pytest.approx(1.0), pytest.approx(-6.0))
    # a level missing on one side counts 0 for that side only
    thin = top(T0 + 2, [(100.00, 3.0)], [(100.02, 1.0), (100.03, 4.0)])
    assert ofi_multilevel(cur, thin) == pytest.approx(0.0)


def test_trade_windows_by_hand() -> None:
    c = Collector(lateness_ms=0)
    c.feed(
        BOOK,
        trade(T0 + S // 2, 100.0, 1.0, "buy"),
        trade(T0 + 30 * S, 101.0, 2.0, "sell"),
        trade(T0 + 61 * S, 102.0, 1.0, "buy"),
    )
    c.engine.finish()
    row = c.features()[T0 + 61 * S]
    # 1 minute window (T0 + 1 s, T0 + 61 s]: the trades at 30 s and 61 s
    assert row["vwap_1m"] == pytest.approx((202.0 + 102.0) / 3.0)
    assert row["buy_volume_1m"] == pytest.approx(1.0)
    assert row["sell_volume_1m"] == pytest.approx(2.0)
    assert row["flow_imbalance_1m"] == pytest.approx(-1 / 3)
    assert row["trade_count_1m"] == 2
    assert row["vwap_5m"] == pytest.approx((100.0 + 202.0 + 102.0) / 4.0)
    assert row["trade_intensity_10s"] == pytest.approx(0.1)
    # the trade at exactly T0 + 61 s is in (t − W, t] of t = T0 + 61 s, and left out before
    assert c.features()[T0 + 60 * S]["trade_count_1m"] == 2  # 0.5 s and 30 s
    assert c.features()[T0 + 60 * S]["vwap_1m"] == pytest.approx((100.0 + 202.0) / 3.0)


def test_no_trades_gives_null_ratios_and_zero_counts() -> None:
    c = Collector(lateness_ms=0)
    c.feed(BOOK, top(T0 + 3 * S, [(100.0, 1.0)], [(100.02, 1.0)]))
    c.engine.finish()
    row = c.features()[T0 + 2 * S]
    assert row["vwap_1m"] is None and row["vwap_5m"] is None
    assert row["flow_imbalance_1m"] is None and row["vwap_session"] is None
    assert row["trade_count_1m"] == 0 and row["buy_volume_1m"] == 0.0
    assert row["trade_intensity_10s"] == 0.0


def test_volatility_and_log_return_by_hand() -> None:
    c = Collector(lateness_ms=0)
    c.feed(
        top(T0, [(99.99, 1.0)], [(100.01, 1.0)]),  # mid 100 at T0
        top(T0 + S, [(100.99, 1.0)], [(101.01, 1.0)]),  # mid 101 at T0 + 1 s
        top(T0 + 2 * S, [(99.99, 1.0)], [(100.01, 1.0)]),  # mid 100 at T0 + 2 s
    )
    c.engine.finish()
    rows = c.features()
    assert rows[T0]["volatility_1m"] is None  # no return yet
    assert rows[T0]["log_return_1s"] is None
    assert rows[T0 + S]["log_return_1s"] == pytest.approx(math.log(1.01))
    r1, r2 = math.log(101 / 100), math.log(100 / 101)
    assert rows[T0 + 2 * S]["volatility_1m"] == pytest.approx(math.sqrt(r1 * r1 + r2 * r2))
    assert rows[T0 + 2 * S]["volatility_5m"] == pytest.approx(math.sqrt(r1 * r1 + r2 * r2))


def test_ofi_window_sums_depth_events_of_last_10s() -> None:
    c = Collector(lateness_ms=0)
    prev = top(T0, [(100.00, 2.0)], [(100.02, 1.0)])
    cur = top(T0 + 2 * S, [(100.00, 3.0)], [(100.01, 0.5)])  # e = +0.5
    later = top(T0 + 12 * S, [(100.00, 3.0)], [(100.01, 0.5)])  # e = 0
    c.feed(prev, cur, later)
    c.engine.finish()
    rows = c.features()
    assert rows[T0]["ofi_10s"] == 0.0  # first event of an epoch contributes nothing
    assert rows[T0 + 2 * S]["ofi_10s"] == pytest.approx(0.5)
    assert rows[T0 + 11 * S]["ofi_10s"] == pytest.approx(0.5)
    assert rows[T0 + 12 * S]["ofi_10s"] == 0.0  # the event at 2 s left (2 s, 12 s]


def test_ofi_restarts_at_new_sync_epoch() -> None:
    c = Collector(lateness_ms=0)
    a = top(T0, [(100.00, 2.0)], [(100.02, 1.0)], epoch=1)
    b = top(T0 + S, [(100.00, 9.0)], [(100.02, 1.0)], epoch=2)  # new epoch: no contribution
    c.feed(a, b)
    c.engine.finish()
    assert c.features()[T0 + S]["ofi_10s"] == 0.0


def test_session_vwap_resets_after_midnight() -> None:
    c = Collector(lateness_ms=0)
    c.feed(
        trade(T0 - 2 * S, 100.0, 1.0, "buy"),
        trade(T0 - S // 2, 102.0, 1.0, "buy"),
        trade(T0 + S // 2, 110.0, 1.0, "sell"),
        top(T0 + S, [], []),  # an event at T0 + 1 s, so that grid point is emitted
    )
    c.engine.finish()
    rows = c.features()
    assert rows[T0]["vwap_session"] == pytest.approx(101.0)  # midnight closes the day
    assert rows[T0 + S]["vwap_session"] == pytest.approx(110.0)


def test_sync_loss_invalidates_book_until_next_valid_top() -> None:
    c = Collector(lateness_ms=0)
    c.feed(BOOK, trade(T0 + S // 2, 100.0, 1.0, "buy"))
    c.feed(SyncStateChange(EX, SYM, T0, "gap", "test"))
    c.feed(trade(T0 + 3 * S + 1, 100.0, 1.0, "buy"))
    c.feed(top(T0 + 4 * S, [(100.0, 1.0)], [(100.02, 1.0)], epoch=2))
    c.engine.finish()
    rows = c.features()
    assert rows[T0]["book_valid"] is True
    for t in (T0 + S, T0 + 2 * S, T0 + 3 * S):
        assert rows[t]["book_valid"] is False
        assert rows[t]["mid"] is None and rows[t]["ofi_10s"] is None
        assert rows[t]["trade_count_1m"] >= 1  # trade features stay
    assert rows[T0 + 4 * S]["book_valid"] is True
    assert rows[T0 + 4 * S]["mid"] == pytest.approx(100.01)


def test_bars_by_hand() -> None:
    c = Collector(lateness_ms=0)
    m = T0 + 60 * S
    c.feed(
        trade(m + S, 100.0, 1.0, "buy"),
        trade(m + 2 * S, 103.0, 2.0, "sell"),
        trade(m + 3 * S, 99.0, 1.0, "buy"),
        trade(m + 4 * S, 101.0, 1.0, "sell"),
    )
    assert c.bars() == []
    c.feed(trade(m + 125 * S, 105.0, 1.0, "buy"))  # minute m + 2 min: closes bar m
    bars = c.bars()
    assert len(bars) == 1  # the empty minute m + 1 min emits nothing
    bar = bars[0]
    assert bar["ts"] == m
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (100.0, 103.0, 99.0, 101.0)
    assert bar["volume"] == pytest.approx(5.0)
    assert bar["buy_volume"] == pytest.approx(2.0)
    assert bar["sell_volume"] == pytest.approx(3.0)
    assert bar["vwap"] == pytest.approx((100.0 + 206.0 + 99.0 + 101.0) / 5.0)
    assert bar["trades"] == 4
    c.engine.finish()  # the last, partial bar
    assert [b["ts"] for b in c.bars()] == [m, m + 120 * S]
