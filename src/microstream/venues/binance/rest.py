"""An async Binance REST client for market data, polite about rate limits.

Only what a market-data client needs: the depth snapshot, ``exchangeInfo``,
``ping``. It keeps Binance's rules:

* the used request weight is read from ``X-MBX-USED-WEIGHT-1M`` after every
  answer; a request that would exceed the per-window budget waits for the
  next window instead of being sent;
* ``429`` -> sleep ``Retry-After`` seconds and retry (at most
  ``max_retries`` times), then :class:`~microstream.errors.RateLimitedError`;
* ``418`` (IP banned) -> :class:`~microstream.errors.IpBannedError`, and every
  later request fails at once, without touching the network, until the
  ``Retry-After`` has passed;
* ``5xx`` (and the loopback's 503 "snapshot not ready") -> bounded retries with
  a short backoff; transport errors are mapped to
  :class:`~microstream.errors.FeedError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from microstream.errors import FeedError, IpBannedError, RateLimitedError
from microstream.venues.binance.endpoints import (
    EXCHANGE_INFO_WEIGHT,
    MarketEndpoints,
    depth_weight,
)

log = logging.getLogger(__name__)

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


class RestClient:
    """Binance market-data REST calls for one market.

    Args:
        endpoints: the market's URLs and paths.
        session: an aiohttp session to use (default: one owned by the client).
        weight_limit: request-weight budget per window (default: the market's,
            6000 spot / 2400 futures).
        weight_window_s: the budget's window (60 s on Binance).
        max_retries: retries after a 429 or a 5xx before giving up.
        timeout_s: total timeout of one HTTP request.
        sleep: the sleep function (tests may observe it).
    """

    def __init__(
        self,
        endpoints: MarketEndpoints,
        session: aiohttp.ClientSession | None = None,
        *,
        weight_limit: int | None = None,
        weight_window_s: float = 60.0,
        max_retries: int = 3,
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.endpoints = endpoints
        self.weight_limit = weight_limit or endpoints.weight_limit
        self.weight_window_s = weight_window_s
        self.max_retries = max_retries
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.used_weight = 0
        self.banned_until = 0.0
        self.waited_s = 0.0
        self.requests = 0
        self.rate_limited = 0
        self._session = session
        self._owns_session = session is None
        self._window = -1
        self._sleep = sleep
        self._lock = asyncio.Lock()

    async def close(self) -> None:
        """Close the session if the client created it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- public calls ---------------------------------------------------------------

    async def depth_raw(self, symbol: str, limit: int = 1000) -> bytes:
        """The depth snapshot's JSON bytes, exactly as the exchange sent them."""
        params = {"symbol": symbol.upper(), "limit": str(limit)}
        weight = depth_weight(self.endpoints.market, limit)
        return await self.get(self.endpoints.depth_path, params, weight)

    async def depth(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        """The depth snapshot, decoded."""
        return _decode_object(await self.depth_raw(symbol, limit))

    async def exchange_info(self) -> dict[str, Any]:
        """``exchangeInfo``, decoded."""
        weight = EXCHANGE_INFO_WEIGHT[self.endpoints.market]
        return _decode_object(await self.get(self.endpoints.exchange_info_path, {}, weight))

    async def ping(self) -> None:
        """``ping``: raises :class:`FeedError` when the exchange cannot be reached."""
        await self.get(self.endpoints.ping_path, {}, 1)

    # -- the request loop -------------------------------------------------------------

    async def get(self, path: str, params: dict[str, str], weight: int) -> bytes:
        """GET ``path`` honouring the weight budget, 429/418 and bounded retries."""
        for attempt in range(self.max_retries + 1):
            self._check_ban()
            await self._wait_for_budget(weight)
            status, headers, body = await self._send(path, params)
            self._note_weight(headers, weight)
            if status == 200:
                return body
            retry_after = _retry_after(headers)
            if status == 418:
                self.banned_until = time.monotonic() + (retry_after or 60.0)
                raise IpBannedError(f"{path}: IP banned by the exchange (418)", retry_after)
            if status == 429:
                self.rate_limited += 1
                wait = 1.0 if retry_after is None else retry_after
                if attempt == self.max_retries:
                    raise RateLimitedError(
                        f"{path}: still rate limited after {attempt} retries", wait
                    )
                await self._pause(wait, "429")
                continue
            if status >= 500 and attempt < self.max_retries:
                await self._pause(retry_after or 0.2 * 2**attempt, str(status))
                continue
            raise FeedError(f"{path}: HTTP {status}: {body[:200].decode(errors='replace')}")
        raise FeedError(f"{path}: no answer after {self.max_retries} retries")

    def _check_ban(self) -> None:
        left = self.banned_until - time.monotonic()
        if left > 0:
            raise IpBannedError(f"IP banned for another {left:.1f} s; not sending", left)

    async def _wait_for_budget(self, weight: int) -> None:
        async with self._lock:
            self._roll_window()
            if self.used_weight + weight <= self.weight_limit:
                self.used_weight += weight
                return
            wait = self.weight_window_s - (time.time() % self.weight_window_s) + 0.05
            await self._pause(wait, "weight budget")
            self._roll_window()
            self.used_weight += weight

    def _roll_window(self) -> None:
        window = int(time.time() // self.weight_window_s)
        if window != self._window:
            self._window, self.used_weight = window, 0

    def _note_weight(self, headers: dict[str, str], weight: int) -> None:
        raw = headers.get(WEIGHT_HEADER.lower())
        if raw is None:
            return
        try:
            self.used_weight = max(int(raw), 0)
        except ValueError:
            log.warning("bad %s header %r", WEIGHT_HEADER, raw)

    async def _pause(self, seconds: float, why: str) -> None:
        log.warning("REST %s: waiting %.2f s", why, seconds)
        self.waited_s += seconds
        await self._sleep(seconds)

    async def _send(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        url = self.endpoints.rest_url + path
        self.requests += 1
        try:
            async with self._session.get(url, params=params, timeout=self.timeout) as response:
                body = await response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
                return response.status, headers, body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise FeedError(f"GET {url} failed: {exc!r}") from exc


def _retry_after(headers: dict[str, str]) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        return None


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise FeedError(f"undecodable REST answer: {body[:100]!r}") from exc
    if not isinstance(value, dict):
        raise FeedError(f"unexpected REST answer: {body[:100]!r}")
    return value
