"""End to end: live client -> parse -> book synchronizer against the loopback exchange.

A depth event left out of the stream must be detected as a gap, the book
resynced from a fresh REST snapshot, and the book afterwards must equal the
exchange's own book (CaptureFeed's reconstruction).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.events import BookSnapshot, DepthUpdate, SyncStateChange
from microstream.frames import RawFrame
from microstream.sim.capture_feed import CaptureFeed, ExchangeBook, MultiCaptureFeed
from microstream.sim.exchange import LoopbackExchange
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig
from microstream.venues.binance.parse import FrameDecoder, exchange_of
from waiting import until

pytestmark = pytest.mark.timeout(120)

CONFIG = LiveFeedConfig(ping_interval_s=0.5, backoff_base_s=0.05, backoff_cap_s=0.2)


class Pipeline:
    """The client side: frames -> events -> synchronizer, as the engine wires it."""

    def __init__(self, market: str, symbol: str, snapshot_limit: int) -> None:
        self.states: list[SyncStateChange] = []
        self.decoder = FrameDecoder()
        self.feed: BinanceLiveFeed | None = None
        self.limit = snapshot_limit
        self.sync = BookSynchronizer(
            exchange_of(market),
            symbol,
            ContinuityRule.for_market(market),
            on_state=self.states.append,
            request_snapshot=self._request,
        )

    def _request(self, symbol: str) -> None:
        assert self.feed is not None
        self.feed.request_snapshot(symbol, self.limit)

    def on_frame(self, frame: RawFrame) -> None:
        for event in self.decoder.decode(frame):
            if isinstance(event, DepthUpdate):
                self.sync.on_depth(event)
            elif isinstance(event, BookSnapshot):
                self.sync.on_snapshot(event)

    def on_reconnect(self, symbols: list[str]) -> None:
        self.sync.reset(time.time_ns(), "feed reconnected")

    def state_names(self) -> list[str]:
        return [s.state for s in self.states]


def book_levels(book: ExchangeBook, depth: int) -> tuple[list[tuple[float, float]], ...]:
    bids, asks = book.levels(depth)
    return tuple([(float(p), float(q)) for p, q in side] for side in (bids, asks))


async def run_gap_scenario(
    capture: list[Path], market: str, symbol: str, limit: int, compare_depth: int | None
) -> tuple[Pipeline, CaptureFeed, LoopbackExchange]:
    source = CaptureFeed(capture, speed=20.0, max_frames=9000)
    pipeline = Pipeline(market, symbol, limit)
    async with LoopbackExchange(source) as exchange:
        feed = BinanceLiveFeed(
            market,
            [symbol],
            pipeline.on_frame,
            ws_url=exchange.ws_url,
            rest_url=exchange.rest_url,
            on_reconnect=pipeline.on_reconnect,
            config=CONFIG,
        )
        pipeline.feed = feed
        async with feed:
            await until(lambda: pipeline.sync.is_synced)
            applied_before = pipeline.sync.applied
            await until(lambda: pipeline.sync.applied > applied_before + 20)
            exchange.skip_depth(1, symbol)
            await until(lambda: pipeline.sync.gaps == 1)
            await until(lambda: pipeline.sync.is_synced)
            await exchange.pump_done.wait()
            book = source.book(symbol)
            assert book is not None
            await until(lambda: pipeline.sync.last_update_id == book.last_update_id)
        assert exchange.injected["depth_skipped"] == 1
    depth = compare_depth
    expected = book_levels(book, depth if depth is not None else 10**6)
    got = (pipeline.sync.book.bids(depth), pipeline.sync.book.asks(depth))
    assert got == expected
    return pipeline, source, exchange


async def test_spot_gap_is_detected_resynced_and_book_equals_exchange(
    spot_capture: list[Path],
) -> None:
    # limit 5000 > the exchange book's depth: after the resync the whole book must match
    pipeline, _source, _ = await run_gap_scenario(spot_capture, "spot", "BTCUSDT", 5000, None)
    names = pipeline.state_names()
    assert names[0] == "buffering"
    assert names.count("synced") == 2
    gap_at = names.index("gap")
    assert names[gap_at + 1] == "resync" and "synced" in names[gap_at:]
    assert pipeline.sync.resyncs == 1
    assert pipeline.decoder.rejected == 0


async def test_usdm_gap_is_detected_and_resynced(usdm_capture: list[Path]) -> None:
    # futures chain by pu and cap snapshots at 1000 levels: compare the top 100
    pipeline, _, _ = await run_gap_scenario(usdm_capture, "usdm", "BTCUSDT", 1000, 100)
    names = pipeline.state_names()
    assert names.count("gap") == 1 and names.count("synced") == 2


async def test_two_symbols_on_one_connection_both_books_match(shared_data: Path) -> None:
    usdm = shared_data / "binance" / "usdm"
    sessions = [
        CaptureFeed([usdm / f"{sym}_20240718.gz", usdm / f"{sym}_20240719.gz"])
        for sym in ("btcusdt", "ethusdt")
    ]
    source = MultiCaptureFeed(sessions, speed=20.0, max_frames=8000)
    assert source.symbols == ["BTCUSDT", "ETHUSDT"]
    pipelines = {sym: Pipeline("usdm", sym, 1000) for sym in source.symbols}

    def on_frame(frame: RawFrame) -> None:
        for event in FrameDecoder().decode(frame):
            pipeline = pipelines[event.symbol]
            if isinstance(event, DepthUpdate):
                pipeline.sync.on_depth(event)
            elif isinstance(event, BookSnapshot):
                pipeline.sync.on_snapshot(event)

    async with LoopbackExchange(source) as exchange:
        feed = BinanceLiveFeed(
            "usdm",
            source.symbols,
            on_frame,
            ws_url=exchange.ws_url,
            rest_url=exchange.rest_url,
            streams=[f"{s}@{k}" for s in ("btcusdt", "ethusdt") for k in ("depth@0ms", "trade")],
            config=CONFIG,
        )
        for pipeline in pipelines.values():
            pipeline.feed = feed
        async with feed:
            await until(lambda: all(p.sync.is_synced for p in pipelines.values()))
            await exchange.pump_done.wait()
            books = {sym: source.book(sym) for sym in source.symbols}
            await until(
                lambda: all(
                    pipelines[s].sync.last_update_id == b.last_update_id  # type: ignore[union-attr]
                    for s, b in books.items()
                )
            )
        assert (
            len(exchange.state()["connections"]) == 0 and exchange.stats["connections_opened"] == 1
        )
    for sym, book in books.items():
        assert book is not None
        sync = pipelines[sym].sync
        assert (sync.book.bids(100), sync.book.asks(100)) == book_levels(book, 100)
        assert sync.gaps == 0


async def test_malformed_frames_are_counted_by_the_parser_and_the_book_stays_synced(
    spot_capture: list[Path],
) -> None:
    source = CaptureFeed(spot_capture, speed=20.0)
    pipeline = Pipeline("spot", "BTCUSDT", 1000)
    async with LoopbackExchange(source) as exchange:
        feed = BinanceLiveFeed(
            "spot",
            ["BTCUSDT"],
            pipeline.on_frame,
            ws_url=exchange.ws_url,
            rest_url=exchange.rest_url,
            config=CONFIG,
        )
        pipeline.feed = feed
        async with feed:
            await until(lambda: pipeline.sync.is_synced)
            exchange.send_malformed(4)
            await until(lambda: pipeline.decoder.rejected == 4)
            applied = pipeline.sync.applied
            await until(lambda: pipeline.sync.applied > applied + 10)
        assert feed.stats.reconnects == 0
    assert pipeline.decoder.counts["invalid"] == 2  # NaN price, negative quantity
    assert pipeline.sync.is_synced and pipeline.sync.gaps == 0
