"""The bus protocol shared by the in-process and the Kafka bus."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

Handler = Callable[[str, Any], None]
"""A subscriber: called with ``(key, message)`` for each message of a topic."""


class Row(msgspec.Struct, frozen=True, gc=False):
    """One output row for a lake table (``features``, ``bars_1m``, ...)."""

    table: str
    exchange: str
    symbol: str
    values: dict[str, Any]


class RowBatch(msgspec.Struct, frozen=True, gc=False):
    """Consecutive rows of one lake table and symbol, column by column.

    The in-process pipeline builds its high-rate tables (``trades``,
    ``book_top``) as columns and publishes them in batches on ``Topics.ROWS``;
    each row of ``columns`` is exactly the :class:`Row` it replaces, in order.
    ``columns`` is a ``pyarrow.RecordBatch`` whose column names are the
    table's (a value that does not exist is null).
    """

    table: str
    exchange: str
    symbol: str
    columns: Any

    @property
    def num_rows(self) -> int:
        """Rows in the batch."""
        return int(self.columns.num_rows)

    def rows(self) -> list[Row]:
        """The batch as :class:`Row` objects, in order (for per-row consumers)."""
        table, exchange, symbol = self.table, self.exchange, self.symbol
        return [Row(table, exchange, symbol, values) for values in self.columns.to_pylist()]


def symbol_key(exchange: str, symbol: str) -> str:
    """The partitioning key of a symbol's messages: ``exchange:SYMBOL``."""
    return f"{exchange}:{symbol}"


def split_symbol_key(key: str) -> tuple[str, str]:
    """``(exchange, symbol)`` of a :func:`symbol_key` (exchange ``""`` if it has no colon)."""
    exchange, _, symbol = key.rpartition(":")
    return exchange, symbol


class Topics:
    """Topic names. Bars and regime signals keep the original design's names."""

    TRADES = "md.trades"
    DEPTH = "md.depth"
    SNAPSHOTS = "md.snapshots"
    TICKERS = "md.tickers"
    CONTROL = "md.control"
    ROWS = "out.rows"

    @staticmethod
    def raw_bars() -> str:
        return os.environ.get("KAFKA_RAW_BARS_TOPIC", "market_raw_bars")

    @staticmethod
    def regime_signals() -> str:
        return os.environ.get("KAFKA_REGIME_SIGNALS_TOPIC", "market_regime_signals")


class Bus(Protocol):
    """Publish/subscribe by topic; one symbol's messages are delivered in order."""

    def publish(self, topic: str, key: str, message: Any) -> None:
        """Send ``message`` on ``topic``; ``key`` keeps a symbol's order."""
        ...

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(key, message)`` for every message on ``topic``."""
        ...

    def flush(self, timeout: float = 10.0) -> None:
        """Deliver everything published so far (or fail after ``timeout``)."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...
