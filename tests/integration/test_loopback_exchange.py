"""The loopback exchange speaks Binance's protocol (websocket, REST, faults, admin API)."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from microstream.sim.capture_feed import CaptureFeed
from microstream.sim.exchange import LoopbackExchange

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def exchange(spot_capture: list[Path]) -> AsyncIterator[LoopbackExchange]:
    feed = CaptureFeed(spot_capture, speed=20.0)
    async with LoopbackExchange(feed, ping_interval_s=0.2, pong_timeout_s=1.0) as ex:
        yield ex


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _texts(ws: aiohttp.ClientWebSocketResponse[bool], n: int) -> list[Any]:
    out: list[Any] = []
    while len(out) < n:
        msg = await asyncio.wait_for(ws.receive(), 5)
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(msgspec.json.decode(msg.data))
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            break
    return out


async def test_combined_stream_envelope(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    url = f"{exchange.ws_url}/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
    async with session.ws_connect(url) as ws:
        frames = await _texts(ws, 30)
    assert len(frames) == 30
    assert {f["stream"] for f in frames} <= {"btcusdt@trade", "btcusdt@depth@100ms"}
    assert all(set(f) == {"stream", "data"} for f in frames)
    trades = [f["data"] for f in frames if f["stream"] == "btcusdt@trade"]
    assert trades and all(t["e"] == "trade" and t["s"] == "BTCUSDT" for t in trades)


async def test_raw_stream_and_subscription_methods(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/ws/btcusdt@trade") as ws:
        raw = await _texts(ws, 3)
        assert all(f["e"] == "trade" for f in raw)  # no envelope on /ws
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}')
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":8}')
        await ws.send_str('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":9}')
        replies: dict[int, Any] = {}
        while len(replies) < 3:
            for frame in await _texts(ws, 1):
                if "id" in frame:
                    replies[frame["id"]] = frame
    assert replies[7] == {"result": None, "id": 7}
    assert replies[8]["result"] == ["btcusdt@bookticker", "btcusdt@trade"]
    assert replies[9] == {"result": None, "id": 9}


async def test_unknown_method_gets_an_error_reply(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/stream") as ws:
        await ws.send_str('{"method":"FLY","id":3}')
        [reply] = await _texts(ws, 1)
    assert reply["id"] == 3 and reply["error"]["code"] == 2


async def test_rest_depth_weights_and_header(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=btcusdt@depth@100ms") as ws:
        await _texts(ws, 5)  # the capture's snapshot line is near the start
        used = []
        for limit in (100, 500, 1000, 5000):
            url = f"{exchange.rest_url}/api/v3/depth?symbol=BTCUSDT&limit={limit}"
            async with session.get(url) as resp:
                assert resp.status == 200
                body = await resp.json()
                used.append(int(resp.headers["X-MBX-USED-WEIGHT-1M"]))
            assert 0 < len(body["bids"]) <= limit
            assert float(body["bids"][0][0]) < float(body["asks"][0][0])
            assert set(body) == {"lastUpdateId", "bids", "asks"}
    assert [b - a for a, b in itertools.pairwise(used)] == [25, 50, 250]


async def test_rest_snapshot_consistent_with_stream(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=btcusdt@depth@100ms") as ws:
        await _texts(ws, 10)
        async with session.get(
            f"{exchange.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000"
        ) as resp:
            snapshot = await resp.json()
        last = snapshot["lastUpdateId"]
        later: list[dict[str, Any]] = []
        while not later or later[-1]["u"] <= last:  # skip what was already in flight
            later += [f["data"] for f in await _texts(ws, 1)]
    # Binance's rule: the first event to apply after the snapshot has U <= lastUpdateId+1 <= u.
    following = [e for e in later if e["u"] > last]
    assert following, "no depth event after the snapshot"
    assert following[0]["U"] <= last + 1 <= following[0]["u"]


async def test_rest_errors_and_admin_api(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.post(
        f"{exchange.rest_url}/_admin/fault",
        json={"fault": "rest_error", "count": 1, "retry_after": 3},
    ) as resp:
        assert (await resp.json())["ok"] is True
    async with session.get(f"{exchange.rest_url}/api/v3/ping") as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "3"
    async with session.get(f"{exchange.rest_url}/api/v3/ping") as resp:
        assert resp.status == 200
    async with session.get(f"{exchange.rest_url}/api/v3/depth?symbol=NOPE&limit=5") as resp:
        assert resp.status == 400 and (await resp.json())["code"] == -1121
    async with session.post(
        f"{exchange.rest_url}/_admin/fault", json={"fault": "nonsense"}
    ) as resp:
        assert resp.status == 400
    async with session.get(f"{exchange.rest_url}/_admin/state") as resp:
        state = await resp.json()
    assert state["injected"] == {"rest_429": 1}


async def test_exchange_info_and_time(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{exchange.rest_url}/api/v3/exchangeInfo") as resp:
        info = await resp.json()
        assert resp.headers["X-MBX-USED-WEIGHT-1M"] == "20"
    async with session.get(f"{exchange.rest_url}/api/v3/time") as resp:
        assert (await resp.json())["serverTime"] > 1_700_000_000_000
    [symbol] = info["symbols"]
    assert symbol["symbol"] == "BTCUSDT"
    assert symbol["filters"][0] == {"filterType": "PRICE_FILTER", "tickSize": "0.01"}


async def test_server_pings_and_closes_a_silent_client(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    url = f"{exchange.ws_url}/stream?streams=ethusdt@trade"
    async with session.ws_connect(url, autoping=False) as ws:
        pings = 0
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1  # never answered
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
    assert pings >= 3
    assert exchange.stats["pong_timeouts"] == 1


async def test_answering_pings_keeps_the_connection(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=ethusdt@trade") as ws:
        # aiohttp answers pings while something reads the socket
        reader = asyncio.create_task(ws.receive())
        await asyncio.sleep(1.6)  # > pong_timeout
        assert not ws.closed and not reader.done()
        reader.cancel()
    assert exchange.stats["pong_timeouts"] == 0


async def test_malformed_frames(exchange: LoopbackExchange, session: aiohttp.ClientSession) -> None:
    url = f"{exchange.ws_url}/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
    async with session.ws_connect(url) as ws:
        await _texts(ws, 3)
        exchange.send_malformed(4)  # cycles broken_json, unknown_event, nan_price, negative_qty
        texts: list[str] = []
        while not (texts and '"q":"-1.0"' in texts[-1]) and len(texts) < 50_000:
            msg = await asyncio.wait_for(ws.receive(), 5)
            texts.append(msg.data)
    broken = [t for t in texts if not t.endswith("}")]
    assert len(broken) == 1
    decoded = [msgspec.json.decode(t) for t in texts if t.endswith("}")]
    datas = [d["data"] for d in decoded]
    assert sum(d.get("e") == "mysteryEvent" for d in datas) == 1
    assert sum(d.get("p") == "NaN" for d in datas) == 1
    assert sum(d.get("q") == "-1.0" for d in datas) == 1
    assert exchange.injected["malformed_broken_json"] == 1


async def test_skip_depth_makes_exactly_one_gap(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=btcusdt@depth@100ms") as ws:
        depth = [f["data"] for f in await _texts(ws, 5)]
        exchange.skip_depth(2, "BTCUSDT")
        while exchange.faults.skip_depth["BTCUSDT"] > 0 or len(depth) < 10:  # backlog included
            depth += [f["data"] for f in await _texts(ws, 10)]
        depth += [f["data"] for f in await _texts(ws, 200)]
    gaps = [(a["u"], b["U"]) for a, b in itertools.pairwise(depth) if b["U"] != a["u"] + 1]
    assert len(gaps) == 1, [(d["U"], d["u"]) for d in depth]
    assert exchange.injected["depth_skipped"] == 2


async def test_max_lifetime_closes_connections(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    exchange.faults.max_lifetime_s = 0.5
    loop = asyncio.get_running_loop()
    opened = loop.time()
    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=btcusdt@trade") as ws:
        frames = await _texts(ws, 100_000)  # returns when the server closes the connection
    assert frames
    assert 0.4 <= loop.time() - opened < 3.0
    assert exchange.injected["lifetime_expired"] == 1


async def test_drop_and_server_shutdown(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    url = f"{exchange.ws_url}/stream?streams=btcusdt@trade"
    async with session.ws_connect(url) as ws:
        await _texts(ws, 1)
        assert exchange.drop_connections() == 1
        msg = await asyncio.wait_for(ws.receive(), 5)
        while msg.type == aiohttp.WSMsgType.TEXT:  # what was already in flight
            msg = await asyncio.wait_for(ws.receive(), 5)
        assert msg.type in (
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
            aiohttp.WSMsgType.CLOSE,
        )
    async with session.ws_connect(url) as ws:
        await _texts(ws, 1)
        shutdown = asyncio.create_task(exchange.server_shutdown(grace_s=0.3))
        seen_shutdown = False
        while True:
            msg = await asyncio.wait_for(ws.receive(), 5)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            seen_shutdown |= msgspec.json.decode(msg.data).get("e") == "serverShutdown"
        await shutdown
    assert seen_shutdown
    assert exchange.injected["server_shutdown"] == 1


async def test_two_clients_receive_the_same_frames(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    url = f"{exchange.ws_url}/stream?streams=btcusdt@trade"
    async with session.ws_connect(url) as a, session.ws_connect(url) as b:
        [first_b] = [f["data"]["t"] for f in await _texts(b, 1)]
        ids_a = [0]
        while ids_a[-1] < first_b:  # a connected earlier: catch up to b's first trade
            ids_a += [f["data"]["t"] for f in await _texts(a, 1)]
        assert ids_a[-1] == first_b
        ids_a = [first_b] + [f["data"]["t"] for f in await _texts(a, 50)]
        ids_b = [first_b] + [f["data"]["t"] for f in await _texts(b, 50)]
    assert ids_a == ids_b == sorted(ids_b)


async def test_admin_api_drives_every_fault(
    exchange: LoopbackExchange, session: aiohttp.ClientSession
) -> None:
    async def fault(body: dict[str, Any]) -> Any:
        async with session.post(f"{exchange.rest_url}/_admin/fault", json=body) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["result"]

    async with session.ws_connect(f"{exchange.ws_url}/stream?streams=btcusdt@trade") as ws:
        await _texts(ws, 1)
        await fault({"fault": "skip_depth", "count": 2, "symbol": "btcusdt"})
        await fault({"fault": "malformed", "count": 2, "kinds": ["nan_price"]})
        await fault({"fault": "max_lifetime", "seconds": 30})
        await fault({"fault": "ping", "interval_s": 5, "pong_timeout_s": 50})
        await fault({"fault": "rest_error", "count": 1, "status": 418, "retry_after": 1})
        pending = exchange.faults.skip_depth["BTCUSDT"]
        assert pending + exchange.injected["depth_skipped"] == 2  # the pump may have used some
        assert exchange.faults.max_lifetime_s == 30.0
        assert (exchange.ping_interval_s, exchange.pong_timeout_s) == (5.0, 50.0)
        async with session.get(f"{exchange.rest_url}/api/v3/ping") as resp:
            assert resp.status == 418
        async with session.get(f"{exchange.rest_url}/api/v3/ping") as resp:
            assert resp.status == 418  # banned until Retry-After passed
        assert await fault({"fault": "stall_connections"}) == 1
        assert await fault({"fault": "server_shutdown", "grace_s": 0.1}) == 1
        assert await fault({"fault": "drop_connections"}) == 0  # already closed
    async with session.post(
        f"{exchange.rest_url}/_admin/fault", json={"fault": "malformed", "kinds": ["bogus"]}
    ) as resp:
        assert resp.status == 400
    assert exchange.injected["rest_418"] == 1 and exchange.injected["stall_connections"] == 1


async def test_exchange_runs_from_the_command_line(spot_capture: list[Path]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "microstream.sim.exchange",
        *map(str, spot_capture),
        "--speed",
        "10",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        rest = line.split("BINANCE_REST_URL=")[1].strip()
        async with aiohttp.ClientSession() as session, session.get(f"{rest}/_admin/state") as r:
            state = await r.json()
    finally:
        proc.terminate()
        await proc.wait()
    assert state["market"] == "spot" and state["symbols"] == ["BTCUSDT"]
