"""LiveStateStore: bounded buffers, history queries, live values, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Row, Topics
from microstream.live_state import (
    DepthSample,
    LiveStateConfig,
    LiveStateStore,
    bin_heatmap,
    row_time,
)

NS = 1_000_000_000


def small_store(**kw: int) -> LiveStateStore:
    maxlen = {"trades": 10, "features": 5, "book_top": 5, "book_sync": 3}
    return LiveStateStore(LiveStateConfig(maxlen=maxlen, **kw))


def feature(ts: int, mid: float = 100.0) -> Row:
    return Row("features", "binance", "BTCUSDT", {"ts": ts, "mid": mid})


def book_top(ts: int, mid: float = 100.0) -> Row:
    values: dict[str, object] = {"ts_event": ts, "ts_recv": ts + 1}
    for i in range(1, 6):
        values[f"bid_px_{i}"] = mid - i
        values[f"bid_qty_{i}"] = float(i)
        values[f"ask_px_{i}"] = mid + i
        values[f"ask_qty_{i}"] = float(i)
    return Row("book_top", "binance", "BTCUSDT", values)


def test_ring_buffers_keep_only_the_most_recent_rows() -> None:
    store = small_store()
    for i in range(1000):
        store.add_row(feature(i * NS, 100.0 + i))
    rows = store.history("binance", "BTCUSDT", "features")
    assert [r["ts"] for r in rows] == [i * NS for i in range(995, 1000)]
    assert store.counts("binance", "BTCUSDT")["features"] == 5
    assert store.rows_by_table["features"] == 1000


def test_history_since_and_limit_are_oldest_first() -> None:
    store = small_store()
    for i in range(5):
        store.add_row(feature(i * NS))
    since = store.history("binance", "BTCUSDT", "features", since=2 * NS)
    assert [r["ts"] for r in since] == [3 * NS, 4 * NS]
    limited = store.history("binance", "BTCUSDT", "features", limit=2)
    assert [r["ts"] for r in limited] == [3 * NS, 4 * NS]
    assert store.history("binance", "BTCUSDT", "features", limit=0) == []
    assert store.history("binance", "BTCUSDT", "nope") == []
    assert store.history("binance", "ETHUSDT", "features") == []


def test_history_returns_copies() -> None:
    store = small_store()
    store.add_row(feature(NS, 1.0))
    store.history("binance", "BTCUSDT", "features")[0]["mid"] = 99.0
    assert store.latest("binance", "BTCUSDT")["features"] == {"ts": NS, "mid": 1.0}


def test_unknown_tables_and_non_rows_are_counted_not_stored() -> None:
    store = small_store()
    store.add_row(Row("elsewhere", "binance", "BTCUSDT", {"ts": 1}))
    store.on_message("binance:BTCUSDT", {"not": "a row"})
    assert store.rows_ignored == 1
    assert store.rows_rejected == 1
    assert store.symbols() == []


def test_attach_subscribes_to_rows_topic() -> None:
    bus = MemoryBus()
    store = small_store()
    store.attach(bus)
    bus.publish(Topics.ROWS, "binance:BTCUSDT", feature(5 * NS))
    bus.publish(Topics.TRADES, "binance:BTCUSDT", feature(6 * NS))
    assert store.symbols() == [("binance", "BTCUSDT")]
    assert store.latest("binance", "BTCUSDT")["features"] == {"ts": 5 * NS, "mid": 100.0}


def test_latest_has_every_table_and_none_where_empty() -> None:
    store = small_store()
    store.add_row(feature(NS))
    latest = store.latest("binance", "BTCUSDT")
    assert set(latest) == {"trades", "features", "book_top", "book_sync"}
    assert latest["trades"] is None
    assert store.latest("binance", "NOPE") == {}


def test_depth_is_cut_and_cleaned_and_falls_back_to_book_top() -> None:
    store = small_store(max_depth_levels=3)
    store.add_row(book_top(NS))
    fallback = store.depth("binance", "BTCUSDT")
    assert fallback is not None
    assert fallback["bids"][0] == [99.0, 1.0] and len(fallback["asks"]) == 5
    bids = [[100.0 - i, 1.0] for i in range(10)] + [[float("nan"), 1.0]]
    store.set_live("binance", "BTCUSDT", "depth", {"ts": 2 * NS, "bids": bids, "asks": []})
    depth = store.depth("binance", "BTCUSDT")
    assert depth == {"ts": 2 * NS, "bids": [[100.0, 1.0], [99.0, 1.0], [98.0, 1.0]], "asks": []}
    assert "depth" not in store.live("binance", "BTCUSDT", include_depth=False)


def test_heatmap_is_sampled_by_data_time_and_bounded() -> None:
    store = small_store(heatmap_snapshots=4, heatmap_interval_ns=NS)
    for i in range(40):  # 4 ladders a second for 10 seconds
        ts = i * NS // 4
        ladder = {"ts": ts, "bids": [[99.0, 1.0]], "asks": [[101.0, 2.0]]}
        store.set_live("binance", "BTCUSDT", "depth", ladder)
    samples = store.heatmap_samples("binance", "BTCUSDT")
    assert [s.ts for s in samples] == [6 * NS, 7 * NS, 8 * NS, 9 * NS]
    assert len(store.heatmap_samples("binance", "BTCUSDT", limit=2)) == 2


def test_book_top_feeds_heatmap_only_without_full_depth() -> None:
    store = small_store(heatmap_interval_ns=NS)
    store.add_row(book_top(0))
    store.add_row(book_top(2 * NS))
    assert len(store.heatmap_samples("binance", "BTCUSDT")) == 2
    store.set_live("binance", "BTCUSDT", "depth", {"ts": 4 * NS, "bids": [], "asks": []})
    store.add_row(book_top(6 * NS))
    assert [s.ts for s in store.heatmap_samples("binance", "BTCUSDT")] == [0, 2 * NS, 4 * NS]


def test_live_keys_are_bounded() -> None:
    store = small_store(max_live_keys=2)
    store.set_live("binance", "BTCUSDT", "a", 1)
    store.set_live("binance", "BTCUSDT", "b", 2)
    store.set_live("binance", "BTCUSDT", "c", 3)
    store.set_live("binance", "BTCUSDT", "a", 4)
    assert store.live("binance", "BTCUSDT") == {"a": 4, "b": 2}
    assert store.rows_rejected == 1


def test_health_merges_provider_and_survives_its_failure() -> None:
    store = LiveStateStore(source="sim", simulated=True)
    assert store.health()["status"] == "degraded"  # no rows yet
    store.add_row(feature(NS))
    assert store.health()["status"] == "ok"
    store.set_health_provider(lambda: {"status": "down", "dropped": 3})
    doc = store.health()
    assert doc["status"] == "down" and doc["dropped"] == 3 and doc["simulated"] is True

    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    store.set_health_provider(broken)
    doc = store.health()
    assert doc["status"] == "degraded" and "boom" in doc["health_error"]


def test_row_time_uses_each_tables_time_column() -> None:
    assert row_time("trades", {"ts_event": 5, "ts_recv": 6}) == 5
    assert row_time("book_sync", {"ts_recv": 7}) == 7
    assert row_time("features", {"ts": 8}) == 8
    assert row_time("features", {"ts": "x"}) is None


def test_concurrent_writers_and_readers() -> None:
    store = LiveStateStore(LiveStateConfig(maxlen={"trades": 100, "features": 50}))
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(symbol: str) -> None:
        try:
            for i in range(3000):
                store.add_row(Row("trades", "binance", symbol, {"ts_event": i, "qty": 1.0}))
                store.add_row(Row("features", "binance", symbol, {"ts": i}))
                if i % 10 == 0:
                    ladder = {"ts": i * NS, "bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]}
                    store.set_live("binance", symbol, "depth", ladder)
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            while not stop.is_set():
                for exchange, symbol in store.symbols():
                    rows = store.history(exchange, symbol, "trades", since=10, limit=50)
                    assert len(rows) <= 50
                    assert rows == sorted(rows, key=lambda r: r["ts_event"])
                    store.latest(exchange, symbol)
                    store.heatmap_samples(exchange, symbol)
                    store.depth(exchange, symbol)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(s,)) for s in ("BTCUSDT", "ETHUSDT")]
    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert store.counts("binance", symbol) == {"trades": 100, "features": 50}
        last = store.history("binance", symbol, "trades")
        assert [r["ts_event"] for r in last] == list(range(2900, 3000))
    assert store.rows_by_table == {"trades": 6000, "features": 6000}


def test_bin_heatmap_conserves_size_and_marks_uncovered_cells() -> None:
    samples = [
        DepthSample(0, np.array([[99.0, 1.0], [98.0, 2.0]]), np.array([[101.0, 3.0]])),
        DepthSample(NS, np.array([[109.0, 4.0]]), np.array([[111.0, 5.0]])),
    ]
    heat = bin_heatmap(samples, bins=13)
    assert heat["ts"] == [0, NS]
    assert len(heat["prices"]) == 13 and len(heat["z"]) == 13
    column0 = [row[0] for row in heat["z"]]
    column1 = [row[1] for row in heat["z"]]
    assert sum(v for v in column0 if v is not None) == pytest.approx(6.0)
    assert sum(v for v in column1 if v is not None) == pytest.approx(9.0)
    assert column0[-1] is None and column1[0] is None  # outside each ladder's span
    assert heat["mid"] == [100.0, 110.0]
    assert bin_heatmap([], 10)["z"] == []


def test_memory_stays_bounded_over_a_long_run() -> None:
    from microstream.dashboard.synthetic import SyntheticFeed

    store = LiveStateStore(
        LiveStateConfig(maxlen={"trades": 50, "features": 20, "bars_1m": 5}, heatmap_snapshots=10)
    )
    feed = SyntheticFeed(store, seed=3, start_ns=0)
    feed.backfill(400)
    counts = store.counts("binance", "BTCUSDT")
    assert counts == {"trades": 50, "features": 20, "bars_1m": 5}
    assert len(store.heatmap_samples("binance", "BTCUSDT")) == 10
    assert store.rows_ignored > 0  # tables not configured are counted, not kept


def test_update_from_engine_maps_engine_live_state() -> None:
    store = LiveStateStore()
    states = {
        "binance:BTCUSDT": {
            "book_state": "synced",
            "book_valid": True,
            "gaps": 0,
            "resyncs": 1,
            "bids": [(99.0, 1.0), (98.0, 2.0)],
            "asks": [(101.0, 1.5)],
            "features": {"ts": 5 * NS, "bar": {"ts": 0, "open": 1.0}, "features": {"mid": 100.0}},
            "models": {
                "scorecard": {"total": {}},
                "models": {"forecast": "v1"},
                "warmup": {"forecast": 0.5},
            },
        },
        "garbage": {"bids": []},
    }
    store.update_from_engine(states)
    live = store.live("binance", "BTCUSDT")
    assert live["depth"] == {
        "ts": 5 * NS,
        "bids": [[99.0, 1.0], [98.0, 2.0]],
        "asks": [[101.0, 1.5]],
    }
    assert live["book"] == {"book_state": "synced", "book_valid": True, "gaps": 0, "resyncs": 1}
    assert live["forming_bar"] == {"ts": 0, "open": 1.0}
    assert live["features_live"] == {"mid": 100.0}
    assert live["model"] == {"forecast": "v1"}
    assert live["warmup"] == {"forecast": 0.5}
    assert store.symbols() == [("binance", "BTCUSDT")]
    assert len(store.heatmap_samples("binance", "BTCUSDT")) == 1
