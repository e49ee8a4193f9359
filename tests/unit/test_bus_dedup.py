"""De-duplication of replayed events and rows in bounded memory."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from microstream.bus.dedup import EventDedup, SeenWindow, row_ident
from microstream.bus.protocol import Row
from microstream.events import BookSnapshot, DepthUpdate, Trade

EX = "binance-futures"


def trade(trade_id: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(EX, symbol, 1, 2, trade_id, 100.0, 1.0, "buy")


def depth(u: int) -> DepthUpdate:
    return DepthUpdate(EX, "BTCUSDT", 1, 2, u - 1, u, u - 2, (), ())


def test_replayed_trades_and_depth_are_dropped_per_symbol() -> None:
    dedup = EventDedup()
    first = [trade(i) for i in range(10)] + [depth(u) for u in range(100, 110)]
    assert all(dedup.accept(m) for m in first)
    assert not any(dedup.accept(m) for m in first)
    assert dedup.accept(trade(5, "ETHUSDT"))  # another symbol's stream
    assert dedup.duplicates == {"trade": 10, "depth": 10}


def test_snapshots_always_pass() -> None:
    dedup = EventDedup()
    snap = BookSnapshot(EX, "BTCUSDT", None, 1, 5, (), ())
    assert dedup.accept(snap) and dedup.accept(snap)


def test_rows_are_keyed_by_table_symbol_and_ts() -> None:
    dedup = EventDedup()
    bar = Row("bars_1m", EX, "BTCUSDT", {"ts": 60, "close": 1.0})
    assert dedup.accept(bar)
    assert not dedup.accept(Row("bars_1m", EX, "BTCUSDT", {"ts": 60, "close": 2.0}))
    assert dedup.accept(Row("features", EX, "BTCUSDT", {"ts": 60}))
    assert dedup.accept(Row("bars_1m", EX, "ETHUSDT", {"ts": 60}))
    pred = Row("predictions", EX, "BTCUSDT", {"ts": 60, "horizon_s": 10, "model": "m"})
    assert row_ident(pred) == (60, 10, "m")
    assert dedup.duplicates == {"row:bars_1m": 1}


def test_memory_is_bounded_and_old_ids_stay_duplicates() -> None:
    window = SeenWindow(window=8)
    for i in range(1000):
        assert window.add(i)
    assert len(window) == 8
    assert not window.add(3)  # below the floor
    assert not window.add(999)
    assert window.add(1000)


@given(st.lists(st.integers(min_value=0, max_value=200), max_size=300))
def test_window_never_accepts_an_id_twice(ids: list[int]) -> None:
    window = SeenWindow(window=16)
    accepted = [i for i in ids if window.add(i)]
    assert len(accepted) == len(set(accepted))
    # increasing ids are never lost
    fresh = SeenWindow(window=16)
    assert all(fresh.add(i) for i in sorted(set(ids)))


def test_a_source_that_restarts_its_ids_is_not_taken_for_a_replay() -> None:
    dedup = EventDedup()

    def at(trade_id: int, ts: int) -> Trade:
        return Trade(EX, "BTCUSDT", ts, ts, trade_id, 100.0, 1.0, "buy")

    assert all(dedup.accept(at(i, 1000 + i)) for i in range(50))
    assert not dedup.accept(at(10, 1010))  # a replay: same id, same exchange time
    # a restarted simulator: ids from 0 again, exchange time moving on
    assert dedup.accept(at(0, 5000))
    assert dedup.accept(at(1, 5001))
    assert not dedup.accept(at(1, 5001))
    assert dedup.resets == 1
    assert dedup.duplicates == {"trade": 2}
