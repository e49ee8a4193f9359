"""The simulator behind the loopback exchange: live client sync, fault drill, the CLI."""

from __future__ import annotations

import asyncio
import itertools
import re
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.events import BookSnapshot, DepthUpdate, SyncStateChange
from microstream.frames import RawFrame
from microstream.sim.exchange import LoopbackExchange
from microstream.sim.regimes import REGIMES
from microstream.sim.sim_feed import SimFeed
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig
from microstream.venues.binance.parse import parse_frame
from waiting import until

pytestmark = pytest.mark.timeout(120)

FAST = LiveFeedConfig(ping_interval_s=0.3, watchdog_s=3.0, backoff_base_s=0.05, backoff_cap_s=0.2)


async def test_live_client_syncs_and_resyncs_after_a_skipped_depth_event() -> None:
    states: list[SyncStateChange] = []
    feed = SimFeed(seed=7, speed=5.0)
    async with LoopbackExchange(feed, ping_interval_s=0.5, wait_for_client=False) as ex:
        live: BinanceLiveFeed | None = None

        def ask(symbol: str) -> None:
            assert live is not None
            live.request_snapshot(symbol)

        sync = BookSynchronizer(
            "binance", "BTCUSDT", ContinuityRule.for_market("spot"), states.append, ask
        )

        def on_frame(frame: RawFrame) -> None:
            for event in parse_frame(frame):
                if isinstance(event, DepthUpdate):
                    sync.on_depth(event)
                elif isinstance(event, BookSnapshot):
                    sync.on_snapshot(event)

        live = BinanceLiveFeed(
            "spot", ["BTCUSDT"], on_frame, ws_url=ex.ws_url, rest_url=ex.rest_url, config=FAST
        )
        async with live:
            await live.wait_connected(10)
            sync.start(time.time_ns())
            await until(lambda: sync.is_synced and sync.applied > 20)
            assert sync.gaps == 0
            ex.skip_depth(1)
            await until(lambda: sync.gaps >= 1)
            applied = sync.applied
            await until(lambda: sync.is_synced and sync.applied > applied + 10)
    bid, ask_level = sync.book.best_bid(), sync.book.best_ask()
    assert bid is not None and ask_level is not None and bid[0] < ask_level[0]
    assert sync.resyncs >= 1
    assert {s.state for s in states} >= {"buffering", "synced", "gap"}


async def test_a_depth_subscriber_gets_one_speed_only() -> None:
    """The simulator makes 100 ms and 1 s diffs; a ``depth@100ms`` client gets the 100 ms
    chain only (no 1 s diff repeating what it already has), a ``depth`` client the 1 s one."""
    feed = SimFeed(seed=5, speed=20.0)
    frames: dict[str, list[dict[str, Any]]] = {"btcusdt@depth@100ms": [], "btcusdt@depth": []}

    async def collect(session: aiohttp.ClientSession, url: str, stream: str) -> None:
        async with session.ws_connect(f"{url}/stream?streams={stream}") as ws:
            while len(frames["btcusdt@depth"]) < 4:  # four simulated seconds
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    frame = msgspec.json.decode(msg.data)
                    assert frame["stream"] == stream
                    frames[stream].append(frame["data"])

    async with (
        LoopbackExchange(feed, wait_for_client=False) as ex,
        aiohttp.ClientSession() as session,
    ):
        await asyncio.gather(*(collect(session, ex.ws_url, stream) for stream in frames))
    for stream, diffs in frames.items():
        chain = [(d["U"], d["u"]) for d in diffs]
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(chain)), (stream, chain)
    fast, slow = frames["btcusdt@depth@100ms"], frames["btcusdt@depth"]
    assert len(fast) > 3 * len(slow)  # ten 100 ms diffs a second, one 1 s diff


async def test_rest_answers_come_from_the_simulator() -> None:
    feed = SimFeed(["BTCUSDT", "ETHUSDT"], seed=3, speed=None)
    async with (
        LoopbackExchange(feed, wait_for_client=False) as ex,
        aiohttp.ClientSession() as session,
    ):
        await until(lambda: feed.frames_yielded > 50)
        async with session.get(f"{ex.rest_url}/api/v3/exchangeInfo") as resp:
            info = await resp.json()
        async with session.get(f"{ex.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5") as resp:
            depth = await resp.json()
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert list(depth) == ["lastUpdateId", "bids", "asks"]
    assert len(depth["bids"]) == 5 and float(depth["bids"][0][0]) < float(depth["asks"][0][0])


async def test_sim_exchange_command_serves_and_stops(tmp_path: Path) -> None:
    truth = tmp_path / "truth.csv"
    proc, banner = await _start_sim_exchange(
        "--speed", "5", "--duration", "8", "--seed", "5", "--skip-depth-every", "1",
        "--symbols", "BTCUSDT", "--truth-out", str(truth),
    )  # fmt: skip
    try:
        await _talk_to(banner)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = truth.read_text().splitlines()
    assert len(lines) >= 5
    ts, symbol, regime = lines[0].split(",")
    assert int(ts) % 1_000_000_000 == 0 and symbol == "BTCUSDT" and regime in REGIMES


async def _talk_to(banner: str) -> None:
    """Take one trade over the websocket, check the drill ran."""
    assert "SIMULATED DATA" in banner
    match = re.search(r"BINANCE_WS_URL=(\S+) BINANCE_REST_URL=(\S+)", banner)
    assert match is not None
    ws_url, rest_url = match.groups()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"{ws_url}/ws/btcusdt@trade") as ws:
            msg = await asyncio.wait_for(ws.receive(), 20)
        trade = msgspec.json.decode(msg.data)
        assert trade["e"] == "trade" and trade["s"] == "BTCUSDT"
        await asyncio.sleep(1.5)
        async with session.get(f"{rest_url}/_admin/state") as resp:
            state = await resp.json()
    assert state["injected"].get("depth_skipped", 0) >= 1


async def _start_sim_exchange(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``microstream sim-exchange ARGS`` on a free port; the banner it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "microstream.cli",
        "sim-exchange",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    banner = ""
    while "BINANCE_WS_URL" not in banner:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "sim-exchange exited before printing its URLs"
        banner += line.decode()
    return proc, banner


def _ws_url(banner: str) -> str:
    match = re.search(r"BINANCE_WS_URL=(\S+)", banner)
    assert match is not None
    return match.group(1)


async def _first_trade_frames(ws_url: str, count: int) -> list[bytes]:
    """The first ``count`` raw trade frames of the market, in order."""
    frames: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{ws_url}/ws/btcusdt@trade") as ws,
    ):
        while len(frames) < count:
            msg = await asyncio.wait_for(ws.receive(), 20)
            frames.append(msg.data.encode() if isinstance(msg.data, str) else msg.data)
    return frames


async def test_same_seed_and_start_give_byte_identical_frames_from_the_command() -> None:
    start = "1735689600000"  # 2025-01-01 00:00:00 UTC
    # the market starts when the client subscribes: each run is seen from its first frame
    common = ("--speed", "20", "--duration", "30", "--wait-for-client", "--symbols", "BTCUSDT")
    procs = []
    try:
        for seed in ("11", "11", "12"):
            proc, banner = await _start_sim_exchange("--seed", seed, "--start-ms", start, *common)
            procs.append((proc, _ws_url(banner)))
        got_a, got_b, got_c = await asyncio.gather(
            *(_first_trade_frames(url, 100) for _, url in procs)
        )
    finally:
        for proc, _ in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert got_a == got_b  # byte for byte, frame for frame
    first = msgspec.json.decode(got_a[0])
    assert first["T"] >= int(start)  # exchange times come from --start-ms, not the wall clock
    assert got_c != got_a  # another seed, another market
