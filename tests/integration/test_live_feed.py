"""The live Binance client against the loopback exchange replaying the real spot capture."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from microstream.frames import RawFrame
from microstream.sim.capture_feed import CaptureFeed
from microstream.sim.exchange import LoopbackExchange
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig
from waiting import until

pytestmark = pytest.mark.timeout(90)

FAST = LiveFeedConfig(
    ping_interval_s=0.2,
    watchdog_s=1.5,
    backoff_base_s=0.05,
    backoff_cap_s=0.2,
    stable_s=1.0,
    overlap_timeout_s=2.0,
)


class Collector:
    """Collects what the feed delivers."""

    def __init__(self) -> None:
        self.frames: list[RawFrame] = []
        self.reconnects: list[list[str]] = []

    def __call__(self, frame: RawFrame) -> None:
        self.frames.append(frame)

    def on_reconnect(self, symbols: list[str]) -> None:
        self.reconnects.append(symbols)

    @property
    def snapshots(self) -> list[RawFrame]:
        return [f for f in self.frames if f.symbol is not None]

    def decoded(self) -> list[dict[str, Any]]:
        out = []
        for frame in self.frames:
            if frame.symbol is not None:
                continue
            try:
                out.append(msgspec.json.decode(frame.payload))
            except msgspec.DecodeError:
                continue
        return out

    def keys(self) -> list[tuple[str, int]]:
        return [(v["stream"], _key(v["data"])) for v in self.decoded() if "stream" in v]


def _key(data: dict[str, Any]) -> int:
    return int(data["t"]) if "t" in data else int(data["u"])


@pytest.fixture
async def exchange(spot_capture: list[Path]) -> AsyncIterator[LoopbackExchange]:
    async with LoopbackExchange(CaptureFeed(spot_capture, speed=20.0), ping_interval_s=0.3) as ex:
        yield ex


def make_feed(
    exchange: LoopbackExchange, collector: Collector, config: LiveFeedConfig = FAST, **kwargs: Any
) -> BinanceLiveFeed:
    return BinanceLiveFeed(
        "spot",
        kwargs.pop("symbols", ["BTCUSDT"]),
        collector,
        ws_url=exchange.ws_url,
        rest_url=exchange.rest_url,
        on_reconnect=collector.on_reconnect,
        config=config,
        **kwargs,
    )


async def test_frames_and_snapshot_arrive_as_raw_frames(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await feed.wait_connected(5)
        await feed.request_snapshot("BTCUSDT")
        await until(lambda: len(got.frames) > 300)
        health = feed.health()
    streams = Counter(v["stream"] for v in got.decoded())
    assert set(streams) == {"btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"}
    assert all(f.market == "spot" and f.ts_recv > 1_700_000_000 * 10**9 for f in got.frames)
    [snapshot] = got.snapshots
    assert snapshot.symbol == "BTCUSDT"
    assert set(msgspec.json.decode(snapshot.payload)) == {"lastUpdateId", "bids", "asks"}
    assert health["state"] == "connected" and health["messages"] >= 300
    assert health["reconnects"] == 0 and health["connections"] == 1


async def test_many_symbols_share_one_connection(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"]) as feed:
        await feed.wait_connected(5)
        await until(lambda: len(got.frames) > 50)
        [conn] = exchange.state()["connections"]
    assert len(conn["streams"]) == 9


async def test_429_retry_after_is_honoured(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await feed.wait_connected(5)
        exchange.rest_errors(1, status=429, retry_after_s=1.0)
        started = time.monotonic()
        await feed.request_snapshot("BTCUSDT")
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    assert len(got.snapshots) == 1
    assert exchange.injected["rest_429"] == 1 and feed.rest.rate_limited == 1


async def test_418_stops_all_rest_requests(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await feed.wait_connected(5)
        exchange.rest_errors(1, status=418, retry_after_s=60.0)
        await feed.request_snapshot("BTCUSDT")
        sent_before = exchange.stats["rest_requests"]
        await feed.request_snapshot("BTCUSDT")
        assert exchange.stats["rest_requests"] == sent_before  # refused locally
        assert feed.stats.snapshot_errors == 2
        await until(lambda: len(got.frames) > 20)  # the stream itself goes on
    assert got.snapshots == []


async def test_dropped_connection_reconnects_and_frames_continue(
    exchange: LoopbackExchange,
) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await until(lambda: len(got.frames) > 100)
        assert exchange.drop_connections() == 1
        await until(lambda: feed.stats.reconnects == 1)
        after = len(got.frames)
        await until(lambda: len(got.frames) > after + 100)
    assert got.reconnects == [["BTCUSDT"]]
    assert exchange.stats["connections_opened"] == 2


async def test_server_shutdown_rolls_over_without_loss(spot_capture: list[Path]) -> None:
    sent: list[tuple[str, int]] = []
    feed_src = CaptureFeed(spot_capture, speed=30.0, max_frames=6000)
    async with LoopbackExchange(
        feed_src, on_publish=lambda s, d: sent.append((s, _key(d)))
    ) as exchange:
        got = Collector()
        async with make_feed(exchange, got) as feed:
            await until(lambda: len(got.frames) > 200)
            await exchange.server_shutdown(grace_s=2.0)
            await exchange.pump_done.wait()
            await until(lambda: len(got.keys()) >= len(sent), timeout=15)
        assert feed.stats.server_shutdowns == 1
        assert feed.stats.rollovers == 1 and feed.stats.reconnects == 0
    assert Counter(got.keys()) == Counter(sent)


@pytest.mark.parametrize(
    ("capture", "market", "depth"),
    [("spot_capture", "spot", "depth@100ms"), ("usdm_capture", "usdm", "depth@0ms")],
)
async def test_rollover_delivers_every_frame_exactly_once(
    capture: str, market: str, depth: str, request: pytest.FixtureRequest
) -> None:
    paths: list[Path] = request.getfixturevalue(capture)
    streams = [f"btcusdt@{depth}", "btcusdt@trade", "btcusdt@bookTicker"]
    sent: list[tuple[str, int]] = []

    def on_publish(stream: str, data: dict[str, Any]) -> None:
        if stream in streams:  # the capture may hold more (markPrice)
            sent.append((stream, _key(data)))

    feed_src = CaptureFeed(paths, speed=40.0, max_frames=12_000)
    config = LiveFeedConfig(
        ping_interval_s=0.2, watchdog_s=2.0, max_lifetime_s=0.6, overlap_timeout_s=2.0
    )
    async with LoopbackExchange(feed_src, on_publish=on_publish) as exchange:
        got = Collector()
        feed = BinanceLiveFeed(
            market,
            ["BTCUSDT"],
            got,
            ws_url=exchange.ws_url,
            rest_url=exchange.rest_url,
            streams=streams,
            config=config,
        )
        async with feed:
            await exchange.pump_done.wait()
            await until(lambda: len(got.keys()) >= len(sent), timeout=15)
            await asyncio.sleep(0.2)
        stats = feed.stats
    assert stats.rollovers >= 1 and stats.reconnects == 0
    assert stats.duplicates_dropped > 0  # the overlaps really overlapped
    received = got.keys()
    assert len(received) == len(set(received)), "duplicates delivered"
    assert set(received) == set(sent), "frames lost"
    for name in streams:  # every stream: same frames, same order
        assert [k for s, k in received if s == name] == [k for s, k in sent if s == name]


async def test_server_lifetime_forces_reconnects(spot_capture: list[Path]) -> None:
    source = CaptureFeed(spot_capture, speed=20.0)
    async with LoopbackExchange(source, max_lifetime_s=0.7) as exchange:
        got = Collector()
        async with make_feed(exchange, got) as feed:  # client lifetime: 23.5 h
            await until(lambda: feed.stats.reconnects >= 2)
            count = len(got.frames)
            await until(lambda: len(got.frames) > count + 50)
    assert exchange.injected["lifetime_expired"] >= 2
    assert len(got.reconnects) == feed.stats.reconnects and feed.stats.rollovers == 0


async def test_malformed_frames_are_delivered_not_fatal(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await until(lambda: len(got.frames) > 50)
        exchange.send_malformed(4)
        await until(lambda: exchange.injected["malformed_negative_qty"] == 1)
        count = len(got.frames)
        await until(lambda: len(got.frames) > count + 50)
        assert feed.stats.state == "connected" and feed.stats.reconnects == 0
    undecodable = [f for f in got.frames if not f.payload.endswith(b"}")]
    assert len(undecodable) == 1
    datas = [v["data"] for v in got.decoded()]
    assert sum(d.get("e") == "mysteryEvent" for d in datas) == 1
    assert sum(d.get("p") == "NaN" for d in datas) == 1
    assert sum(d.get("q") == "-1.0" for d in datas) == 1


async def test_watchdog_ignores_a_quiet_symbol(exchange: LoopbackExchange) -> None:
    got = Collector()
    config = LiveFeedConfig(ping_interval_s=0.2, watchdog_s=1.2)
    async with make_feed(exchange, got, config=config, streams=["ethusdt@trade"]) as feed:
        await feed.wait_connected(5)
        await asyncio.sleep(3.0)  # no data at all on this stream, pongs keep coming
        assert feed.stats.watchdog_fired == 0 and feed.stats.reconnects == 0
        assert feed.stats.state == "connected"
    assert got.frames == []


async def test_watchdog_reconnects_a_dead_connection(exchange: LoopbackExchange) -> None:
    got = Collector()
    async with make_feed(exchange, got) as feed:
        await until(lambda: len(got.frames) > 50)
        assert exchange.stall_connections() == 1
        await until(lambda: feed.stats.watchdog_fired == 1, timeout=10)
        await until(lambda: feed.stats.reconnects == 1)
        count = len(got.frames)
        await until(lambda: len(got.frames) > count + 50)


async def test_reconnect_backoff_when_exchange_is_down() -> None:
    got = Collector()
    feed = BinanceLiveFeed(
        "spot",
        ["BTCUSDT"],
        got,
        ws_url="ws://127.0.0.1:9",
        rest_url="http://127.0.0.1:9",
        config=FAST,
    )
    async with feed:
        await asyncio.sleep(1.0)
        assert feed.stats.state == "connecting"
    assert got.frames == [] and feed.stats.state == "stopped"


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (
            b'{"stream":"x@depth@100ms","data":{"e":"depthUpdate","U":1,"u":5,"b":[["1","2"]],"a":[["1","2"]]}}',
            5,
        ),
        (b'{"stream":"x@aggTrade","data":{"e":"aggTrade","a":77,"p":"1","f":1,"l":2}}', 77),
        (b'{"stream":"x@trade","data":{"e":"trade","t":12,"p":"1"}}', 12),
        (b'{"stream":"x@bookTicker","data":{"u":9,"b":"1.0","a":"1.1"}}', 9),
        (b'{"stream":"x@depth5@100ms","data":{"lastUpdateId":3,"bids":[],"asks":[]}}', 3),
        (b'{"stream":"x@markPrice","data":{"e":"markPriceUpdate","p":"1"}}', None),
    ],
)
def test_dedup_key_of_every_stream_kind(payload: bytes, key: int | None) -> None:
    from microstream.venues.binance.live import _HEAD, _dedup_key

    head = _HEAD.decode(payload)
    assert head.data is not None and _dedup_key(head.data) == key


async def test_client_answers_server_pings(spot_capture: list[Path]) -> None:
    source = CaptureFeed(spot_capture, speed=20.0)
    async with LoopbackExchange(source, ping_interval_s=0.1, pong_timeout_s=0.6) as exchange:
        got = Collector()
        config = LiveFeedConfig(ping_interval_s=5.0, watchdog_s=5.0)  # own keepalive out of play
        async with make_feed(exchange, got, config=config, streams=["ethusdt@trade"]) as feed:
            await feed.wait_connected(5)
            await asyncio.sleep(2.0)
            assert feed.stats.reconnects == 0 and feed.stats.state == "connected"
    assert exchange.stats["pong_timeouts"] == 0
    assert exchange.stats["connections_opened"] == 1


async def test_many_streams_are_subscribed_with_method_frames(exchange: LoopbackExchange) -> None:
    got = Collector()
    symbols = ["BTCUSDT"] + [f"X{i:03d}USDT" for i in range(80)]  # 243 streams > URL limit
    async with make_feed(exchange, got, symbols=symbols) as feed:
        await feed.wait_connected(5)
        await until(lambda: len(got.frames) > 50)
        [conn] = exchange.state()["connections"]
    assert len(conn["streams"]) == 243
    assert all(msgspec.json.decode(f.payload).get("stream") for f in got.frames)  # replies kept out
