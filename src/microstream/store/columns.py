"""The ``trades`` and ``book_top`` rows of one symbol, gathered and published in batches.

At full speed these two tables are most of the pipeline's rows: a row object
and a dict per trade and per book change cost more than the trade itself. The
in-process pipeline therefore keeps each row as a plain tuple (or the trade
event itself) and turns a few thousand of them at a time into one
:class:`~microstream.bus.protocol.RowBatch` (an Arrow record batch, converted
column by column in C++). Each batch row is exactly the
:func:`~microstream.store.rows.trade_row` / ``book_top`` row it replaces.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from microstream.bus.protocol import RowBatch
from microstream.events import Trade
from microstream.store.rows import LEVELS

_TRADE_FIELDS = ("ts_event", "ts_recv", "trade_id", "price", "qty", "side", "is_aggregate")
_TRADE_TYPES = (
    pa.int64(),
    pa.int64(),
    pa.int64(),
    pa.float64(),
    pa.float64(),
    pa.string(),
    pa.bool_(),
)
_trade_values = attrgetter(*_TRADE_FIELDS)
_LEVEL_LIST = pa.list_(pa.float64(), LEVELS)

BookTopRow = tuple[
    int,
    int,
    int,
    int,
    tuple[float | None, ...],
    tuple[float | None, ...],
    tuple[float | None, ...],
    tuple[float | None, ...],
]
"""``(ts_event, ts_recv, update_id, sync_epoch, bid_px, bid_qty, ask_px, ask_qty)``."""


def _with_simulated(columns: dict[str, Any], rows: int, simulated: bool) -> dict[str, Any]:
    if simulated:
        columns["simulated"] = pa.repeat(pa.scalar(True), rows)
    return columns


def trades_batch(exchange: str, symbol: str, trades: list[Trade], simulated: bool) -> RowBatch:
    """The ``trades`` rows of ``trades`` (in order) as one batch."""
    values = list(zip(*map(_trade_values, trades), strict=True))
    columns: dict[str, Any] = {
        name: pa.array(column, type=kind)
        for name, column, kind in zip(_TRADE_FIELDS, values, _TRADE_TYPES, strict=True)
    }
    batch = pa.RecordBatch.from_pydict(_with_simulated(columns, len(trades), simulated))
    return RowBatch("trades", exchange, symbol, batch)


def book_top_batch(exchange: str, symbol: str, rows: list[BookTopRow], simulated: bool) -> RowBatch:
    """The ``book_top`` rows (valid book, one per applied diff) as one batch."""
    ts_event, ts_recv, update_id, epoch, bid_px, bid_qty, ask_px, ask_qty = zip(*rows, strict=True)
    columns: dict[str, Any] = {
        "ts_event": pa.array(ts_event, type=pa.int64()),
        "ts_recv": pa.array(ts_recv, type=pa.int64()),
        "update_id": pa.array(update_id, type=pa.int64()),
        "book_valid": pa.repeat(pa.scalar(True), len(rows)),
        "sync_epoch": pa.array(epoch, type=pa.int64()),
    }
    for name, levels in (
        ("bid_px", bid_px),
        ("bid_qty", bid_qty),
        ("ask_px", ask_px),
        ("ask_qty", ask_qty),
    ):
        nested = pa.array(levels, type=_LEVEL_LIST)
        for i in range(LEVELS):
            columns[f"{name}_{i + 1}"] = pc.list_element(nested, i)
    batch = pa.RecordBatch.from_pydict(_with_simulated(columns, len(rows), simulated))
    return RowBatch("book_top", exchange, symbol, batch)
