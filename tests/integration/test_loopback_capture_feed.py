"""CaptureFeed: the exchange's side of a real capture (frames, pacing, its own book)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import aiohttp
import pytest

from microstream.errors import CaptureError, SnapshotUnavailableError
from microstream.sim.capture_feed import (
    CaptureFeed,
    MultiCaptureFeed,
    iter_capture_lines,
    recv_time_ns,
)
from microstream.sim.exchange import LoopbackExchange
from microstream.sim.feed import MarketFeed
from microstream.venues.binance.endpoints import endpoints
from microstream.venues.binance.rest import RestClient

pytestmark = pytest.mark.timeout(120)


async def test_whole_spot_session_and_book_matches_book_ticker(spot_capture: list[Path]) -> None:
    feed = CaptureFeed(spot_capture)
    assert isinstance(feed, MarketFeed)
    assert (feed.market, feed.symbols) == ("spot", ["BTCUSDT"])
    with pytest.raises(SnapshotUnavailableError):
        feed.snapshot("BTCUSDT", 10)
    counts: dict[str, int] = {}
    tickers: dict[int, tuple[str, str]] = {}
    tops: dict[int, tuple[str, str]] = {}
    async for stream, data in feed.frames():
        counts[stream] = counts.get(stream, 0) + 1
        if stream.endswith("@bookTicker"):
            tickers[data["u"]] = (data["b"], data["a"])
        elif (book := feed.book("BTCUSDT")) is not None and data.get("e") == "depthUpdate":
            bids, asks = book.levels(1)
            tops[book.last_update_id] = (bids[0][0], asks[0][0])
    # the README's counts, both files read as one session
    assert counts == {
        "btcusdt@depth@100ms": 6495,
        "btcusdt@trade": 19904,
        "btcusdt@bookTicker": 73174,
    }
    # bookTicker shares the depth update ids on spot: wherever both exist, tops agree
    common = set(tickers) & set(tops)
    assert len(common) > 500
    assert all(tickers[u] == tops[u] for u in common)
    snapshot = feed.snapshot("BTCUSDT", 1000)
    assert snapshot["lastUpdateId"] == max(tops)
    assert len(snapshot["bids"]) == 1000 and len(snapshot["asks"]) == 1000
    with pytest.raises(KeyError):
        feed.snapshot("ETHUSDT", 5)


async def test_snapshot_is_consistent_at_every_point(spot_capture: list[Path]) -> None:
    feed = CaptureFeed(spot_capture, max_frames=400)
    last_u = None
    async for _, data in feed.frames():
        if data.get("e") == "depthUpdate":
            last_u = data["u"]
        if feed.book("BTCUSDT") is not None:
            assert feed.snapshot("BTCUSDT", 5)["lastUpdateId"] == last_u
    assert feed.frames_yielded == 400


async def test_futures_snapshot_fields_and_microsecond_times(
    usdm_capture: list[Path], coinm_capture: list[Path]
) -> None:
    usdm = CaptureFeed(usdm_capture, max_frames=200)
    async for _ in usdm.frames():
        pass
    snap = usdm.snapshot("BTCUSDT", 5)
    assert list(snap) == ["lastUpdateId", "E", "T", "bids", "asks"]
    assert (
        usdm.last_recv_ns is not None
        and 1_680_000_000 * 10**9 < usdm.last_recv_ns < 1_690_000_000 * 10**9
    )
    coinm = CaptureFeed(coinm_capture, max_frames=200)
    async for _ in coinm.frames():
        pass
    assert coinm.market == "coinm" and coinm.symbols == ["BTCUSD_PERP"]
    assert coinm.snapshot("BTCUSD_PERP", 5)["pair"] == "BTCUSD"
    assert coinm.exchange_info()["symbols"][0]["filters"][0]["tickSize"] == "0.1"
    assert recv_time_ns("1680652700423575") == 1680652700423575000


async def test_pacing_follows_receive_times(spot_capture: list[Path]) -> None:
    feed = CaptureFeed(spot_capture, speed=10.0, max_frames=1000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    first = last = None
    async for _ in feed.frames():
        last = feed.last_recv_ns
        first = first or last
    assert first is not None and last is not None
    capture_span = (last - first) / 1e9
    assert capture_span > 2.0
    assert loop.time() - started >= capture_span / 10.0 * 0.95


def test_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        CaptureFeed([tmp_path / "missing.gz"])
    with pytest.raises(CaptureError):
        CaptureFeed([])
    broken = tmp_path / "spot" / "x_20240101.gz"
    broken.parent.mkdir()
    broken.write_bytes(
        gzip.compress(
            b"garbage\n1723161253937085768 {not json\n"
            b'1723161253937085768 {"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1}}\n'
        )
    )
    assert [v["data"]["t"] for _, v in iter_capture_lines([broken])] == [1]
    assert CaptureFeed([broken]).symbols == ["BTCUSDT"]


async def test_exchange_answers_503_until_the_snapshot_line(spot_capture: list[Path]) -> None:
    # no client subscribed: the pump has not started, the snapshot line is not reached
    exchange = LoopbackExchange(CaptureFeed(spot_capture, speed=10.0), snapshot_wait_s=0.2)
    async with exchange, aiohttp.ClientSession() as session:
        url = f"{exchange.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5"  # port known now
        async with session.get(url) as resp:
            assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    assert exchange.stats["rest_503"] == 1


async def test_client_keeps_within_the_exchange_weight_limit(spot_capture: list[Path]) -> None:
    feed = CaptureFeed(spot_capture, speed=10.0)
    exchange = LoopbackExchange(feed, weight_limit=120, weight_window_s=1.0)
    async with exchange, aiohttp.ClientSession() as session:
        url = f"{exchange.ws_url}/stream?streams=btcusdt@trade"
        async with session.ws_connect(url) as ws:
            await ws.receive()  # the pump runs, the capture's snapshot line is passed
            rest = endpoints("spot", rest_url=exchange.rest_url)
            client = RestClient(rest, session, weight_limit=120, weight_window_s=1.0)
            for _ in range(4):  # 4 x 50 > 120: the client must wait for a new window
                await client.depth_raw("BTCUSDT", 1000)
    assert client.waited_s > 0
    assert exchange.stats["rest_429_weight"] == 0 and exchange.stats["rest_depth"] == 4


async def test_coinm_exchange_serves_dapi(coinm_capture: list[Path]) -> None:
    exchange = LoopbackExchange(CaptureFeed(coinm_capture, speed=10.0))
    async with exchange, aiohttp.ClientSession() as session:
        url = f"{exchange.ws_url}/stream?streams=btcusd_perp@depth@100ms"
        async with session.ws_connect(url) as ws:
            msg = await asyncio.wait_for(ws.receive_json(), 5)
            assert msg["stream"] == "btcusd_perp@depth@100ms"  # served under the asked name
            assert msg["data"]["e"] == "depthUpdate" and "pu" in msg["data"]
            client = RestClient(endpoints("coinm", rest_url=exchange.rest_url), session)
            snapshot = await client.depth("BTCUSD_PERP", 1000)
            info = await client.exchange_info()
    assert snapshot["symbol"] == "BTCUSD_PERP" and len(snapshot["bids"]) > 100
    assert info["symbols"][0]["symbol"] == "BTCUSD_PERP"


async def test_sessions_are_grouped_and_merged_by_receive_time(shared_data: Path) -> None:
    from microstream.sim.exchange import capture_feed

    usdm = shared_data / "binance" / "usdm"
    files = [
        str(usdm / f"{s}_{d}.gz") for s in ("ethusdt", "btcusdt") for d in ("20240719", "20240718")
    ]
    feed = capture_feed(files, speed=None)
    assert isinstance(feed, MultiCaptureFeed) and feed.market == "usdm"
    assert sorted(feed.symbols) == ["BTCUSDT", "ETHUSDT"]
    feed.max_frames = 3000
    times: list[int] = []
    seen: set[str] = set()
    async for _, data in feed.frames():
        seen.add(data["s"])
        owner = feed._by_symbol[data["s"]]
        assert owner.last_recv_ns is not None
        times.append(owner.last_recv_ns)
    assert seen == {"BTCUSDT", "ETHUSDT"} and times == sorted(times)
    assert all(feed.snapshot(s, 5)["lastUpdateId"] > 0 for s in feed.symbols)
    with pytest.raises(KeyError):
        feed.snapshot("XRPUSDT", 5)
    assert isinstance(capture_feed(files[2:], speed=None), CaptureFeed)
