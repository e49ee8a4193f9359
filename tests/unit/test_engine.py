"""The per-symbol pipeline: rows it emits, duplicates it drops, resyncs it performs."""

from __future__ import annotations

from microstream.bus.protocol import Row
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
