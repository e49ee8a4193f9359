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


def symbol_key(exchange: str, symbol: str) -> str:
    """The partitioning key of a symbol's messages."""
    return f"{exchange}:{symbol}"


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
