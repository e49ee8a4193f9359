"""De-duplication by sequence ids, so restarts and replays never duplicate outputs.

Kafka delivery here is at-least-once: after a consumer restart, a rebalance or
an ingest replay, the same event or row can arrive twice. Every stream has a
natural id that grows with time (``trade_id``, depth ``last_update_id``, a
row's ``ts``), so a small window of recent ids per stream, plus a floor below
which everything counts as seen, removes duplicates in bounded memory.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable
from typing import Any, Final

from microstream.bus.protocol import Row
from microstream.events import DepthUpdate, Trade

DEFAULT_WINDOW: Final = 4096


class SeenWindow:
    """The ids recently seen on one stream, in bounded memory.

    An id is new when it was not among the last ``window`` ids and is not below
    the floor (the oldest id dropped from the window). Ids must be comparable;
    they may arrive slightly out of order within the window.
    """

    __slots__ = ("_floor", "_order", "_seen", "_window")

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self._window = window
        self._seen: set[Any] = set()
        self._order: deque[Any] = deque()
        self._floor: Any = None

    def add(self, ident: Any) -> bool:
        """Record ``ident``; True when it is new, False for a duplicate."""
        if ident in self._seen or self._below_floor(ident):
            return False
        self._seen.add(ident)
        self._order.append(ident)
        if len(self._order) > self._window:
            dropped = self._order.popleft()
            self._seen.discard(dropped)
            if self._floor is None or not self._below_floor(dropped):
                self._floor = dropped
        return True

    def _below_floor(self, ident: Any) -> bool:
        if self._floor is None:
            return False
        try:
            return bool(ident <= self._floor)
        except TypeError:  # ids of mixed types: only the window decides
            return False

    def __len__(self) -> int:
        return len(self._order)


class Deduplicator:
    """Per-stream :class:`SeenWindow` s, created on first use, with counters.

    Attributes:
        duplicates: duplicates dropped, by stream kind (``"trade"``, ``"depth"``,
            ``"row:<table>"``).
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self._window = window
        self._streams: dict[Hashable, SeenWindow] = {}
        self._latest: dict[Hashable, int] = {}
        self.duplicates: Counter[str] = Counter()
        self.resets = 0

    def is_new(self, stream: Hashable, ident: Any, kind: str, ts: int | None = None) -> bool:
        """True the first time ``ident`` is seen on ``stream``; counts duplicates.

        ``ts`` (exchange time) tells a replay from a source that restarted its
        id space (a simulator, an exchange reset): an old id with an exchange
        time later than any seen on the stream starts the stream afresh.
        """
        seen = self._streams.get(stream)
        if seen is None:
            seen = self._streams[stream] = SeenWindow(self._window)
        if seen.add(ident):
            self._note_time(stream, ts)
            return True
        if ts is not None and ts > self._latest.get(stream, ts):
            self.resets += 1
            seen = self._streams[stream] = SeenWindow(self._window)
            seen.add(ident)
            self._latest[stream] = ts
            return True
        self.duplicates[kind] += 1
        return False

    def _note_time(self, stream: Hashable, ts: int | None) -> None:
        if ts is not None and ts > self._latest.get(stream, ts - 1):
            self._latest[stream] = ts

    def forget(self, stream_prefix: tuple[str, str]) -> None:
        """Drop every stream of one ``(exchange, symbol)`` (the symbol moved away)."""
        for stream in [s for s in self._streams if _belongs(s, stream_prefix)]:
            del self._streams[stream]
            self._latest.pop(stream, None)


def _belongs(stream: Hashable, prefix: tuple[str, str]) -> bool:
    return isinstance(stream, tuple) and stream[1:3] == prefix


ROW_KEY_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "trades": ("trade_id",),
    "book_top": ("update_id", "ts_event"),
    "book_sync": ("ts_recv", "state"),
    "predictions": ("ts", "horizon_s", "model"),
}
"""Columns that identify a row per table; other tables are keyed by ``ts``."""


def row_ident(row: Row) -> tuple[Any, ...]:
    """The identity of an output row within its ``(table, exchange, symbol)`` stream."""
    columns = ROW_KEY_COLUMNS.get(row.table, ("ts",))
    return tuple(row.values.get(column) for column in columns)


class EventDedup(Deduplicator):
    """Drops replayed market events and output rows.

    Trades by ``trade_id``, depth updates by ``last_update_id`` (per symbol),
    rows by ``(table, exchange, symbol)`` and :func:`row_ident`. Snapshots,
    tickers and other messages always pass: they are idempotent for the book.
    """

    def accept(self, message: Any) -> bool:
        """True when ``message`` was not seen before (and should be handled)."""
        if isinstance(message, Trade):
            stream = ("trade", message.exchange, message.symbol)
            return self.is_new(stream, message.trade_id, "trade", message.ts_event)
        if isinstance(message, DepthUpdate):
            stream = ("depth", message.exchange, message.symbol)
            return self.is_new(stream, message.last_update_id, "depth", message.ts_event)
        if isinstance(message, Row):
            stream = (f"row:{message.table}", message.exchange, message.symbol)
            return self.is_new(stream, _comparable(row_ident(message)), f"row:{message.table}")
        return True


def _comparable(ident: tuple[Any, ...]) -> tuple[Any, ...]:
    """Replace ``None`` (absent key columns) so identities stay orderable."""
    return tuple("" if part is None else part for part in ident)
