"""Normalized, immutable market-data events.

Every event carries the exchange time ``ts_event`` and the local receive time
``ts_recv`` as integer Unix nanoseconds, the exchange name, the symbol and the
exchange's own sequence ids. ``ts_event`` is ``None`` when the exchange sends no
event time (Binance spot ``bookTicker`` and partial-depth frames): an unknown time
is never replaced by a guess.

Prices and quantities are float64 in the exchange's units; the order book turns
prices into integer ticks (:mod:`microstream.book.ticks`).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Side = Literal["buy", "sell"]
Level = tuple[float, float]
"""One price level: ``(price, quantity)``; quantity 0 removes the level."""

# Exchange names used in events, topics and the lake's ``exchange=`` partition.
BINANCE_SPOT = "binance"
BINANCE_USDM = "binance-futures"
BINANCE_COINM = "binance-coinm"


class Trade(msgspec.Struct, frozen=True, gc=False):
    """One trade (or one aggregate trade), with the aggressor side.

    ``side`` is the aggressor: Binance's ``m`` (buyer is maker) true means the
    seller hit the bid, so ``side == "sell"``.
    """

    exchange: str
    symbol: str
    ts_event: int
    ts_recv: int
    trade_id: int
    price: float
    qty: float
    side: Side
    is_aggregate: bool = False
    first_trade_id: int | None = None
    last_trade_id: int | None = None


class DepthUpdate(msgspec.Struct, frozen=True, gc=False):
    """An incremental order-book diff (Binance ``depthUpdate``).

    ``first_update_id``/``last_update_id`` are Binance's ``U``/``u``;
    ``prev_update_id`` is futures' ``pu`` (``None`` on spot).
    """

    exchange: str
    symbol: str
    ts_event: int
    ts_recv: int
    first_update_id: int
    last_update_id: int
    prev_update_id: int | None
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BookSnapshot(msgspec.Struct, frozen=True, gc=False):
    """A full depth snapshot (Binance REST ``/depth``), ``lastUpdateId`` included."""

    exchange: str
    symbol: str
    ts_event: int | None
    ts_recv: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BestBidAsk(msgspec.Struct, frozen=True, gc=False):
    """Best bid and ask (Binance ``bookTicker``)."""

    exchange: str
    symbol: str
    ts_event: int | None
    ts_recv: int
    update_id: int
    bid_px: float
    bid_qty: float
    ask_px: float
    ask_qty: float


class PartialBook(msgspec.Struct, frozen=True, gc=False):
    """A top-N book (Binance ``depth5/10/20``); a complete picture, not a diff."""

    exchange: str
    symbol: str
    ts_event: int | None
    ts_recv: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


TOP_LEVELS = 5
"""Levels a side in a :class:`BookTop`."""
NO_LEVELS: tuple[None, ...] = (None,) * TOP_LEVELS
"""A side of a :class:`BookTop` without any level."""


def pad_levels(levels: tuple[float | None, ...]) -> tuple[float | None, ...]:
    """``levels`` as exactly :data:`TOP_LEVELS` entries: padded with ``None``, or cut."""
    return levels if len(levels) == TOP_LEVELS else (levels + NO_LEVELS)[:TOP_LEVELS]


class BookTop(msgspec.Struct, frozen=True, gc=False):
    """The top five levels a side after one applied depth event.

    This is the ``book_top`` row and the input of every book feature. Levels
    that do not exist are ``None``. ``sync_epoch`` counts (re)syncs, so a
    consumer knows where the book's continuity starts again.
    """

    exchange: str
    symbol: str
    ts_event: int
    ts_recv: int
    update_id: int
    bid_px: tuple[float | None, ...]
    bid_qty: tuple[float | None, ...]
    ask_px: tuple[float | None, ...]
    ask_qty: tuple[float | None, ...]
    book_valid: bool
    sync_epoch: int


class SyncStateChange(msgspec.Struct, frozen=True, gc=False):
    """A change of the book's sync state (``book_sync`` row)."""

    exchange: str
    symbol: str
    ts_recv: int
    state: str
    detail: str
    update_id: int | None = None


MarketEvent = Trade | DepthUpdate | BookSnapshot | BestBidAsk | PartialBook
"""Events produced by parsing a wire frame."""
