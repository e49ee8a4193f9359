"""The live Binance market-data feed: one combined-stream websocket, kept alive.

:class:`BinanceLiveFeed` subscribes many symbols' streams on ONE combined-stream
connection and turns every received frame into a
:class:`~microstream.frames.RawFrame` handed, in order, to ``on_frame``. It
does no parsing beyond a light msgspec decode of the few fields it needs
(stream name, the ids used for de-duplication, ``serverShutdown``); the parser
and the book synchronizer downstream do the rest.

Keeping the connection healthy:

* answers server pings with pongs and sends its own keepalive pings;
* reconnects after a drop with exponential backoff and full jitter (capped),
  the attempt counter resets once a connection has been stable;
* a watchdog reconnects when the *connection* is dead (nothing at all received,
  pongs included, for ``watchdog_s``); a quiet symbol never triggers it, since
  the keepalive pongs keep arriving;
* ``serverShutdown`` -> an immediate roll-over, before the server closes;
* gap-free roll-over before Binance's 24 h limit (``max_lifetime_s``): a new
  connection is opened, its frames are buffered until the overlap with the old
  one is proven (the old connection delivered a frame the new one has too) or
  ``overlap_timeout_s`` passed, then the old one is closed and the buffered
  frames that the old one had not delivered are forwarded: every frame exactly
  once, de-duplicated per stream by trade id ``t``, aggregate id ``a``, update
  id ``u`` or ``lastUpdateId``.

After a reconnect (not a roll-over, which loses nothing) ``on_reconnect(symbols)``
is called: the consumer should request fresh snapshots
(:meth:`BinanceLiveFeed.request_snapshot`). The book synchronizer detects the
gap from the update ids anyway; the hook only makes the resync start sooner.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from microstream.config import Settings
from microstream.errors import FeedError, IpBannedError, RateLimitedError
from microstream.frames import RawFrame
from microstream.venues.binance.endpoints import (
    MarketEndpoints,
    default_streams,
    endpoints,
    symbol_of_stream,
)
from microstream.venues.binance.rest import RestClient

log = logging.getLogger(__name__)

MAX_URL_STREAMS = 200
"""More streams than this are subscribed with ``SUBSCRIBE`` frames instead of the URL."""


class _Ids(msgspec.Struct):
    """The few ``data`` fields the feed reads (everything else is skipped)."""

    e: str | None = None
    t: int | None = None
    a: msgspec.Raw = (
        msgspec.Raw()
    )  # aggregate id on aggTrade, asks list on depth, price on bookTicker
    u: int | None = None
    lastUpdateId: int | None = None


class _Head(msgspec.Struct):
    """Envelope fields, method replies and bare events."""

    stream: str | None = None
    data: _Ids | None = None
    e: str | None = None
    id: int | str | None = None
    result: Any = None
    error: Any = None


_HEAD = msgspec.json.Decoder(_Head)


@dataclass(frozen=True)
class LiveFeedConfig:
    """Tuning of :class:`BinanceLiveFeed`; the defaults suit the real Binance.

    Attributes:
        ping_interval_s: period of the client's own keepalive pings.
        watchdog_s: reconnect when nothing (data, ping or pong) arrived for this long.
        max_lifetime_s: roll over to a new connection after this long
            (Binance closes connections after 24 h).
        overlap_timeout_s: longest roll-over overlap before the switch is forced.
        backoff_base_s / backoff_cap_s: reconnect backoff, full jitter.
        stable_s: a connection alive this long resets the backoff.
        connect_timeout_s: websocket handshake timeout.
        snapshot_limit: depth levels of :meth:`BinanceLiveFeed.request_snapshot`.
        snapshot_retries: retries of a rate-limited snapshot request.
        rest_weight_limit: REST weight budget per minute (``None``: the market's).
        rest_weight_window_s: REST weight window (60 s on Binance).
    """

    ping_interval_s: float = 20.0
    watchdog_s: float = 60.0
    max_lifetime_s: float = 23.5 * 3600
    overlap_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stable_s: float = 60.0
    connect_timeout_s: float = 10.0
    snapshot_limit: int = 1000
    snapshot_retries: int = 3
    rest_weight_limit: int | None = None
    rest_weight_window_s: float = 60.0


@dataclass(eq=False)
class _Conn:
    """One websocket connection and what the feed knows about it."""

    ident: int
    ws: aiohttp.ClientWebSocketResponse[bool]
    opened: float
    last_rx: float
    candidate: bool = False
    got_data: bool = False
    shutdown_notice: bool = False
    buffer: list[tuple[RawFrame, str | None, int | None]] = field(default_factory=list)
    first_keys: dict[str, int] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return not self.ws.closed and bool(self.tasks) and not self.tasks[0].done()


@dataclass
class FeedStats:
    """Counters of a live feed (for ``/health`` and ``/metrics``)."""

    messages: int = 0
    bytes: int = 0
    reconnects: int = 0
    rollovers: int = 0
    duplicates_dropped: int = 0
    watchdog_fired: int = 0
    server_shutdowns: int = 0
    snapshots_requested: int = 0
    snapshots_delivered: int = 0
    snapshot_errors: int = 0
    consumer_errors: int = 0
    undecodable: int = 0
    last_message_ns: int | None = None
    state: str = "idle"


class BinanceLiveFeed:
    """Live Binance market data for many symbols over one combined stream.

    Args:
        market: ``"spot"``, ``"usdm"`` or ``"coinm"``.
        symbols: upper-case symbols.
        on_frame: receives every frame (and every requested snapshot) in order.
        streams: stream names (default: diff depth, trade and bookTicker per symbol).
        ws_url / rest_url: base URLs (default: ``settings``, then Binance's).
        on_reconnect: called with the symbols after a reconnect that may have lost data.
        config: timings and limits.
        settings: read for ``BINANCE_WS_URL`` / ``BINANCE_REST_URL``.
    """

    def __init__(
        self,
        market: str,
        symbols: Iterable[str],
        on_frame: Callable[[RawFrame], None],
        *,
        streams: Iterable[str] | None = None,
        ws_url: str | None = None,
        rest_url: str | None = None,
        on_reconnect: Callable[[list[str]], None] | None = None,
        config: LiveFeedConfig | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.market = market
        self.symbols = [s.upper() for s in symbols]
        self.endpoints: MarketEndpoints = endpoints(market, ws_url, rest_url, settings)
        self.streams = list(streams) if streams is not None else self._default_streams()
        self.on_frame = on_frame
        self.on_reconnect = on_reconnect
        self.config = config or LiveFeedConfig()
        self.stats = FeedStats()
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestClient | None = None
        self._primary: _Conn | None = None
        self._candidate: _Conn | None = None
        self._last_keys: dict[str, int] = {}
        self._catching_up: set[str] = set()
        self._wake = asyncio.Event()
        self._overlap = asyncio.Event()
        self._proven = False
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._snapshot_tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._connected = asyncio.Event()

    def _default_streams(self) -> list[str]:
        return [s for sym in self.symbols for s in default_streams(sym, self.market)]

    # -- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the connection supervisor (returns at once)."""
        if self._supervisor is not None:
            return
        self._session = aiohttp.ClientSession()
        self._rest = RestClient(
            self.endpoints,
            self._session,
            weight_limit=self.config.rest_weight_limit,
            weight_window_s=self.config.rest_weight_window_s,
        )
        self._stopping = False
        self._supervisor = asyncio.create_task(self._supervise(), name="binance-live-feed")
        self._supervisor.add_done_callback(self._supervisor_done)

    def _supervisor_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.stats.state = "failed"
            log.error("live feed supervisor died", exc_info=task.exception())

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the first connection is open; :class:`FeedError` after ``timeout``."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError as exc:
            url = self.endpoints.ws_url
            raise FeedError(f"no connection to {url} within {timeout} s") from exc

    async def stop(self) -> None:
        """Close every connection and stop; pending snapshot requests are cancelled."""
        self._stopping = True
        self._wake.set()
        for task in list(self._snapshot_tasks):
            task.cancel()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for conn in (self._candidate, self._primary):
            if conn is not None:
                await self._close(conn)
        self._primary = self._candidate = None
        await asyncio.gather(*self._snapshot_tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.stats.state = "stopped"

    async def __aenter__(self) -> BinanceLiveFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def rest(self) -> RestClient:
        """The REST client (after :meth:`start`)."""
        if self._rest is None:
            raise FeedError("the feed is not started")
        return self._rest

    def health(self) -> dict[str, Any]:
        """Counters and connection state as JSON-ready data."""
        info = dict(vars(self.stats))
        last = self.stats.last_message_ns
        info["last_message_age_s"] = None if last is None else (time.time_ns() - last) / 1e9
        info["connections"] = sum(1 for c in (self._primary, self._candidate) if c is not None)
        return info

    # -- supervisor ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        connected_before = False
        while not self._stopping:
            self.stats.state = "reconnecting" if connected_before else "connecting"
            try:
                conn = await self._open()
            except FeedError as exc:
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("connect failed (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            self._primary = conn
            self._catching_up = set()
            self.stats.state = "connected"
            self._connected.set()
            if connected_before:
                self.stats.reconnects += 1
                self._notify_reconnect()
            connected_before = True
            lived = await self._run_primary()
            if lived >= self.config.stable_s:
                attempt = 0
            if not self._stopping:
                delay = self._backoff(attempt)
                attempt += 1
                log.warning("connection lost after %.1f s; reconnecting in %.2f s", lived, delay)
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.config.backoff_cap_s, self.config.backoff_base_s * 2**attempt)
        return random.uniform(0.0, ceiling)

    def _notify_reconnect(self) -> None:
        if self.on_reconnect is None:
            return
        try:
            self.on_reconnect(list(self.symbols))
        except Exception:
            self.stats.consumer_errors += 1
            log.exception("on_reconnect failed")

    async def _run_primary(self) -> float:
        """Keep the primary alive (rolling it over when due); returns how long the last one lived."""
        tick = min(0.25, self.config.watchdog_s / 4, self.config.ping_interval_s / 2)
        next_rollover_try = 0.0
        while not self._stopping:
            conn = self._primary
            if conn is None:
                return 0.0
            now = time.monotonic()
            if not conn.alive:
                await self._close(conn)
                return now - conn.opened
            if now - conn.last_rx > self.config.watchdog_s:
                self.stats.watchdog_fired += 1
                log.warning(
                    "watchdog: nothing received for %.1f s; reconnecting", now - conn.last_rx
                )
                await self._close(conn)
                return now - conn.opened
            due = now - conn.opened >= self.config.max_lifetime_s or conn.shutdown_notice
            if due and now >= next_rollover_try:
                if not await self._rollover():
                    next_rollover_try = time.monotonic() + self._backoff(2)
                continue
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
        return 0.0

    # -- connections --------------------------------------------------------------------

    async def _open(self, candidate: bool = False) -> _Conn:
        if self._session is None:
            raise FeedError("the feed is not started")
        use_url = len(self.streams) <= MAX_URL_STREAMS
        url = self.endpoints.combined_url(self.streams if use_url else None)
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        try:
            ws = await asyncio.wait_for(
                self._session.ws_connect(
                    url, autoping=False, timeout=timeout, max_msg_size=1 << 22, decode_text=False
                ),
                self.config.connect_timeout_s,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise FeedError(f"cannot connect to {url}: {exc!r}") from exc
        now = time.monotonic()
        conn = _Conn(next(self._ids), ws, opened=now, last_rx=now, candidate=candidate)
        conn.tasks = [
            asyncio.create_task(self._reader(conn), name=f"ws-reader-{conn.ident}"),
            asyncio.create_task(self._pinger(conn), name=f"ws-pinger-{conn.ident}"),
        ]
        if not use_url:
            await self._subscribe(conn, self.streams)
        log.info(
            "connection %d open (%d streams)%s",
            conn.ident,
            len(self.streams),
            " [roll-over]" if candidate else "",
        )
        return conn

    async def _subscribe(self, conn: _Conn, streams: list[str]) -> None:
        for i in range(0, len(streams), MAX_URL_STREAMS):
            chunk = streams[i : i + MAX_URL_STREAMS]
            body = {"method": "SUBSCRIBE", "params": chunk, "id": next(self._ids)}
            await conn.ws.send_str(msgspec.json.encode(body).decode())

    async def _close(self, conn: _Conn) -> None:
        for task in conn.tasks:
            task.cancel()
        with contextlib.suppress(
            aiohttp.ClientError, asyncio.TimeoutError, ConnectionError, RuntimeError
        ):
            await asyncio.wait_for(conn.ws.close(), 2.0)
        await asyncio.gather(*conn.tasks, return_exceptions=True)

    async def _reader(self, conn: _Conn) -> None:
        try:
            async for msg in conn.ws:
                conn.last_rx = time.monotonic()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    data = msg.data
                    self._on_message(conn, data if isinstance(data, bytes) else str(data).encode())
                elif msg.type == aiohttp.WSMsgType.PING:
                    await conn.ws.pong(msg.data)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            log.warning("connection %d failed: %r", conn.ident, exc)
        finally:
            log.info("connection %d closed", conn.ident)
            self._wake.set()
            self._overlap.set()

    async def _pinger(self, conn: _Conn) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(self.config.ping_interval_s)
            with contextlib.suppress(ConnectionError, RuntimeError, aiohttp.ClientError):
                await conn.ws.ping(b"keepalive")

    # -- frames -------------------------------------------------------------------------

    def _on_message(self, conn: _Conn, payload: bytes) -> None:
        ts = time.time_ns()
        try:
            head = _HEAD.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.stats.undecodable += 1
            head = None
        if head is not None and self._is_control(conn, head):
            return
        stream = head.stream if head is not None else None
        key = _dedup_key(head.data) if head is not None and head.data is not None else None
        frame = RawFrame(ts, payload, self.market)
        if conn.candidate:
            self._buffer(conn, frame, stream, key)
            return
        if conn is not self._primary:
            return
        self._check_overlap(stream, key)
        if not self._is_duplicate(stream, key):
            self._deliver(frame, stream, key)

    def _is_control(self, conn: _Conn, head: _Head) -> bool:
        """Handle method replies and ``serverShutdown``; True when the frame is not data."""
        event = head.e or (head.data.e if head.data is not None else None)
        if event == "serverShutdown":
            self.stats.server_shutdowns += 1
            log.warning("connection %d: serverShutdown received; rolling over now", conn.ident)
            conn.shutdown_notice = True
            self._wake.set()
            return True
        if head.stream is None and head.id is not None:
            if head.error is not None:
                log.error("connection %d: request %s failed: %s", conn.ident, head.id, head.error)
            return True
        return False

    def _buffer(self, conn: _Conn, frame: RawFrame, stream: str | None, key: int | None) -> None:
        conn.got_data = True
        conn.buffer.append((frame, stream, key))
        if stream is not None and key is not None:
            conn.first_keys.setdefault(stream, key)
            last = self._last_keys.get(stream)
            if last is not None and key <= last:  # the old connection already delivered it
                self._prove_overlap()
        self._wake.set()

    def _prove_overlap(self) -> None:
        self._proven = True
        self._overlap.set()

    def _check_overlap(self, stream: str | None, key: int | None) -> None:
        candidate = self._candidate
        if candidate is None or stream is None or key is None:
            return
        first = candidate.first_keys.get(stream)
        if first is not None and key >= first:
            self._prove_overlap()

    def _deliver(self, frame: RawFrame, stream: str | None, key: int | None) -> None:
        if stream is not None and key is not None:
            last = self._last_keys.get(stream)
            if last is None or key > last:
                self._last_keys[stream] = key
        self.stats.messages += 1
        self.stats.bytes += len(frame.payload)
        self.stats.last_message_ns = frame.ts_recv
        try:
            self.on_frame(frame)
        except Exception:
            self.stats.consumer_errors += 1
            log.exception("on_frame failed")

    # -- roll-over ------------------------------------------------------------------------

    async def _rollover(self) -> bool:
        """Open a new connection, switch to it without loss; False if it failed."""
        old = self._primary
        assert old is not None
        try:
            new = await self._open(candidate=True)
        except FeedError as exc:
            log.warning("roll-over connection failed: %s", exc)
            return False
        self._candidate = new
        self._proven = False
        delivered_before = self.stats.messages
        await self._await_overlap(old, new)
        self._candidate = None
        starved = not new.got_data and self.stats.messages > delivered_before
        if self._stopping or not new.alive or (starved and old.alive and not self._proven):
            log.warning("roll-over connection %d unusable; keeping %d", new.ident, old.ident)
            await self._close(new)
            return False
        lossy = not self._proven and not old.alive
        await self._switch(old, new)
        if lossy:  # the old connection died before the overlap was proven
            self._notify_reconnect()
        return True

    async def _await_overlap(self, old: _Conn, new: _Conn) -> None:
        """Wait until the overlap is proven, either connection died, or the timeout."""
        deadline = time.monotonic() + self.config.overlap_timeout_s
        while not self._stopping and not self._proven and old.alive and new.alive:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._overlap.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._overlap.wait(), left)

    async def _switch(self, old: _Conn, new: _Conn) -> None:
        for task in old.tasks:
            task.cancel()
        new.candidate = False
        self._primary = new
        self._flush(new)
        self.stats.rollovers += 1
        log.info("rolled over from connection %d to %d", old.ident, new.ident)
        await self._close(old)

    def _flush(self, conn: _Conn) -> None:
        """Forward the new connection's buffer; it catches up with the old one's ids."""
        self._catching_up = set(self._last_keys)
        buffered, conn.buffer = conn.buffer, []
        for frame, stream, key in buffered:
            if not self._is_duplicate(stream, key):
                self._deliver(frame, stream, key)

    def _is_duplicate(self, stream: str | None, key: int | None) -> bool:
        """After a switch, drop a stream's frames until it passes the old connection's last id.

        The new connection may lag behind the old one, so frames the old one
        already delivered can still arrive after the switch. Once a stream has
        moved past the last id delivered, it is no longer checked.
        """
        if stream is None or key is None or stream not in self._catching_up:
            return False
        last = self._last_keys.get(stream)
        if last is not None and key <= last:
            self.stats.duplicates_dropped += 1
            return True
        self._catching_up.discard(stream)
        return False

    # -- snapshots ----------------------------------------------------------------------

    def request_snapshot(self, symbol: str, limit: int | None = None) -> asyncio.Task[None]:
        """Fetch the REST depth snapshot in the background and deliver it through ``on_frame``.

        The frame is ``RawFrame(ts_recv, <bare snapshot JSON>, market, symbol)``.
        Rate limits are honoured (429 waits, 418 gives up and is logged).
        """
        self.stats.snapshots_requested += 1
        task = asyncio.create_task(
            self._fetch_snapshot(symbol.upper(), limit or self.config.snapshot_limit)
        )
        self._snapshot_tasks.add(task)
        task.add_done_callback(self._snapshot_tasks.discard)
        return task

    async def _fetch_snapshot(self, symbol: str, limit: int) -> None:
        for attempt in range(self.config.snapshot_retries + 1):
            try:
                body = await self.rest.depth_raw(symbol, limit)
            except RateLimitedError as exc:
                log.warning("%s snapshot rate limited (attempt %d)", symbol, attempt + 1)
                await asyncio.sleep(exc.retry_after)
                continue
            except IpBannedError:
                self.stats.snapshot_errors += 1
                log.error("%s snapshot refused: IP banned", symbol)
                return
            except FeedError as exc:
                self.stats.snapshot_errors += 1
                log.error("%s snapshot failed: %s", symbol, exc)
                return
            self.stats.snapshots_delivered += 1
            self._deliver(RawFrame(time.time_ns(), body, self.market, symbol), None, None)
            return
        self.stats.snapshot_errors += 1
        log.error("%s snapshot: still rate limited, giving up", symbol)


def _dedup_key(ids: _Ids) -> int | None:
    """The per-stream increasing id of a data frame, if it has one."""
    if ids.t is not None:
        return ids.t
    if ids.e == "aggTrade" and len(ids.a):
        value = msgspec.json.decode(ids.a)
        return value if isinstance(value, int) else None
    if ids.u is not None:
        return ids.u
    return ids.lastUpdateId


def streams_by_symbol(streams: Iterable[str]) -> dict[str, list[str]]:
    """Group stream names by their upper-case symbol."""
    grouped: dict[str, list[str]] = {}
    for stream in streams:
        grouped.setdefault(symbol_of_stream(stream), []).append(stream)
    return grouped
