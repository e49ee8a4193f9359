"""FeatureEngine behaviour: grid emission, ordering, lateness, end of stream, live state."""

from __future__ import annotations

import math
from typing import Any

import pytest
from test_features_formulas import BOOK, EX, SYM, T0, Collector, top, trade

from microstream.bus.protocol import Row
from microstream.events import BookTop, Trade
from microstream.features.bars import BarBuilder
from microstream.features.schema import FEATURE_COLUMNS
from microstream.features.windows import SnapshotRing

S = 1_000_000_000
MS = 1_000_000


def feature_ts(rows: list[Row]) -> list[int]:
    return [r.values["ts"] for r in rows if r.table == "features"]


def test_grid_point_emitted_when_a_later_event_arrives() -> None:
    c = Collector(lateness_ms=0)
    c.feed(trade(T0 + 300 * MS, 100.0, 1.0, "buy"))
    assert feature_ts(c.rows) == []  # grid starts at T0 + 1 s, nothing after it yet
    c.feed(trade(T0 + S, 100.0, 1.0, "buy"))
    assert feature_ts(c.rows) == []  # an event AT t does not close t
    c.feed(trade(T0 + 3 * S + 1, 100.0, 1.0, "buy"))
    assert feature_ts(c.rows) == [T0 + S, T0 + 2 * S, T0 + 3 * S]  # gaps filled in order
    row = c.rows[0].values
    assert list(row) == list(FEATURE_COLUMNS)
    assert row["trade_count_1m"] == 2


def test_grid_starts_at_first_grid_point_at_or_after_first_event() -> None:
    c = Collector(lateness_ms=0, grid_ms=500)
    c.feed(BOOK, trade(T0 + 1200 * MS, 100.0, 1.0, "buy"))
    c.engine.finish()
    assert feature_ts(c.rows) == [T0, T0 + 500 * MS, T0 + 1000 * MS]


def test_lateness_reorders_events_within_the_allowance() -> None:
    in_order = [
        BOOK,
        trade(T0 + 900 * MS, 100.0, 1.0, "buy"),
        top(T0 + 1100 * MS, [(100.0, 5.0)], [(100.02, 1.0)]),
        trade(T0 + 2500 * MS, 101.0, 1.0, "sell"),
    ]
    shuffled = [in_order[0], in_order[2], in_order[1], in_order[3]]  # trade 200 ms late
    a, b = Collector(lateness_ms=250), Collector(lateness_ms=250)
    a.feed(*in_order)
    b.feed(*shuffled)
    a.engine.finish()
    b.engine.finish()
    assert [r.values for r in a.rows] == [r.values for r in b.rows]
    assert b.engine.late_events == 0
    assert b.features()[T0 + S]["trade_count_1m"] == 1
    assert b.features()[T0 + S]["imbalance_l1"] == pytest.approx(1 / 3)  # new top is at 1.1 s
    assert b.features()[T0 + 2 * S]["imbalance_l1"] == pytest.approx(4 / 6)


def test_event_later_than_the_allowance_is_counted_not_fatal() -> None:
    c = Collector(lateness_ms=0)
    c.feed(BOOK, trade(T0 + 2 * S + 1, 100.0, 1.0, "buy"))
    c.feed(trade(T0 + S // 2, 99.0, 1.0, "sell"))  # older than an emitted grid point
    c.engine.finish()
    assert c.engine.late_events == 1
    assert c.features()[T0 + S]["trade_count_1m"] == 0  # already emitted without it
    assert c.engine.bars.late_trades == 0  # its minute is still open


def test_finish_emits_complete_grid_points_and_partial_bar() -> None:
    c = Collector()
    c.feed(BOOK, trade(T0 + 2 * S, 100.0, 1.0, "buy"), trade(T0 + 2100 * MS, 101.0, 1.0, "buy"))
    # watermark = 2.1 s − 250 ms lateness: T0 + 2 s is not complete yet
    assert feature_ts(c.rows) == [T0, T0 + S]
    c.engine.finish()
    assert feature_ts(c.rows) == [T0, T0 + S, T0 + 2 * S]  # not T0 + 3 s: no event reached it
    bars = [r.values for r in c.rows if r.table == "bars_1m"]
    assert len(bars) == 1 and bars[0]["trades"] == 2 and bars[0]["ts"] == T0


def test_finish_without_events_emits_nothing() -> None:
    c = Collector()
    c.engine.finish()
    assert c.rows == []


def test_bad_trades_are_counted_and_skipped() -> None:
    c = Collector(lateness_ms=0)
    c.feed(
        BOOK,
        trade(T0 + 100 * MS, math.nan, 1.0, "buy"),
        trade(T0 + 200 * MS, 100.0, 0.0, "buy"),
        trade(T0 + 300 * MS, 100.0, -1.0, "sell"),
        trade(T0 + 400 * MS, math.inf, 1.0, "sell"),
        Trade(EX, SYM, T0 + 500 * MS, 0, 9, 100.0, 1.0, "hold"),  # type: ignore[arg-type]
        trade(T0 + 600 * MS, 100.0, 1.0, "sell"),
    )
    c.engine.finish()
    assert c.engine.rejected == 5
    c.feed(trade(T0 + 2 * S, 100.0, 1.0, "sell"))


def test_short_level_tuples_are_padded() -> None:
    c = Collector(lateness_ms=0)
    short = BookTop(EX, SYM, T0, T0, 1, (100.0,), (2.0,), (100.02,), (1.0,), True, 1)
    c.feed(short, top(T0 + S, [(100.0, 3.0)], [(100.02, 1.0)]))
    c.engine.finish()
    assert c.features()[T0 + S]["ofi_10s"] == pytest.approx(1.0)


def test_invalid_settings_raise() -> None:
    with pytest.raises(ValueError):
        Collector(grid_ms=1)
    with pytest.raises(ValueError):
        Collector(lateness_ms=-5)


def test_live_state_has_features_bar_and_book() -> None:
    c = Collector(lateness_ms=0)
    c.feed(
        BOOK, trade(T0 + 1500 * MS, 100.0, 1.0, "buy"), trade(T0 + 2100 * MS, 100.5, 2.0, "sell")
    )
    state: dict[str, Any] = c.engine.live_state()
    assert state["features_ts"] == T0 + 2 * S
    assert state["features"]["mid"] == pytest.approx(100.01)
    assert state["features"]["trade_count_1m"] == 1
    assert state["bar"]["trades"] == 2 and state["bar"]["close"] == 100.5
    assert state["book"]["bids"][0] == [100.0, 2.0]
    assert state["counters"]["events"] == 3


def test_bar_builder_close_until_late_and_forming() -> None:
    rows: list[Row] = []
    bars = BarBuilder(EX, SYM, rows.append)
    assert bars.forming_bar() is None
    bars.add(T0 + S, 100.0, 1.0, True)
    forming = bars.forming_bar()
    assert forming is not None and forming["ts"] == T0 and forming["vwap"] == 100.0
    bars.close_until(T0 + 59 * S)
    assert rows == []
    bars.close_until(T0 + 60 * S)
    assert [r.values["ts"] for r in rows] == [T0]
    assert rows[0].table == "bars_1m"
    assert bars.add(T0 + 30 * S, 100.0, 1.0, False) is False  # its minute is closed
    assert bars.late_trades == 1
    bars.finish()
    assert len(rows) == 1


def test_snapshot_ring() -> None:
    ring: SnapshotRing[int] = SnapshotRing(3, 0)
    assert ring.at(10) == 0
    for k in range(10, 15):
        ring.record(k, k * 100)
    assert ring.at(9) == 0  # before the first boundary: empty
    assert ring.at(14) == 1400 and ring.at(12) == 1200
    with pytest.raises(IndexError):
        ring.at(11)  # overwritten
    with pytest.raises(ValueError):
        SnapshotRing(0, 0)


def test_long_silence_restarts_the_grid_instead_of_filling_it() -> None:
    c = Collector(lateness_ms=0)
    later = T0 + 3 * 86_400 * S  # a second session three days later, same symbol
    c.feed(BOOK, trade(T0 + 1500 * MS, 100.0, 1.0, "buy"))
    c.feed(trade(later + 200 * MS, 101.0, 1.0, "sell"), trade(later + 2 * S, 101.0, 1.0, "sell"))
    c.engine.finish()
    assert c.engine.segments == 1
    assert feature_ts(c.rows) == [T0, T0 + S, later + S, later + 2 * S]
    row = c.features()[later + S]
    assert row["book_valid"] is False  # the old book is not carried over
    assert row["trade_count_1m"] == 1 and row["vwap_session"] == 101.0
    assert [b["ts"] for b in c.bars()] == [T0, later]
    c.feed(trade(T0 + 2 * S, 100.0, 1.0, "buy"))  # a straggler of the old session
    assert c.engine.late_events == 1


def test_max_gap_must_cover_a_minute() -> None:
    with pytest.raises(ValueError):
        Collector(max_gap_s=10)
