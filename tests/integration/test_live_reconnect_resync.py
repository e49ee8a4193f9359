"""A dropped connection reconnects AND resyncs the book, through the product's own wiring.

The pieces are the ones ``microstream run`` uses: the live client's
``on_reconnect`` hook goes to :meth:`LiveRun._resync`, the engine's snapshot
requests go to the client's REST snapshot, and the rows come off the bus.
After the drop the book must be discarded (``resync``), synced again from a
fresh snapshot, and end equal to the loopback exchange's own book.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Row, Topics
from microstream.engine import Engine, Ingestor, PipelineOptions
from microstream.run import LiveRun, Reconnected
from microstream.sim.capture_feed import CaptureFeed
from microstream.sim.exchange import LoopbackExchange
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig
from waiting import until

pytestmark = pytest.mark.timeout(120)

CONFIG = LiveFeedConfig(
    ping_interval_s=0.5, backoff_base_s=0.05, backoff_cap_s=0.2, snapshot_limit=5000
)


async def test_dropped_connection_reconnects_resyncs_and_book_equals_exchange(
    spot_capture: list[Path],
) -> None:
    source = CaptureFeed(spot_capture, speed=20.0, max_frames=9000)
    bus = MemoryBus()
    rows: list[Row] = []
    bus.subscribe(Topics.ROWS, lambda _key, row: rows.append(row))
    ingest = Ingestor(bus)
    feeds: list[BinanceLiveFeed] = []

    def request_snapshot(_exchange: str, symbol: str) -> None:
        feeds[0].request_snapshot(symbol)  # what FeedThread.request_snapshot does

    engine = Engine(bus, PipelineOptions(features=False), request_snapshot=request_snapshot)

    def states() -> list[str]:
        return [r.values["state"] for r in rows if r.table == "book_sync"]

    async with LoopbackExchange(source) as exchange:
        feed = BinanceLiveFeed(
            "spot",
            ["BTCUSDT"],
            ingest.on_frame,
            ws_url=exchange.ws_url,
            rest_url=exchange.rest_url,
            on_reconnect=lambda symbols: LiveRun._resync(engine, Reconnected(tuple(symbols))),
            config=CONFIG,
        )
        feeds.append(feed)
        async with feed:
            await until(lambda: "binance:BTCUSDT" in engine.pipelines)
            pipe = engine.pipelines["binance:BTCUSDT"]
            await until(lambda: pipe.sync.is_synced)
            applied = pipe.sync.applied
            await until(lambda: pipe.sync.applied > applied + 20)
            assert exchange.drop_connections() == 1
            await until(lambda: feed.stats.reconnects == 1)
            await until(lambda: states().count("synced") == 2)
            await exchange.pump_done.wait()
            book = source.book("BTCUSDT")
            assert book is not None
            await until(lambda: pipe.sync.last_update_id == book.last_update_id)
        assert exchange.injected["drop_connections"] == 1
        assert exchange.stats["connections_opened"] == 2

    assert states() == ["buffering", "synced", "resync", "synced"]
    [resync] = [r for r in rows if r.table == "book_sync" and r.values["state"] == "resync"]
    assert "reconnected" in resync.values["detail"]
    assert pipe.sync.resyncs == 1 and pipe.sync.gaps == 0
    assert feed.stats.snapshots_delivered == 2

    bids, asks = book.levels(10**6)  # the whole exchange book (snapshots of 5000 levels)
    expected = ([(float(p), float(q)) for p, q in bids], [(float(p), float(q)) for p, q in asks])
    assert (pipe.sync.book.bids(None), pipe.sync.book.asks(None)) == expected

    book_top = [r.values for r in rows if r.table == "book_top"]
    epochs = {v["sync_epoch"] for v in book_top}
    assert epochs == {1, 2} and all(v["book_valid"] for v in book_top)
    trade_ids = [r.values["trade_id"] for r in rows if r.table == "trades"]
    assert trade_ids and len(trade_ids) == len(set(trade_ids)), "a trade was emitted twice"
