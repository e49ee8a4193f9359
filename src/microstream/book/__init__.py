"""Order book in integer ticks and Binance's sync state machine."""

from __future__ import annotations

from microstream.book.orderbook import OrderBook
from microstream.book.sync import BookSynchronizer, ContinuityRule, SyncState

__all__ = ["BookSynchronizer", "ContinuityRule", "OrderBook", "SyncState"]
