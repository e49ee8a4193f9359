"""A :class:`~microstream.sim.feed.MarketFeed` replaying a real Binance capture.

The capture format is the one in ``../shared/data/binance``: gzip text, one
line per received frame, ``<local_receive_time> <json>`` with the time in
nanoseconds (19 digits) or microseconds (16 digits). The JSON is a
combined-stream envelope, except one bare REST snapshot line per session,
which is never the first line. A session may be split over several files that
are read in order as one stream.

:class:`CaptureFeed` yields the envelopes' ``(stream, data)`` paced by their
receive times at ``speed`` (``None`` = as fast as possible) and keeps the
exchange's own order book (:class:`ExchangeBook`): the capture's snapshot plus
the depth events yielded since, so :meth:`CaptureFeed.snapshot` answers with a
correct ``lastUpdateId`` at any later point. Until the capture's snapshot line
has been passed it raises :class:`~microstream.errors.SnapshotUnavailableError`
(the loopback exchange answers 503 and the client retries).
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from microstream.errors import CaptureError, SnapshotUnavailableError

log = logging.getLogger(__name__)

_DECODER = msgspec.json.Decoder()
_YIELD_EVERY = 256
"""At full speed, give the event loop a turn after this many frames."""


def recv_time_ns(raw: bytes | str) -> int:
    """A capture line's receive time in nanoseconds (µs values are scaled)."""
    value = int(raw)
    return value * 1000 if value < 10**17 else value


def iter_capture_lines(paths: Sequence[str | Path]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(receive time ns, decoded JSON)`` for every line of the files, in order.

    Blank or undecodable lines are logged and skipped; a missing file raises
    :class:`CaptureError`.
    """
    for path in paths:
        try:
            yield from _iter_file(Path(path))
        except OSError as exc:
            raise CaptureError(f"cannot read capture {path}: {exc}") from exc


def _iter_file(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with gzip.open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            parsed = _split_line(line)
            if parsed is None:
                log.warning("skipping malformed line %s:%d", path, number)
                continue
            yield parsed


def _split_line(line: bytes) -> tuple[int, dict[str, Any]] | None:
    ts_raw, _, body = line.strip().partition(b" ")
    if not body:
        return None
    try:
        value = _DECODER.decode(body)
        ts = recv_time_ns(ts_raw)
    except (msgspec.DecodeError, ValueError):
        return None
    return (ts, value) if isinstance(value, dict) else None


def _decimals(text: str) -> int:
    _, _, frac = text.partition(".")
    return len(frac.rstrip("0"))


class ExchangeBook:
    """The exchange's own full-depth book of one symbol, in the wire's strings.

    Levels are keyed by float price and keep the original price and quantity
    strings, so a snapshot is rendered exactly as Binance would render it.
    """

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last_update_id: int = int(snapshot["lastUpdateId"])
        self.bids: dict[float, tuple[str, str]] = {}
        self.asks: dict[float, tuple[str, str]] = {}
        self._set(self.bids, snapshot.get("bids", []))
        self._set(self.asks, snapshot.get("asks", []))

    @staticmethod
    def _set(side: dict[float, tuple[str, str]], levels: list[list[str]]) -> None:
        for price, qty in levels:
            key = float(price)
            if float(qty) == 0.0:
                side.pop(key, None)
            else:
                side[key] = (price, qty)

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply a depth event newer than the book; returns whether it applied."""
        last = int(event["u"])
        if last <= self.last_update_id:
            return False
        self._set(self.bids, event.get("b", []))
        self._set(self.asks, event.get("a", []))
        self.last_update_id = last
        return True

    def levels(self, limit: int) -> tuple[list[list[str]], list[list[str]]]:
        """The best ``limit`` bids (descending) and asks (ascending)."""
        bids = [list(self.bids[k]) for k in heapq.nlargest(limit, self.bids)]
        asks = [list(self.asks[k]) for k in heapq.nsmallest(limit, self.asks)]
        return bids, asks


class CaptureFeed:
    """Replays one capture session (one symbol) as a :class:`MarketFeed`.

    Args:
        paths: the session's files, in order.
        speed: replay speed factor relative to the receive times (``None``:
            as fast as possible).
        symbol: the session's symbol (default: taken from the first frame);
            frames of other symbols are skipped.
        market: ``"spot"``, ``"usdm"`` or ``"coinm"`` (default: from the path,
            then from the frames).
        max_frames: stop after this many frames (``None``: the whole capture).
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        speed: float | None = None,
        symbol: str | None = None,
        market: str | None = None,
        max_frames: int | None = None,
    ) -> None:
        if not paths:
            raise CaptureError("CaptureFeed needs at least one capture file")
        for path in paths:
            if not Path(path).is_file():
                raise CaptureError(f"capture file not found: {path}")
        if speed is not None and speed <= 0:
            raise CaptureError("speed must be positive (or None for as fast as possible)")
        self.paths = [Path(p) for p in paths]
        self.speed = speed
        self.max_frames = max_frames
        self.market: str = market or _market_from_path(self.paths[0]) or "spot"
        first_symbol = symbol.upper() if symbol else _first_symbol(self.paths)
        self.symbols: list[str] = [first_symbol]
        self.frames_yielded = 0
        self.last_recv_ns: int | None = None
        self.finished = False
        self._books: dict[str, ExchangeBook] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {first_symbol: []}
        self._last_event: dict[str, dict[str, Any]] = {}
        self._tick_decimals: tuple[int, int] | None = None

    # -- the MarketFeed protocol ------------------------------------------------

    async def frames(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield the capture's frames, paced by their receive times at ``speed``."""
        pacer = _Pacer(self.speed)
        for ts, value in iter_capture_lines(self.paths):
            frame = self.accept(value)
            if frame is None:
                continue
            await pacer.wait(ts, self.frames_yielded)
            self.published(ts, *frame)
            yield frame
            if self.max_frames is not None and self.frames_yielded >= self.max_frames:
                break
        self.finished = True

    def accept(self, value: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Classify one capture line: the frame to publish, or ``None``.

        The session's snapshot line is taken into the exchange's book here.
        """
        if "lastUpdateId" in value and "stream" not in value:
            self._on_snapshot_line(value)
            return None
        stream, data = value.get("stream"), value.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            return None
        if data.get("s", self.symbols[0]) != self.symbols[0]:
            return None
        return stream, data

    def published(self, ts: int, stream: str, data: dict[str, Any]) -> None:
        """Account for a frame being published now (the book follows the stream)."""
        self.last_recv_ns = ts
        self._on_yield(stream, data)

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The book after the last yielded depth event (see :class:`MarketFeed`)."""
        symbol = symbol.upper()
        if symbol not in self.symbols:
            raise KeyError(symbol)
        book = self._books.get(symbol)
        if book is None:
            raise SnapshotUnavailableError(f"{symbol}: the capture's snapshot is not reached yet")
        bids, asks = book.levels(limit)
        answer: dict[str, Any] = {"lastUpdateId": book.last_update_id}
        if self.market != "spot":
            last = self._last_event.get(symbol, {})
            answer["E"] = last.get("E", 0)
            answer["T"] = last.get("T", last.get("E", 0))
        if self.market == "coinm":
            answer["symbol"] = symbol
            answer["pair"] = symbol.split("_")[0]
        answer["bids"] = bids
        answer["asks"] = asks
        return answer

    def exchange_info(self) -> dict[str, Any]:
        """A minimal ``exchangeInfo`` with tick and lot sizes inferred from the capture."""
        price_dec, qty_dec = self._tick_decimals or _DEFAULT_DECIMALS.get(self.market, (2, 5))
        symbols = [
            {
                "symbol": symbol,
                "status": "TRADING",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": _step(price_dec)},
                    {"filterType": "LOT_SIZE", "stepSize": _step(qty_dec)},
                ],
            }
            for symbol in self.symbols
        ]
        return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "symbols": symbols}

    # -- the exchange's own book ------------------------------------------------

    def book(self, symbol: str) -> ExchangeBook | None:
        """The exchange's book of ``symbol`` (``None`` before the snapshot line)."""
        return self._books.get(symbol.upper())

    def _on_yield(self, stream: str, data: dict[str, Any]) -> None:
        self.frames_yielded += 1
        if data.get("e") != "depthUpdate" or "@depth" not in stream:
            return
        symbol = str(data.get("s", self.symbols[0]))
        self._last_event[symbol] = data
        book = self._books.get(symbol)
        if book is None:
            self._pending.setdefault(symbol, []).append(data)
        else:
            book.apply(data)

    def _on_snapshot_line(self, snapshot: dict[str, Any]) -> None:
        symbol = str(snapshot.get("symbol", self.symbols[0]))
        if symbol in self._books:
            log.warning("%s: second snapshot line in the capture ignored", symbol)
            return
        book = ExchangeBook(snapshot)
        for event in self._pending.pop(symbol, []):
            book.apply(event)
        self._books[symbol] = book
        self._tick_decimals = _infer_decimals(snapshot)


class _Pacer:
    """Sleeps so that frames go out at their receive times, scaled by ``speed``."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._start_wall: float | None = None
        self._start_ts = 0

    async def wait(self, ts: int, count: int) -> None:
        """Wait for the frame received at ``ts`` (ns); ``count`` frames went out so far."""
        loop = asyncio.get_running_loop()
        if self._start_wall is None:
            self._start_wall, self._start_ts = loop.time(), ts
        delay = 0.0
        if self.speed is not None:
            delay = self._start_wall + (ts - self._start_ts) / 1e9 / self.speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif count % _YIELD_EVERY == 0:
            await asyncio.sleep(0)  # at full speed, still let the event loop breathe


class MultiCaptureFeed:
    """Several sessions of one market recorded together, merged by receive time.

    For example the USD-M ``btcusdt`` and ``ethusdt`` files of the same night:
    the loopback exchange then serves both symbols, each with its own book.

    Args:
        feeds: one :class:`CaptureFeed` per session (their ``speed`` is ignored).
        speed: replay speed factor (``None``: as fast as possible).
        max_frames: stop after this many frames in total.
    """

    def __init__(
        self,
        feeds: Sequence[CaptureFeed],
        speed: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        markets = {feed.market for feed in feeds}
        if len(markets) != 1:
            raise CaptureError(f"sessions of one market expected, got {sorted(markets)}")
        self.market: str = markets.pop()
        self.symbols: list[str] = [s for feed in feeds for s in feed.symbols]
        if len(set(self.symbols)) != len(self.symbols):
            raise CaptureError(f"duplicate symbols across sessions: {self.symbols}")
        self.speed = speed
        self.max_frames = max_frames
        self.frames_yielded = 0
        self._feeds = list(feeds)
        self._by_symbol = {s: feed for feed in feeds for s in feed.symbols}

    async def frames(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every session's frames in receive-time order, paced at ``speed``."""
        pacer = _Pacer(self.speed)
        merged = heapq.merge(*(_tagged(i, f.paths) for i, f in enumerate(self._feeds)))
        for ts, index, value in merged:
            feed = self._feeds[index]
            frame = feed.accept(value)
            if frame is None:
                continue
            await pacer.wait(ts, self.frames_yielded)
            feed.published(ts, *frame)
            self.frames_yielded += 1
            yield frame
            if self.max_frames is not None and self.frames_yielded >= self.max_frames:
                return

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The owning session's snapshot (``KeyError`` for an unknown symbol)."""
        return self._by_symbol[symbol.upper()].snapshot(symbol, limit)

    def exchange_info(self) -> dict[str, Any]:
        """``exchangeInfo`` listing every session's symbol."""
        info = self._feeds[0].exchange_info()
        info["symbols"] = [s for feed in self._feeds for s in feed.exchange_info()["symbols"]]
        return info

    def book(self, symbol: str) -> ExchangeBook | None:
        """The exchange's book of ``symbol``."""
        return self._by_symbol[symbol.upper()].book(symbol)


def _tagged(index: int, paths: Sequence[Path]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    for ts, value in iter_capture_lines(paths):
        yield ts, index, value


_DEFAULT_DECIMALS = {"spot": (2, 5), "usdm": (1, 3), "coinm": (1, 0)}


def _step(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"


def _infer_decimals(snapshot: dict[str, Any]) -> tuple[int, int]:
    levels = [*snapshot.get("bids", []), *snapshot.get("asks", [])]
    price = max((_decimals(str(p)) for p, _ in levels), default=2)
    qty = max((_decimals(str(q)) for _, q in levels), default=5)
    return price, qty


def _market_from_path(path: Path) -> str | None:
    parts = {part.lower() for part in path.parts}
    for name, market in (("spot", "spot"), ("usdm", "usdm"), ("cm", "coinm"), ("coinm", "coinm")):
        if name in parts:
            return market
    return None


def _first_symbol(paths: Sequence[Path]) -> str:
    for _, value in iter_capture_lines(paths):
        data = value.get("data")
        if isinstance(data, dict) and isinstance(data.get("s"), str):
            return str(data["s"]).upper()
    raise CaptureError(f"no symbol found in {paths[0]}")
