"""The ``trades`` and ``book_top`` rows of one symbol, gathered and published in batches.

At full speed these two tables are most of the pipeline's rows: a row object
and a dict per trade and per book change cost more than the trade itself. The
in-process pipeline therefore keeps the events themselves (:class:`Trade`,
:class:`BookTop`) and turns a few thousand of them at a time into one
:class:`~microstream.bus.protocol.RowBatch` (an Arrow record batch, converted
column by column in C++). Each batch row is exactly the
:func:`~microstream.store.rows.trade_row` / :func:`~microstream.store.rows.book_top_row`
row it replaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from microstream.bus.protocol import RowBatch
from microstream.events import BookTop, Trade
from microstream.store.rows import LEVELS

_I64, _F64, _BOOL = pa.int64(), pa.float64(), pa.bool_()
_TRADE_COLUMNS = (
    ("ts_event", _I64),
    ("ts_recv", _I64),
    ("trade_id", _I64),
    ("price", _F64),
    ("qty", _F64),
    ("side", pa.string()),
    ("is_aggregate", _BOOL),
)
_LEVEL_LIST = pa.list_(_F64, LEVELS)
_BOOK_TOP_COLUMNS = (
    ("ts_event", _I64),
    ("ts_recv", _I64),
    ("update_id", _I64),
    ("book_valid", _BOOL),
    ("sync_epoch", _I64),
    ("bid_px", _LEVEL_LIST),
    ("bid_qty", _LEVEL_LIST),
    ("ask_px", _LEVEL_LIST),
    ("ask_qty", _LEVEL_LIST),
)


def _columns(
    events: Sequence[Any], spec: tuple[tuple[str, pa.DataType], ...]
) -> dict[str, pa.Array]:
    """The attributes ``spec`` names of every event, one Arrow array each."""
    values = zip(*map(attrgetter(*(name for name, _ in spec)), events), strict=True)
    return {
        name: pa.array(column, type=kind) for (name, kind), column in zip(spec, values, strict=True)
    }


def _batch(
    table: str, exchange: str, symbol: str, columns: dict[str, pa.Array], simulated: bool
) -> RowBatch:
    if simulated:
        rows = len(next(iter(columns.values())))
        columns["simulated"] = pa.repeat(pa.scalar(True), rows)
    return RowBatch(table, exchange, symbol, pa.RecordBatch.from_pydict(columns))


def trades_batch(exchange: str, symbol: str, trades: list[Trade], simulated: bool) -> RowBatch:
    """The ``trades`` rows of ``trades`` (in order) as one batch."""
    return _batch("trades", exchange, symbol, _columns(trades, _TRADE_COLUMNS), simulated)


def book_top_batch(exchange: str, symbol: str, tops: list[BookTop], simulated: bool) -> RowBatch:
    """The ``book_top`` rows of ``tops`` (five levels a side each, in order) as one batch."""
    columns: dict[str, pa.Array] = {}
    for name, array in _columns(tops, _BOOK_TOP_COLUMNS).items():
        if array.type != _LEVEL_LIST:
            columns[name] = array
            continue
        for i in range(LEVELS):  # bid_px -> bid_px_1 .. bid_px_5
            columns[f"{name}_{i + 1}"] = pc.list_element(array, i)
    return _batch("book_top", exchange, symbol, columns, simulated)
