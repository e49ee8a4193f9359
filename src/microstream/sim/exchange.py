"""A loopback exchange that speaks Binance's websocket and REST protocol.

:class:`LoopbackExchange` serves a :class:`~microstream.sim.feed.MarketFeed`
(a replayed capture or the simulator) on 127.0.0.1 so the live client, the
recorder and the demo run exactly as they would against Binance:

* websocket ``/stream?streams=a/b/c`` (combined envelope ``{"stream","data"}``)
  and ``/ws/<stream>`` (raw events); live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
  ``LIST_SUBSCRIPTIONS`` method frames answered with their ``id``;
* server pings every ``ping_interval_s``; a connection that sends no pong for
  ``pong_timeout_s`` is closed, as Binance does;
* REST ``depth``, ``exchangeInfo``, ``ping``, ``time`` under the feed market's
  prefix (``/api/v3``, ``/fapi/v1``, ``/dapi/v1``) with Binance's request
  weights reported in ``X-MBX-USED-WEIGHT-1M`` (window length configurable);
* one pump task reads ``feed.frames()`` and broadcasts every frame to every
  connection subscribed to its stream (each connection has its own bounded
  queue and writer task, so one slow client never stalls the others);
* fault injection (:class:`Faults` and the actions below), also driven over
  HTTP with ``POST /_admin/fault`` so an exchange started from the command line
  (``python -m microstream.sim.exchange``) can be steered; ``GET /_admin/state``
  reports connections and the counters of what was injected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from microstream.errors import ConfigError, SnapshotUnavailableError
from microstream.sim.feed import MarketFeed
from microstream.venues.binance.endpoints import (
    EXCHANGE_INFO_WEIGHT,
    depth_weight,
    endpoints,
    symbol_of_stream,
    valid_depth_limit,
)

log = logging.getLogger(__name__)

_encode = msgspec.json.encode
MALFORMED_KINDS = ("broken_json", "unknown_event", "nan_price", "negative_qty")


@dataclass
class Faults:
    """Faults waiting to be injected; every field may be changed at run time.

    Attributes:
        skip_depth: per upper-case symbol (``"*"`` = any), how many of the next
            depth events to leave out of the stream (the exchange's own book
            still applies them, so a client sees a real gap).
        malformed: kinds of malformed frames to send before the next frame
            (see :data:`MALFORMED_KINDS`).
        rest_errors: ``(status, retry_after_s)`` answers for the next REST calls
            (429 = rate limited, 418 = IP banned).
        max_lifetime_s: close every connection this long after it opened
            (Binance does it after 24 h); ``None`` = never.
    """

    skip_depth: dict[str, int] = field(default_factory=dict)
    malformed: list[str] = field(default_factory=list)
    rest_errors: list[tuple[int, float]] = field(default_factory=list)
    max_lifetime_s: float | None = None

    def take_skip(self, symbol: str) -> bool:
        """Consume one pending depth skip for ``symbol``; returns whether one was pending."""
        for key in (symbol, "*"):
            if self.skip_depth.get(key, 0) > 0:
                self.skip_depth[key] -= 1
                return True
        return False

    def take_rest_error(self) -> tuple[int, float] | None:
        """Consume the next pending REST error, if any."""
        return self.rest_errors.pop(0) if self.rest_errors else None


@dataclass(eq=False)
class _Conn:
    """One websocket client connection."""

    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    streams: set[str]
    opened: float
    queue: asyncio.Queue[str | None]
    last_pong: float
    last_ping: float
    ident: int
    stalled: bool = False
    closing: bool = False


class LoopbackExchange:
    """Binance on 127.0.0.1, fed by a :class:`MarketFeed` (see the module docstring).

    Args:
        feed: what to publish.
        host / port: where to listen (``port=0``: a free port).
        ping_interval_s: server ping period (Binance: 20 s spot, 3 min futures).
        pong_timeout_s: close a connection that answered no ping for this long.
        max_lifetime_s: initial :attr:`Faults.max_lifetime_s`.
        weight_limit: answer 429 once a window's used weight exceeds this
            (``None``: only count, never refuse).
        weight_window_s: length of the request-weight window (60 s on Binance).
        snapshot_wait_s: how long a depth request waits for the feed to be able
            to answer before it gets a 503.
        wait_for_client: start publishing only when the first client subscribed
            (so a test's client sees the capture from its beginning).
        queue_size: per-connection send queue; a client that falls this far
            behind is disconnected, as Binance drops slow consumers.
        on_publish: called with every ``(stream, data)`` actually published.
    """

    def __init__(
        self,
        feed: MarketFeed,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 60.0,
        max_lifetime_s: float | None = None,
        weight_limit: int | None = None,
        weight_window_s: float = 60.0,
        snapshot_wait_s: float = 5.0,
        wait_for_client: bool = True,
        queue_size: int = 200_000,
        on_publish: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.feed = feed
        self.host = host
        self.port = port
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.weight_limit = weight_limit
        self.weight_window_s = weight_window_s
        self.snapshot_wait_s = snapshot_wait_s
        self.wait_for_client = wait_for_client
        self.queue_size = queue_size
        self.on_publish = on_publish
        self.faults = Faults(max_lifetime_s=max_lifetime_s)
        self.injected: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.endpoints = endpoints(feed.market)
        self.pump_done = asyncio.Event()
        self._conns: set[_Conn] = set()
        self._ids = itertools.count(1)
        self._first_client = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._weight_window = -1
        self._weight_used = 0
        self._banned_until = 0.0
        self._last_trade_id: dict[str, int] = {}
        # diff-depth speeds the feed publishes itself: declared by the feed, else learnt
        declared = getattr(feed, "kinds", None)
        self._depth_kinds: set[str] = {k for k in declared or () if k in _DIFF_DEPTH_NAMES}

    # -- life cycle ---------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        """Websocket base URL (append ``/stream?streams=...`` or ``/ws/<stream>``)."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """REST base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        """Number of open websocket connections."""
        return len(self._conns)

    async def start(self) -> None:
        """Listen and start the pump."""
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._pump_task = asyncio.create_task(self._pump(), name="loopback-pump")
        log.info("loopback exchange (%s) on %s", self.feed.market, self.rest_url)

    async def stop(self) -> None:
        """Stop publishing, close every connection and the listener."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        for conn in list(self._conns):
            self._abort(conn)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LoopbackExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        prefix = self.endpoints.api_prefix
        app.router.add_get("/stream", self._ws_combined)
        app.router.add_get("/ws", self._ws_raw)
        app.router.add_get("/ws/{streams:.*}", self._ws_raw)
        app.router.add_get(f"{prefix}/depth", self._rest_depth)
        app.router.add_get(f"{prefix}/exchangeInfo", self._rest_exchange_info)
        app.router.add_get(f"{prefix}/ping", self._rest_ping)
        app.router.add_get(f"{prefix}/time", self._rest_time)
        app.router.add_post("/_admin/fault", self._admin_fault)
        app.router.add_get("/_admin/state", self._admin_state)
        return app

    # -- fault actions --------------------------------------------------------------

    def drop_connections(self) -> int:
        """Abort every open connection now (no close handshake); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            self._abort(conn)
        self.injected["drop_connections"] += len(conns)
        return len(conns)

    def stall_connections(self) -> int:
        """Make every open connection silent: no frames, no pings, no pongs."""
        conns = list(self._conns)
        for conn in conns:
            conn.stalled = True
        self.injected["stall_connections"] += len(conns)
        return len(conns)

    def skip_depth(self, count: int, symbol: str = "*") -> None:
        """Leave the next ``count`` depth events of ``symbol`` out of the stream."""
        key = symbol.upper() if symbol != "*" else "*"
        self.faults.skip_depth[key] = self.faults.skip_depth.get(key, 0) + count

    def send_malformed(self, count: int, kinds: list[str] | None = None) -> None:
        """Send ``count`` malformed frames before the next frame (cycling ``kinds``)."""
        chosen = kinds or list(MALFORMED_KINDS)
        unknown = set(chosen) - set(MALFORMED_KINDS)
        if unknown:
            raise ConfigError(f"unknown malformed kinds: {sorted(unknown)}")
        self.faults.malformed.extend(chosen[i % len(chosen)] for i in range(count))

    def rest_errors(self, count: int, status: int = 429, retry_after_s: float = 1.0) -> None:
        """Answer the next ``count`` REST calls with ``status`` and ``Retry-After``."""
        if status not in (429, 418):
            raise ConfigError("rest error status must be 429 or 418")
        self.faults.rest_errors.extend([(status, retry_after_s)] * count)

    async def server_shutdown(self, grace_s: float = 0.5) -> int:
        """Send ``serverShutdown`` on every open connection, close them after ``grace_s``."""
        conns = list(self._conns)
        text = _encode({"e": "serverShutdown", "E": _now_ms()}).decode()
        for conn in conns:
            self._enqueue(conn, text)
        self.injected["server_shutdown"] += len(conns)
        await asyncio.sleep(grace_s)
        for conn in conns:
            await self._close(conn, WSCloseCode.GOING_AWAY)
        return len(conns)

    # -- websocket ------------------------------------------------------------------

    async def _ws_combined(self, request: web.Request) -> web.WebSocketResponse:
        raw = request.query.get("streams", "")
        return await self._serve_ws(request, combined=True, streams=raw)

    async def _ws_raw(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve_ws(
            request, combined=False, streams=request.match_info.get("streams", "")
        )

    async def _serve_ws(
        self, request: web.Request, combined: bool, streams: str
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        now = time.monotonic()
        conn = _Conn(
            ws=ws,
            request=request,
            combined=combined,
            streams={s.lower() for s in streams.split("/") if s},
            opened=now,
            queue=asyncio.Queue(self.queue_size),
            last_pong=now,
            last_ping=now,
            ident=next(self._ids),
        )
        self._conns.add(conn)
        self.stats["connections_opened"] += 1
        if conn.streams:
            self._first_client.set()
        tasks = [
            asyncio.create_task(self._writer(conn)),
            asyncio.create_task(self._housekeeper(conn)),
        ]
        try:
            await self._reader(conn)
        finally:
            self._conns.discard(conn)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return ws

    async def _reader(self, conn: _Conn) -> None:
        async for msg in conn.ws:
            if conn.stalled:
                continue
            if msg.type == WSMsgType.PING:
                await conn.ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                conn.last_pong = time.monotonic()
            elif msg.type == WSMsgType.TEXT:
                self._on_method(conn, str(msg.data))

    def _on_method(self, conn: _Conn, text: str) -> None:
        try:
            request = msgspec.json.decode(text)
            method, ident = request.get("method"), request.get("id")
            params = [str(p).lower() for p in request.get("params", [])]
        except (msgspec.DecodeError, AttributeError, TypeError):
            self._reply(conn, {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
            return
        if method == "SUBSCRIBE":
            conn.streams.update(params)
            self._first_client.set()
            self._reply(conn, {"result": None, "id": ident})
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
            self._reply(conn, {"result": None, "id": ident})
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, {"result": sorted(conn.streams), "id": ident})
        else:
            self._reply(
                conn, {"error": {"code": 2, "msg": f"Invalid request: {method}"}, "id": ident}
            )

    def _reply(self, conn: _Conn, body: dict[str, Any]) -> None:
        self._enqueue(conn, _encode(body).decode())

    async def _writer(self, conn: _Conn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None:
                return
            if conn.stalled:
                continue
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def _housekeeper(self, conn: _Conn) -> None:
        tick = 0.05
        while not conn.ws.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            lifetime = self.faults.max_lifetime_s
            if lifetime is not None and now - conn.opened >= lifetime:
                self.injected["lifetime_expired"] += 1
                await self._close(conn, WSCloseCode.GOING_AWAY)
                return
            if conn.stalled:
                continue
            if now - conn.last_pong > self.pong_timeout_s:
                self.stats["pong_timeouts"] += 1
                await self._close(conn, WSCloseCode.POLICY_VIOLATION)
                return
            if now - conn.last_ping >= self.ping_interval_s:
                conn.last_ping = now
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.ping(str(_now_ms()).encode())

    def _enqueue(self, conn: _Conn, text: str) -> None:
        if conn.closing:
            return
        try:
            conn.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.stats["slow_consumers_dropped"] += 1
            self._abort(conn)

    async def _close(self, conn: _Conn, code: int) -> None:
        conn.closing = True
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await asyncio.wait_for(conn.ws.close(code=code), 1.0)

    def _abort(self, conn: _Conn) -> None:
        conn.closing = True
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    # -- pump -------------------------------------------------------------------------

    async def _pump(self) -> None:
        if self.wait_for_client:
            await self._first_client.wait()
        try:
            async for stream, data in self.feed.frames():
                if self.faults.malformed:
                    self._send_malformed(stream)
                if self._skipped(stream, data):
                    continue
                self._publish(stream, data)
        finally:
            self.pump_done.set()

    def _skipped(self, stream: str, data: dict[str, Any]) -> bool:
        if "@depth" not in stream or data.get("e") != "depthUpdate":
            return False
        if not self.faults.take_skip(str(data.get("s", ""))):
            return False
        self.injected["depth_skipped"] += 1
        return True

    def _publish(self, stream: str, data: dict[str, Any]) -> None:
        if data.get("e") == "trade":
            self._last_trade_id[stream] = int(data.get("t", 0))
        self.stats["frames_published"] += 1
        if self.on_publish is not None:
            self.on_publish(stream, data)
        names = _aliases(stream, self._depth_kinds)
        texts: dict[tuple[str, bool], str] = {}
        for conn in list(self._conns):
            if conn.stalled:
                continue
            name = next((n for n in names if n in conn.streams), None)
            if name is None:
                continue
            text = texts.get((name, conn.combined))
            if text is None:
                shown = stream if name == stream.lower() else name
                body = {"stream": shown, "data": data} if conn.combined else data
                text = texts[(name, conn.combined)] = _encode(body).decode()
            self._enqueue(conn, text)

    def _send_malformed(self, stream: str) -> None:
        symbol = symbol_of_stream(stream)
        trade_stream = f"{symbol.lower()}@trade"
        while self.faults.malformed:
            kind = self.faults.malformed.pop(0)
            data = self._malformed_data(kind, symbol, trade_stream)
            self.injected[f"malformed_{kind}"] += 1
            for conn in list(self._conns):
                if not any(s.startswith(symbol.lower() + "@") for s in conn.streams):
                    continue
                if kind == "broken_json":
                    self._enqueue(conn, '{"stream":"' + trade_stream + '","data":{"e":"trade","E":')
                elif conn.combined:
                    self._enqueue(conn, _encode({"stream": trade_stream, "data": data}).decode())
                else:
                    self._enqueue(conn, _encode(data).decode())

    def _malformed_data(self, kind: str, symbol: str, stream: str) -> dict[str, Any]:
        now = _now_ms()
        if kind == "unknown_event":
            return {"e": "mysteryEvent", "E": now, "s": symbol}
        trade_id = self._last_trade_id.get(stream, 0)
        price, qty = ("NaN", "0.001") if kind == "nan_price" else ("100.0", "-1.0")
        return {
            "e": "trade",
            "E": now,
            "s": symbol,
            "t": trade_id,
            "p": price,
            "q": qty,
            "T": now,
            "m": True,
        }

    # -- REST ---------------------------------------------------------------------------

    async def _rest_depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "").upper()
        try:
            limit = int(request.query.get("limit", "100" if self.feed.market == "spot" else "500"))
        except ValueError:
            limit = -1
        weight = depth_weight(self.feed.market, max(limit, 1))
        early = self._rest_gate(weight)
        if early is not None:
            return early
        if symbol not in self.feed.symbols:
            return self._json({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if not valid_depth_limit(self.feed.market, limit):
            return self._json(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}, status=400
            )
        deadline = time.monotonic() + self.snapshot_wait_s
        while True:
            try:
                snapshot = self.feed.snapshot(symbol, limit)
                break
            except SnapshotUnavailableError:
                if time.monotonic() >= deadline:
                    self.stats["rest_503"] += 1
                    body = {"code": -1008, "msg": "Service unavailable, try again."}
                    return self._json(body, status=503, retry_after=1.0)
                await asyncio.sleep(0.05)
        self.stats["rest_depth"] += 1
        return self._json(snapshot)

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        early = self._rest_gate(EXCHANGE_INFO_WEIGHT[self.feed.market])
        if early is not None:
            return early
        info = dict(self.feed.exchange_info())
        info["serverTime"] = _now_ms()
        return self._json(info)

    async def _rest_ping(self, request: web.Request) -> web.Response:
        return self._rest_gate(1) or self._json({})

    async def _rest_time(self, request: web.Request) -> web.Response:
        return self._rest_gate(1) or self._json({"serverTime": _now_ms()})

    def _rest_gate(self, weight: int) -> web.Response | None:
        """Count the request's weight; answer an injected or real 429/418 instead."""
        self.stats["rest_requests"] += 1
        now = time.monotonic()
        if now < self._banned_until:
            return self._json(
                {"code": -1003, "msg": "IP banned."},
                status=418,
                retry_after=self._banned_until - now,
            )
        fault = self.faults.take_rest_error()
        if fault is not None:
            status, retry_after = fault
            self.injected[f"rest_{status}"] += 1
            if status == 418:
                self._banned_until = now + retry_after
            body = {"code": -1003, "msg": "Too many requests; injected fault."}
            return self._json(body, status=status, retry_after=retry_after)
        used = self._add_weight(weight)
        if self.weight_limit is not None and used > self.weight_limit:
            self.stats["rest_429_weight"] += 1
            body = {"code": -1003, "msg": "Too much request weight used."}
            return self._json(body, status=429, retry_after=self._window_left())
        return None

    def _add_weight(self, weight: int) -> int:
        window = math.floor(time.time() / self.weight_window_s)
        if window != self._weight_window:
            self._weight_window, self._weight_used = window, 0
        self._weight_used += weight
        return self._weight_used

    def _window_left(self) -> float:
        return self.weight_window_s - (time.time() % self.weight_window_s)

    def _json(self, body: Any, status: int = 200, retry_after: float | None = None) -> web.Response:
        headers = {"X-MBX-USED-WEIGHT-1M": str(self._current_weight())}
        if retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
        return web.Response(
            body=_encode(body), status=status, headers=headers, content_type="application/json"
        )

    def _current_weight(self) -> int:
        window = math.floor(time.time() / self.weight_window_s)
        return self._weight_used if window == self._weight_window else 0

    # -- admin ----------------------------------------------------------------------------

    async def _admin_fault(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            result = await self.apply_fault(dict(body))
        except (ValueError, TypeError, KeyError, ConfigError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "result": result})

    async def apply_fault(self, body: dict[str, Any]) -> Any:
        """Apply one admin fault request ``{"fault": name, ...}`` (see docs/live.md)."""
        name = body["fault"]
        count = int(body.get("count", 1))
        if name == "drop_connections":
            return self.drop_connections()
        if name == "stall_connections":
            return self.stall_connections()
        if name == "skip_depth":
            self.skip_depth(count, str(body.get("symbol", "*")))
        elif name == "malformed":
            self.send_malformed(count, body.get("kinds"))
        elif name == "rest_error":
            self.rest_errors(
                count, int(body.get("status", 429)), float(body.get("retry_after", 1.0))
            )
        elif name == "server_shutdown":
            return await self.server_shutdown(float(body.get("grace_s", 0.5)))
        elif name == "max_lifetime":
            seconds = body.get("seconds")
            self.faults.max_lifetime_s = None if seconds is None else float(seconds)
        elif name == "ping":
            self.ping_interval_s = float(body.get("interval_s", self.ping_interval_s))
            self.pong_timeout_s = float(body.get("pong_timeout_s", self.pong_timeout_s))
        else:
            raise ConfigError(f"unknown fault {name!r}")
        return None

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    def state(self) -> dict[str, Any]:
        """Connections, counters and pending faults, as JSON-ready data."""
        return {
            "market": self.feed.market,
            "symbols": list(self.feed.symbols),
            "connections": [
                {
                    "id": c.ident,
                    "streams": sorted(c.streams),
                    "combined": c.combined,
                    "stalled": c.stalled,
                }
                for c in self._conns
            ],
            "injected": dict(self.injected),
            "stats": dict(self.stats),
            "pump_done": self.pump_done.is_set(),
            "max_lifetime_s": self.faults.max_lifetime_s,
        }


_DIFF_DEPTH_NAMES = ("depth", "depth@100ms", "depth@250ms", "depth@500ms", "depth@0ms")


def _aliases(stream: str, own_kinds: set[str]) -> tuple[str, ...]:
    """Subscription names served by ``stream``'s frames.

    A diff-depth stream is also served under the other update-speed names (a
    feed with one speed still gives a client asking for another a valid diff
    chain), but not under a speed the feed publishes itself (``own_kinds``,
    to which ``stream``'s own speed is added): a client of ``depth@100ms``
    gets only the feed's 100 ms diffs, never its 1 s diffs too, as on Binance.
    """
    lowered = stream.lower()
    symbol, _, kind = lowered.partition("@")
    if kind in _DIFF_DEPTH_NAMES:
        own_kinds.add(kind)
        others = (k for k in _DIFF_DEPTH_NAMES if k != kind and k not in own_kinds)
        return (lowered, *(f"{symbol}@{k}" for k in others))
    return (lowered,)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def capture_feed(paths: list[str], speed: float | None, market: str | None = None) -> MarketFeed:
    """A feed for capture files: one session, or several symbols' sessions merged.

    Files are grouped into sessions by the symbol prefix of their names
    (``btcusdt_20240718.gz`` + ``btcusdt_20240719.gz``), each read in name order.
    """
    from pathlib import Path

    from microstream.sim.capture_feed import CaptureFeed, MultiCaptureFeed

    sessions: dict[str, list[str]] = {}
    for path in sorted(paths, key=lambda p: Path(p).name):
        sessions.setdefault(Path(path).name.split("_20")[0], []).append(path)
    if len(sessions) == 1:
        return CaptureFeed(paths, speed=speed, market=market)
    feeds = [CaptureFeed(files, market=market) for files in sessions.values()]
    return MultiCaptureFeed(feeds, speed=speed)


def main(argv: list[str] | None = None) -> int:
    """``python -m microstream.sim.exchange CAPTURE...``: serve a capture on loopback."""
    parser = argparse.ArgumentParser(description="Binance loopback exchange fed by a capture")
    parser.add_argument(
        "captures", nargs="+", help="capture files (several symbols' sessions are merged)"
    )
    parser.add_argument("--speed", default="1", help="replay speed factor or 'max'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--market", default=None, help="spot|usdm|coinm (default: from the path)")
    parser.add_argument("--ping-interval", type=float, default=20.0)
    parser.add_argument("--max-lifetime", type=float, default=None)
    args = parser.parse_args(argv)
    speed = None if args.speed == "max" else float(args.speed)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def serve() -> None:
        feed = capture_feed(args.captures, speed, args.market)
        exchange = LoopbackExchange(
            feed,
            args.host,
            args.port,
            ping_interval_s=args.ping_interval,
            max_lifetime_s=args.max_lifetime,
        )
        async with exchange:
            print(
                f"BINANCE_WS_URL={exchange.ws_url} BINANCE_REST_URL={exchange.rest_url}", flush=True
            )
            await exchange.pump_done.wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
