"""Lake rows from normalized events (``trades``, ``book_top``, ``book_sync``).

The pipeline stages that own these tables call these helpers so the column
names match :mod:`microstream.store.schema` exactly.
"""

from __future__ import annotations

from typing import Any

from microstream.bus.protocol import Row
from microstream.events import TOP_LEVELS, BookTop, SyncStateChange, Trade, pad_levels

LEVELS = TOP_LEVELS
BOOK_TOP_COLUMNS: tuple[str, ...] = (
    "ts_event",
    "ts_recv",
    "update_id",
    "book_valid",
    "sync_epoch",
    *(f"bid_px_{i}" for i in range(1, LEVELS + 1)),
    *(f"bid_qty_{i}" for i in range(1, LEVELS + 1)),
    *(f"ask_px_{i}" for i in range(1, LEVELS + 1)),
    *(f"ask_qty_{i}" for i in range(1, LEVELS + 1)),
)
"""Columns of a ``book_top`` row, in the order :func:`book_top_row` fills them."""


def trade_row(trade: Trade, simulated: bool | None = None) -> Row:
    """The ``trades`` row of one trade."""
    values: dict[str, Any] = {
        "ts_event": trade.ts_event,
        "ts_recv": trade.ts_recv,
        "trade_id": trade.trade_id,
        "price": trade.price,
        "qty": trade.qty,
        "side": trade.side,
        "is_aggregate": trade.is_aggregate,
    }
    if simulated is not None:
        values["simulated"] = simulated
    return Row("trades", trade.exchange, trade.symbol, values)


def book_top_row(top: BookTop, simulated: bool | None = None) -> Row:
    """The ``book_top`` row of the book after one applied depth event."""
    values: dict[str, Any] = dict(
        zip(
            BOOK_TOP_COLUMNS,
            (
                top.ts_event,
                top.ts_recv,
                top.update_id,
                top.book_valid,
                top.sync_epoch,
                *pad_levels(top.bid_px),
                *pad_levels(top.bid_qty),
                *pad_levels(top.ask_px),
                *pad_levels(top.ask_qty),
            ),
            strict=True,
        )
    )
    if simulated is not None:
        values["simulated"] = simulated
    return Row("book_top", top.exchange, top.symbol, values)


def book_sync_row(change: SyncStateChange, simulated: bool | None = None) -> Row:
    """The ``book_sync`` row of one sync-state change."""
    values: dict[str, Any] = {
        "ts_recv": change.ts_recv,
        "state": change.state,
        "detail": change.detail,
        "update_id": change.update_id,
    }
    if simulated is not None:
        values["simulated"] = simulated
    return Row("book_sync", change.exchange, change.symbol, values)
