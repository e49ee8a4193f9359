"""Pure parse functions: Binance wire frames → normalized events.

:func:`parse_frame` turns one :class:`~microstream.frames.RawFrame` into zero or
more events, or raises a :class:`~microstream.errors.ParseError` subclass. It
keeps no state, so it is tested frame by frame against the recorded captures.
:class:`FrameDecoder` wraps it with the counting and logging of rejected frames
that the pipeline needs (bad input is counted, logged and skipped).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from typing import Any

import msgspec

from microstream.book.orderbook import first_bad_level
from microstream.counted import should_log
from microstream.errors import InvalidEventError, ParseError, UnknownEventError
from microstream.events import (
    BINANCE_COINM,
    BINANCE_SPOT,
    BINANCE_USDM,
    BestBidAsk,
    BookSnapshot,
    DepthUpdate,
    Level,
    MarketEvent,
    PartialBook,
    Trade,
)
from microstream.frames import RawFrame
from microstream.venues.binance.wire import (
    Envelope,
    WireAggTrade,
    WireBookTicker,
    WireDepth,
    WireEvent,
    WireSnapshot,
    WireTrade,
    typed_envelope,
)

log = logging.getLogger(__name__)

MS = 1_000_000
"""Nanoseconds per millisecond."""

EXCHANGE_BY_MARKET = {"spot": BINANCE_SPOT, "usdm": BINANCE_USDM, "coinm": BINANCE_COINM}
MARKET_BY_EXCHANGE = {v: k for k, v in EXCHANGE_BY_MARKET.items()}

# Stream kinds: the part of the stream name after "<symbol>@", normalized.
TRADE, AGG_TRADE, DEPTH, PARTIAL, TICKER, SNAPSHOT = (
    "trade",
    "aggTrade",
    "depth",
    "partial",
    "bookTicker",
    "depthSnapshot",
)
# Streams that are valid Binance data but carry nothing MicroStream uses.
IGNORED_KINDS = frozenset(
    {"markPrice", "markPrice@1s", "kline", "ticker", "miniTicker", "forceOrder", "indexPrice"}
)

_STREAM_PREFIX = b'{"stream":"'
_WIRE_TYPES: dict[str, type] = {
    TRADE: WireTrade,
    AGG_TRADE: WireAggTrade,
    DEPTH: WireDepth,
    TICKER: WireBookTicker,
    SNAPSHOT: WireSnapshot,
}
_ENVELOPE_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(typed_envelope(t), strict=False) for kind, t in _WIRE_TYPES.items()
}
_DATA_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t, strict=False) for t in (*_WIRE_TYPES.values(), WireDepth)
}
_GENERIC_ENVELOPE = msgspec.json.Decoder(Envelope)
_EVENT_HEAD = msgspec.json.Decoder(WireEvent)
_SNAPSHOT_DECODER = msgspec.json.Decoder(WireSnapshot, strict=False)


def exchange_of(market: str) -> str:
    """The exchange name (lake partition) of a Binance market."""
    try:
        return EXCHANGE_BY_MARKET[market]
    except KeyError:
        raise ParseError(f"unknown Binance market {market!r}") from None


def stream_kind(stream: str) -> str:
    """Classify a stream name: ``btcusdt@depth@100ms`` → ``"depth"``."""
    _, _, rest = stream.partition("@")
    if rest.startswith("depth"):
        head = rest.split("@", 1)[0]
        if head == "depth":
            return DEPTH
        if head == "depthSnapshot":
            return SNAPSHOT
        if head[5:].isdigit():
            return PARTIAL
    if rest in (TRADE, AGG_TRADE, TICKER):
        return rest
    if rest in IGNORED_KINDS or rest.split("@", 1)[0] in IGNORED_KINDS:
        return "ignored"
    return "unknown"


def _check_price(value: float, what: str) -> float:
    if not (value > 0.0 and value != math.inf):
        raise InvalidEventError(f"{what} price {value!r} is not a positive finite number")
    return value


def _check_qty(value: float, what: str, allow_zero: bool) -> float:
    ok = value >= 0.0 if allow_zero else value > 0.0
    if not (ok and value != math.inf):
        raise InvalidEventError(f"{what} quantity {value!r} is not a valid quantity")
    return value


def _levels(raw: list[tuple[float, float]], what: str, allow_zero: bool) -> tuple[Level, ...]:
    bad = first_bad_level(raw, allow_zero)
    if bad >= 0:
        price, qty = raw[bad]
        if not allow_zero and qty == 0.0:
            raise InvalidEventError(f"{what} level at {price!r} has zero quantity")
        raise InvalidEventError(f"{what} level ({price!r}, {qty!r}) is not valid")
    return tuple(raw)


def parse_trade(w: WireTrade, exchange: str, ts_recv: int) -> Trade:
    """A ``trade`` frame; ``m`` true (buyer is maker) means a sell aggressor."""
    return Trade(
        exchange=exchange,
        symbol=w.s,
        ts_event=w.T * MS,
        ts_recv=ts_recv,
        trade_id=w.t,
        price=_check_price(w.p, "trade"),
        qty=_check_qty(w.q, "trade", allow_zero=False),
        side="sell" if w.m else "buy",
    )


def parse_agg_trade(w: WireAggTrade, exchange: str, ts_recv: int) -> Trade:
    """An ``aggTrade`` frame; ``trade_id`` is the aggregate id ``a``."""
    return Trade(
        exchange=exchange,
        symbol=w.s,
        ts_event=w.T * MS,
        ts_recv=ts_recv,
        trade_id=w.a,
        price=_check_price(w.p, "aggTrade"),
        qty=_check_qty(w.q, "aggTrade", allow_zero=False),
        side="sell" if w.m else "buy",
        is_aggregate=True,
        first_trade_id=w.f,
        last_trade_id=w.l,
    )


def parse_depth(w: WireDepth, exchange: str, ts_recv: int) -> DepthUpdate:
    """A ``depthUpdate`` diff; a quantity of 0 removes the level."""
    if w.u < w.U:
        raise InvalidEventError(f"depth update has u={w.u} < U={w.U}")
    return DepthUpdate(
        exchange=exchange,
        symbol=w.s,
        ts_event=w.E * MS,
        ts_recv=ts_recv,
        first_update_id=w.U,
        last_update_id=w.u,
        prev_update_id=w.pu,
        bids=_levels(w.b, "bid", allow_zero=True),
        asks=_levels(w.a, "ask", allow_zero=True),
    )


def parse_book_ticker(w: WireBookTicker, exchange: str, ts_recv: int) -> BestBidAsk:
    """A ``bookTicker`` frame (best bid/ask)."""
    bid = _check_price(w.b, "bookTicker bid")
    ask = _check_price(w.a, "bookTicker ask")
    if bid >= ask:
        raise InvalidEventError(f"bookTicker is crossed: bid {bid} >= ask {ask}")
    return BestBidAsk(
        exchange=exchange,
        symbol=w.s,
        ts_event=None if w.E is None else w.E * MS,
        ts_recv=ts_recv,
        update_id=w.u,
        bid_px=bid,
        bid_qty=_check_qty(w.B, "bookTicker bid", allow_zero=True),
        ask_px=ask,
        ask_qty=_check_qty(w.A, "bookTicker ask", allow_zero=True),
    )


def parse_snapshot(w: WireSnapshot, exchange: str, symbol: str, ts_recv: int) -> BookSnapshot:
    """A REST depth snapshot (bare, or wrapped as ``<sym>@depthSnapshot``)."""
    return BookSnapshot(
        exchange=exchange,
        symbol=symbol,
        ts_event=None if w.E is None else w.E * MS,
        ts_recv=ts_recv,
        last_update_id=w.lastUpdateId,
        bids=_levels(w.bids, "snapshot bid", allow_zero=False),
        asks=_levels(w.asks, "snapshot ask", allow_zero=False),
    )


def _parse_partial(raw: bytes, exchange: str, symbol: str, ts_recv: int) -> PartialBook:
    head = _EVENT_HEAD.decode(raw)
    if head.e == "depthUpdate":  # futures partial books are shaped like diffs
        d = _DATA_DECODERS[WireDepth].decode(raw)
        return PartialBook(
            exchange=exchange,
            symbol=d.s,
            ts_event=d.E * MS,
            ts_recv=ts_recv,
            last_update_id=d.u,
            bids=_levels(d.b, "partial bid", allow_zero=False),
            asks=_levels(d.a, "partial ask", allow_zero=False),
        )
    s = _SNAPSHOT_DECODER.decode(raw)
    return PartialBook(
        exchange=exchange,
        symbol=symbol,
        ts_event=None if s.E is None else s.E * MS,
        ts_recv=ts_recv,
        last_update_id=s.lastUpdateId,
        bids=_levels(s.bids, "partial bid", allow_zero=False),
        asks=_levels(s.asks, "partial ask", allow_zero=False),
    )


def _event_from(kind: str, data: Any, frame: RawFrame, exchange: str, stream: str) -> MarketEvent:
    if kind == DEPTH:
        return parse_depth(data, exchange, frame.ts_recv)
    if kind == TRADE:
        return parse_trade(data, exchange, frame.ts_recv)
    if kind == TICKER:
        return parse_book_ticker(data, exchange, frame.ts_recv)
    if kind == AGG_TRADE:
        return parse_agg_trade(data, exchange, frame.ts_recv)
    symbol = stream.split("@", 1)[0].upper()
    return parse_snapshot(data, exchange, symbol, frame.ts_recv)


_Route = tuple[str, str, "msgspec.json.Decoder[Any] | None"]
_ROUTES: dict[bytes, _Route] = {}
_MAX_ROUTES = 4096  # distinct stream names remembered (a bound against garbage input)
_PREFIX_LEN = len(_STREAM_PREFIX)


def _route(payload: bytes) -> _Route | None:
    """``(stream, kind, envelope decoder)`` of a combined-stream frame, read without decoding it.

    The classification of each stream name is computed once and remembered.
    """
    if not payload.startswith(_STREAM_PREFIX):
        return None
    end = payload.find(b'"', _PREFIX_LEN)
    if end < 0:
        return None
    name = payload[_PREFIX_LEN:end]
    route = _ROUTES.get(name)
    if route is None:
        try:
            stream = name.decode()
        except UnicodeDecodeError:
            return None
        kind = stream_kind(stream)
        route = (stream, kind, _ENVELOPE_DECODERS.get(kind))
        if len(_ROUTES) >= _MAX_ROUTES:
            _ROUTES.clear()
        _ROUTES[name] = route
    return route


def parse_frame(frame: RawFrame) -> list[MarketEvent]:
    """Parse one frame into events.

    Returns an empty list for frames that carry nothing to process (subscription
    replies, ignored streams such as ``markPrice``, ``serverShutdown``).

    Raises:
        ParseError: the frame is not JSON or does not match Binance's schema.
        InvalidEventError: values are impossible (NaN, negative, crossed).
        UnknownEventError: a well-formed frame of an unknown stream type.
    """
    exchange = exchange_of(frame.market)
    payload = frame.payload
    try:
        route = _route(payload)
        if route is not None:
            stream, kind, decoder = route
            if decoder is not None:
                env = decoder.decode(payload)
                if kind == TRADE and env.data.X not in (None, "MARKET"):
                    return []  # futures off-book fills (insurance fund, ADL) are not trades
                return [_event_from(kind, env.data, frame, exchange, stream)]
        return _parse_slow(frame, exchange)
    except msgspec.ValidationError as exc:
        raise ParseError(f"frame does not match Binance's schema: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ParseError(f"frame is not valid JSON: {exc}") from exc


def _parse_slow(frame: RawFrame, exchange: str) -> list[MarketEvent]:
    """Bare snapshots, partial books, control frames and unknown streams."""
    payload = frame.payload
    if payload.lstrip().startswith(b'{"lastUpdateId"') or (
        frame.symbol is not None and b'"lastUpdateId"' in payload[:64]
    ):
        if frame.symbol is None:
            raise ParseError("bare depth snapshot without a symbol")
        snap = _SNAPSHOT_DECODER.decode(payload)
        return [parse_snapshot(snap, exchange, frame.symbol, frame.ts_recv)]
    if payload.startswith(b'{"stream"'):
        env = _GENERIC_ENVELOPE.decode(payload)
        stream, raw = env.stream, bytes(env.data)
    elif payload.startswith(b'{"result"') or payload.startswith(b'{"id"'):
        return []  # reply to a SUBSCRIBE request
    else:
        stream, raw = "", payload
    kind = stream_kind(stream) if stream else ""
    if kind == PARTIAL:
        symbol = stream.split("@", 1)[0].upper()
        return [_parse_partial(raw, exchange, symbol, frame.ts_recv)]
    if kind in _WIRE_TYPES:
        data = _DATA_DECODERS[_WIRE_TYPES[kind]].decode(raw)
        return [_event_from(kind, data, frame, exchange, stream)]
    if kind == "ignored":
        return []
    head = _EVENT_HEAD.decode(raw)
    if head.e == "serverShutdown":
        return []
    raise UnknownEventError(f"unknown stream {stream!r} / event {head.e!r}")


class FrameDecoder:
    """Parses frames, counting and logging every rejected one instead of raising.

    ``counts`` holds, per outcome, how many frames were seen: ``ok``,
    ``ignored``, ``malformed``, ``invalid``, ``unknown``.
    """

    def __init__(self, log_every: int = 100) -> None:
        self.counts: Counter[str] = Counter()
        self._log_every = log_every

    def decode(self, frame: RawFrame) -> list[MarketEvent]:
        """Events of ``frame``; an empty list if it was rejected (and counted)."""
        try:
            events = parse_frame(frame)
        except InvalidEventError as exc:
            self._reject("invalid", exc, frame)
            return []
        except UnknownEventError as exc:
            self._reject("unknown", exc, frame)
            return []
        except ParseError as exc:
            self._reject("malformed", exc, frame)
            return []
        self.counts["ok" if events else "ignored"] += 1
        return events

    @property
    def rejected(self) -> int:
        """Frames rejected so far (malformed, invalid or unknown)."""
        return self.counts["malformed"] + self.counts["invalid"] + self.counts["unknown"]

    def _reject(self, reason: str, exc: Exception, frame: RawFrame) -> None:
        self.counts[reason] += 1
        n = self.counts[reason]
        if should_log(n, every=self._log_every):
            log.warning("rejected %s frame #%d (%r): %s", reason, n, frame.payload[:120], exc)
