"""The REST client honours Binance's weights, 429 Retry-After and 418 bans."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from microstream.errors import FeedError, IpBannedError, RateLimitedError
from microstream.venues.binance.endpoints import endpoints
from microstream.venues.binance.rest import RestClient

pytestmark = pytest.mark.timeout(30)

SNAPSHOT = b'{"lastUpdateId":42,"bids":[["1.00","2.0"]],"asks":[["1.01","3.0"]]}'


@dataclass
class Scripted:
    """A REST server answering from a script, then 200 with the snapshot."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    weight: int = 0
    calls: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.weight += 5
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.weight)}
        if self.script:
            status, extra = self.script.pop(0)
            return web.Response(status=status, headers={**headers, **extra}, body=b'{"code":-1003}')
        return web.Response(body=SNAPSHOT, headers=headers, content_type="application/json")


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    scripted = Scripted()
    app = web.Application()
    app.router.add_get("/api/v3/depth", scripted.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    scripted.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield scripted
    await runner.cleanup()


def _client(server: Scripted, **kwargs: object) -> RestClient:
    return RestClient(endpoints("spot", rest_url=server.url), **kwargs)  # type: ignore[arg-type]


async def test_depth_returns_raw_bytes_and_tracks_weight(server: Scripted) -> None:
    async with _client(server) as client:
        assert await client.depth_raw("btcusdt", 100) == SNAPSHOT
        assert (await client.depth("BTCUSDT", 100))["lastUpdateId"] == 42
        assert client.used_weight == 10  # from the header, not the local estimate


async def test_429_waits_retry_after_then_succeeds(server: Scripted) -> None:
    server.script = [(429, {"Retry-After": "1"})]
    async with _client(server) as client:
        started = time.monotonic()
        assert await client.depth_raw("BTCUSDT", 100) == SNAPSHOT
        elapsed = time.monotonic() - started
    assert elapsed >= 1.0
    assert server.calls == 2 and client.rate_limited == 1


async def test_429_exhausted_raises_rate_limited(server: Scripted) -> None:
    server.script = [(429, {"Retry-After": "0"})] * 3
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async with _client(server, max_retries=2, sleep=fake_sleep) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.depth_raw("BTCUSDT", 100)
    assert info.value.retry_after == 0.0
    assert waits == [0.0, 0.0] and server.calls == 3


async def test_418_bans_all_further_requests(server: Scripted) -> None:
    server.script = [(418, {"Retry-After": "120"})]
    async with _client(server) as client:
        with pytest.raises(IpBannedError) as info:
            await client.depth_raw("BTCUSDT", 100)
        assert info.value.retry_after == 120.0
        with pytest.raises(IpBannedError):
            await client.depth_raw("BTCUSDT", 100)
    assert server.calls == 1  # the second call never reached the network


async def test_weight_budget_waits_for_the_next_window(server: Scripted) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async with _client(server, weight_limit=12, sleep=fake_sleep) as client:
        await client.depth_raw("BTCUSDT", 100)  # weight 5 -> header says 5
        await client.depth_raw("BTCUSDT", 100)  # 10
        assert waits == []
        await client.depth_raw("BTCUSDT", 100)  # 10 + 5 > 12: wait first
    assert len(waits) == 1 and 0 < waits[0] <= 60.1


async def test_5xx_is_retried_then_reported(server: Scripted) -> None:
    server.script = [(503, {"Retry-After": "0"}), (500, {})]
    async with _client(server, max_retries=3) as client:
        assert await client.depth_raw("BTCUSDT", 100) == SNAPSHOT
    server.script = [(400, {})]
    async with _client(server) as client:
        with pytest.raises(FeedError, match="HTTP 400"):
            await client.depth_raw("BTCUSDT", 100)


async def test_unreachable_server_maps_to_feed_error() -> None:
    client = RestClient(endpoints("spot", rest_url="http://127.0.0.1:9"), timeout_s=2.0)
    async with client:
        with pytest.raises(FeedError) as info:
            await client.depth_raw("BTCUSDT", 100)
    assert info.value.__cause__ is not None
