"""The per-symbol pipeline: rows it emits, duplicates it drops, resyncs it performs."""

from __future__ import annotations

import logging

import pytest

from microstream.bus.protocol import Row
from microstream.counted import should_log
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import BookSnapshot, DepthUpdate, Trade


def make() -> tuple[SymbolPipeline, list[Row]]:
    rows: list[Row] = []
    pipe = SymbolPipeline("binance", "BTCUSDT", rows.append, PipelineOptions(features=False))
    return pipe, rows


def trade(trade_id: int, ts: int) -> Trade:
    return Trade("binance", "BTCUSDT", ts, ts, trade_id, 100.0, 1.0, "buy")


def test_duplicate_trades_are_dropped_but_a_restarted_source_is_not() -> None:
    pipe, rows = make()
    for t in (trade(10, 1_000), trade(11, 2_000), trade(11, 2_000), trade(10, 1_000)):
        pipe.on_event(t)
    assert pipe.stats.trades == 2 and pipe.stats.duplicate_trades == 2
    pipe.on_event(trade(1, 5_000))  # ids restart while exchange time moves on
    assert pipe.stats.trades == 3
    assert [r.values["trade_id"] for r in rows if r.table == "trades"] == [10, 11, 1]


def test_book_rows_and_sync_rows() -> None:
    pipe, rows = make()
    pipe.on_event(DepthUpdate("binance", "BTCUSDT", 5, 5, 8, 12, None, ((99.0, 2.0),), ()))
    pipe.on_event(BookSnapshot("binance", "BTCUSDT", None, 6, 10, ((99.0, 1.0),), ((101.0, 1.0),)))
    pipe.on_event(DepthUpdate("binance", "BTCUSDT", 7, 7, 13, 13, None, (), ((100.5, 3.0),)))
    book = [r.values for r in rows if r.table == "book_top"]
    assert [b["update_id"] for b in book] == [12, 13]
    assert (book[1]["bid_px_1"], book[1]["bid_qty_1"]) == (99.0, 2.0)
    assert (book[1]["ask_px_1"], book[1]["ask_qty_1"]) == (100.5, 3.0)
    assert book[1]["ask_px_2"] == 101.0 and book[1]["ask_px_3"] is None
    assert all(b["book_valid"] for b in book)
    pipe.resync(8, "feed reconnected")
    states = [r.values["state"] for r in rows if r.table == "book_sync"]
    assert states == ["buffering", "synced", "resync"]
    assert not pipe.sync.is_synced and pipe.sync.book.best_bid() is None


def test_duplicate_trades_are_logged_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    pipe, _ = make()
    pipe.on_event(trade(10, 1_000))
    with caplog.at_level(logging.WARNING, logger="microstream.engine"):
        pipe.on_event(trade(10, 1_000))
    assert "trade 10 already seen" in caplog.text and "1 so far" in caplog.text
    assert pipe.live_state()["stats"]["duplicate_trades"] == 1


def test_repeated_and_older_depth_updates_are_counted_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pipe, rows = make()
    pipe.on_event(BookSnapshot("binance", "BTCUSDT", None, 1, 10, ((99.0, 1.0),), ((101.0, 1.0),)))
    pipe.on_event(DepthUpdate("binance", "BTCUSDT", 5, 5, 11, 12, None, ((99.0, 2.0),), ()))
    with caplog.at_level(logging.WARNING, logger="microstream.book.sync"):
        # the same diff again, then an older one: neither may touch the book
        pipe.on_event(DepthUpdate("binance", "BTCUSDT", 6, 6, 11, 12, None, ((99.0, 7.0),), ()))
        pipe.on_event(DepthUpdate("binance", "BTCUSDT", 7, 7, 9, 10, None, ((99.0, 8.0),), ()))
    assert pipe.sync.book.best_bid() == (99.0, 2.0)
    assert pipe.sync.is_synced and pipe.sync.gaps == 0
    assert [r.values["update_id"] for r in rows if r.table == "book_top"] == [12]
    assert caplog.text.count("already applied") == 2 and "2 so far" in caplog.text
    assert pipe.live_state()["duplicate_depth_updates"] == 2


def test_only_the_first_rejections_and_then_every_thousandth_are_logged() -> None:
    logged = [n for n in range(1, 5_001) if should_log(n)]
    assert logged == [*range(1, 11), 1_000, 2_000, 3_000, 4_000, 5_000]


def agg_trade(agg_id: int, first: int, last: int, ts: int) -> Trade:
    return Trade("binance", "BTCUSDT", ts, ts, agg_id, 100.0, 1.0, "buy", True, first, last)


def test_raw_trades_win_over_aggregates_of_the_same_symbol_without_double_counting() -> None:
    pipe, rows = make()
    pipe.on_event(agg_trade(500, 10, 12, 1_000))  # raw trades 10..12, before raw ones arrive
    pipe.on_event(trade(11, 1_000))  # already inside the aggregate
    pipe.on_event(trade(12, 1_000))  # likewise
    pipe.on_event(trade(13, 2_000))
    pipe.on_event(agg_trade(501, 13, 14, 2_500))  # raw trades are the record now
    pipe.on_event(trade(14, 2_500))
    kept = [(r.values["trade_id"], r.values["is_aggregate"]) for r in rows if r.table == "trades"]
    assert kept == [(500, True), (13, False), (14, False)]
    assert pipe.stats.duplicate_trades == 2 and pipe.stats.aggregate_trades_skipped == 1


def test_an_aggregate_only_feed_is_kept_whole() -> None:
    pipe, rows = make()
    for i in range(5):
        pipe.on_event(agg_trade(100 + i, 10 * i, 10 * i + 9, 1_000 * (i + 1)))
    assert [r.values["trade_id"] for r in rows if r.table == "trades"] == [100, 101, 102, 103, 104]
    assert pipe.stats.duplicate_trades == 0 and pipe.stats.aggregate_trades_skipped == 0
