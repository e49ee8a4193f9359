"""Ingest's own copy of every symbol's book, to answer snapshot requests.

An engine that takes over a symbol (start, rebalance, crash of another engine)
joins the symbol's stream in the middle: it needs a depth snapshot that fits
the diffs it is about to read. Ingest keeps each symbol's book in sync from the
very events it publishes, so it can answer at once, for every source (live,
replay, simulator), without spending REST weight: the snapshot's
``last_update_id`` is the last diff ingest published, and it is published on the
same partition right after that diff, so Binance's bridging rule holds for the
engine exactly as for a REST snapshot.
"""

from __future__ import annotations

from collections.abc import Callable

from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.bus.protocol import symbol_key
from microstream.events import BookSnapshot, DepthUpdate, SyncStateChange
from microstream.venues.binance.parse import MARKET_BY_EXCHANGE

SNAPSHOT_LEVELS = 1000
"""Levels a side in a republished snapshot (Binance's REST default for sync)."""


class SnapshotKeeper:
    """Per-symbol books fed with the published depth diffs and snapshots.

    Args:
        request_snapshot: called with ``(exchange, symbol)`` when a book needs a
            snapshot from the source (live feeds fetch one over REST; a replay
            waits for the snapshot line of the capture).
        levels: levels a side in :meth:`snapshot`.
    """

    def __init__(
        self,
        request_snapshot: Callable[[str, str], None] | None = None,
        levels: int = SNAPSHOT_LEVELS,
    ) -> None:
        self._books: dict[str, BookSynchronizer] = {}
        self._last_recv: dict[str, int] = {}
        self._request = request_snapshot
        self.levels = levels

    def _book(self, exchange: str, symbol: str) -> BookSynchronizer:
        key = symbol_key(exchange, symbol)
        book = self._books.get(key)
        if book is None:
            rule = ContinuityRule.for_market(MARKET_BY_EXCHANGE.get(exchange, "spot"))
            book = BookSynchronizer(
                exchange,
                symbol,
                rule,
                on_state=_ignore,
                request_snapshot=self._requester(exchange),
            )
            self._books[key] = book
        return book

    def _requester(self, exchange: str) -> Callable[[str], None] | None:
        request = self._request
        if request is None:
            return None
        return lambda symbol: request(exchange, symbol)

    def on_depth(self, event: DepthUpdate) -> None:
        """Apply one published diff."""
        self._book(event.exchange, event.symbol).on_depth(event)
        self._last_recv[symbol_key(event.exchange, event.symbol)] = event.ts_recv

    def on_snapshot(self, event: BookSnapshot) -> None:
        """Load one published snapshot (ignored while the book is in sync)."""
        self._book(event.exchange, event.symbol).on_snapshot(event)

    def has_book(self, exchange: str, symbol: str) -> bool:
        """True once an event of the symbol was seen."""
        return symbol_key(exchange, symbol) in self._books

    def is_synced(self, exchange: str, symbol: str) -> bool:
        """True when a snapshot of the symbol can be made now."""
        book = self._books.get(symbol_key(exchange, symbol))
        return book is not None and book.is_synced

    def symbols(self) -> list[tuple[str, str]]:
        """``(exchange, symbol)`` of every book kept."""
        return [(book.exchange, book.symbol) for book in self._books.values()]

    def snapshot(self, exchange: str, symbol: str) -> BookSnapshot | None:
        """The symbol's book as a snapshot, or ``None`` while it is not in sync."""
        key = symbol_key(exchange, symbol)
        book = self._books.get(key)
        if book is None or not book.is_synced or book.last_update_id is None:
            return None
        return BookSnapshot(
            exchange,
            symbol,
            None,
            self._last_recv.get(key, 0),
            book.last_update_id,
            tuple(book.book.bids(self.levels)),
            tuple(book.book.asks(self.levels)),
        )


def _ignore(change: SyncStateChange) -> None:
    """Ingest's books report nothing: the engines' books are the ones recorded."""
