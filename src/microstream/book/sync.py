"""Binance's local-order-book sync rules as a state machine.

Spot ("How to manage a local order book correctly"):

1. buffer the diffs of the depth stream; 2. fetch a snapshot; 3. if the
snapshot's ``lastUpdateId`` is older than the first buffered ``U``, fetch it
again; 4. drop buffered diffs with ``u <= lastUpdateId``; 5. the first diff
must bridge the snapshot: ``U <= lastUpdateId + 1 <= u``; 6. from then on each
diff continues the previous one: ``U == previous u + 1``.

USD-M and COIN-M futures differ in two places: stale diffs are those with
``u < lastUpdateId``, the first diff bridges with ``U <= lastUpdateId <= u``, and
continuity is ``pu == previous u``.

A gap, an update that cannot be applied, or a crossed book discards the book and
resyncs: the diffs are buffered again while a new snapshot is requested. Every
state change is reported (``book_sync`` table).
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable

import msgspec

from microstream.book.orderbook import OrderBook, unpack_levels
from microstream.counted import should_log
from microstream.errors import InvalidEventError
from microstream.events import BookSnapshot, DepthUpdate, SyncStateChange

log = logging.getLogger(__name__)

Packed = tuple[bytes, bytes]
"""A diff's ``(bids, asks)`` as packed native ``(price, qty)`` doubles."""


def _with_levels(ev: DepthUpdate, packed: Packed) -> DepthUpdate:
    """``ev`` (read by the fast lane, levels empty) with its levels as tuples, to keep."""
    bids, asks = packed
    return msgspec.structs.replace(ev, bids=unpack_levels(bids), asks=unpack_levels(asks))


class ContinuityRule(enum.Enum):
    """How consecutive diffs chain: spot by ``U``, futures by ``pu``."""

    SPOT = "spot"
    FUTURES = "futures"

    @classmethod
    def for_market(cls, market: str) -> ContinuityRule:
        """The rule of a Binance market (``spot``, ``usdm``, ``coinm``)."""
        return cls.SPOT if market == "spot" else cls.FUTURES


class SyncState(enum.StrEnum):
    """States recorded in the ``book_sync`` table."""

    BUFFERING = "buffering"  # waiting for a snapshot, diffs buffered
    SYNCED = "synced"  # book valid, diffs applied in sequence
    GAP = "gap"  # a diff did not continue the previous one
    CROSSED = "crossed"  # best bid >= best ask after an update
    INVALID = "invalid"  # an update carried values that cannot be applied
    STALE_SNAPSHOT = "stale_snapshot"  # snapshot older than the buffered diffs
    RESYNC = "resync"  # book discarded, a new snapshot requested
    OVERFLOW = "overflow"  # buffer full while waiting, oldest diffs dropped


class BookSynchronizer:
    """Keeps one symbol's :class:`OrderBook` in sync with Binance's diff stream.

    Feed it every :class:`DepthUpdate` and :class:`BookSnapshot` of the symbol
    in arrival order. :meth:`on_depth` returns True when the update was applied
    to a valid book (then the caller may read :attr:`book`).

    Args:
        exchange: exchange name, for the reported state changes.
        symbol: the symbol.
        rule: the market's continuity rule.
        on_state: called with every :class:`SyncStateChange`.
        request_snapshot: called when a (new) snapshot is needed; live feeds
            fetch one over REST, replay waits for the next snapshot in the capture.
        max_buffer: diffs kept while waiting for a snapshot.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        rule: ContinuityRule,
        on_state: Callable[[SyncStateChange], None],
        request_snapshot: Callable[[str], None] | None = None,
        on_applied: Callable[[DepthUpdate], None] | None = None,
        max_buffer: int = 20_000,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.rule = rule
        self.book = OrderBook()
        self.state = SyncState.BUFFERING
        self.last_update_id: int | None = None
        self.sync_epoch = 0
        self.applied = 0
        self.dropped_stale = 0
        self.duplicates = 0
        self.gaps = 0
        self.resyncs = 0
        self._on_state = on_state
        self._request_snapshot = request_snapshot
        self._on_applied = on_applied
        self._buffer: deque[DepthUpdate] = deque()
        self._max_buffer = max_buffer
        self._snapshot_loaded = False
        self._started = False

    @property
    def is_synced(self) -> bool:
        """True while the book is valid."""
        return self.state is SyncState.SYNCED

    def start(self, ts_recv: int) -> None:
        """Record the initial ``buffering`` state and ask for a snapshot."""
        if not self._started:
            self._started = True
            self._set(SyncState.BUFFERING, ts_recv, "waiting for a depth snapshot", None)
            self._ask_snapshot()

    # ------------------------------------------------------------------ diffs
    def on_depth(self, ev: DepthUpdate, packed: Packed | None = None) -> bool:
        """Process one diff; True if it was applied to a valid book.

        ``packed``: the diff's ``(bids, asks)`` as packed doubles (the compiled
        frame reader's form; ``ev.bids`` and ``ev.asks`` are then empty). The
        diff is processed exactly as the same diff with level tuples.
        """
        if not self._started:
            self.start(ev.ts_recv)
        if self.state is SyncState.SYNCED:
            return self._apply_in_sequence(ev, packed)
        if packed is not None:
            ev = _with_levels(ev, packed)
        self._buffer.append(ev)
        if self._snapshot_loaded:  # waiting for the diff that bridges the snapshot
            return bool(self._drain_buffer())
        if len(self._buffer) > self._max_buffer:
            self._buffer.popleft()
            if self.state is not SyncState.OVERFLOW:
                self._set(SyncState.OVERFLOW, ev.ts_recv, "diff buffer full", ev.last_update_id)
        return False

    def _apply_in_sequence(self, ev: DepthUpdate, packed: Packed | None = None) -> bool:
        prev = self.last_update_id
        assert prev is not None
        if self.rule is ContinuityRule.SPOT:
            if ev.last_update_id <= prev:
                return self._duplicate(ev, prev)
            if ev.first_update_id != prev + 1:
                detail = f"expected U={prev + 1}, got U={ev.first_update_id}"
                return self._gap(ev, detail, packed)
        else:
            if ev.prev_update_id != prev:
                if ev.last_update_id <= prev:
                    return self._duplicate(ev, prev)
                detail = f"expected pu={prev}, got pu={ev.prev_update_id}"
                return self._gap(ev, detail, packed)
        return self._apply(ev, packed)

    def _duplicate(self, ev: DepthUpdate, prev: int) -> bool:
        """A diff the book already holds (a repeat or an older one): counted, logged, skipped."""
        self.duplicates += 1
        if should_log(self.duplicates):
            log.warning(
                "%s %s: depth update u=%d already applied (book at u=%d) skipped; %d so far",
                self.exchange,
                self.symbol,
                ev.last_update_id,
                prev,
                self.duplicates,
            )
        return False

    def _apply(self, ev: DepthUpdate, packed: Packed | None = None) -> bool:
        try:
            if packed is None:
                self.book.apply(ev.bids, ev.asks)
            else:
                self.book.apply_packed(*packed)
        except InvalidEventError as exc:
            self._discard(SyncState.INVALID, ev, str(exc))
            return False
        self.last_update_id = ev.last_update_id
        if self.book.is_crossed:
            bid, ask = self.book.best_bid(), self.book.best_ask()
            self._discard(SyncState.CROSSED, ev, f"best bid {bid} >= best ask {ask}")
            return False
        self.applied += 1
        if self.state is not SyncState.SYNCED:
            self._enter_synced(ev)
        if self._on_applied is not None:
            self._on_applied(ev)
        return True

    def _gap(self, ev: DepthUpdate, detail: str, packed: Packed | None = None) -> bool:
        self.gaps += 1
        if packed is not None:  # the diff after a gap is kept: its levels become tuples
            ev = _with_levels(ev, packed)
        self._discard(SyncState.GAP, ev, detail)
        return False

    def _discard(self, reason: SyncState, ev: DepthUpdate, detail: str) -> None:
        """Drop the book, buffer from ``ev`` on, and ask for a new snapshot."""
        log.warning("%s %s: %s (%s); resyncing", self.exchange, self.symbol, reason, detail)
        self._set(reason, ev.ts_recv, detail, ev.last_update_id)
        self.book.clear()
        self.last_update_id = None
        self._snapshot_loaded = False
        self._buffer.clear()
        if reason is SyncState.GAP:
            self._buffer.append(ev)  # the diff after a gap is still good data
        self.resyncs += 1
        self._set(SyncState.RESYNC, ev.ts_recv, "book discarded, requesting snapshot", None)
        self._ask_snapshot()

    def reset(self, ts_recv: int, reason: str) -> None:
        """Discard the book on the caller's word (reconnect, rebalance) and resync."""
        self.book.clear()
        self.last_update_id = None
        self._snapshot_loaded = False
        self._buffer.clear()
        self.resyncs += 1
        self._started = True
        self._set(SyncState.RESYNC, ts_recv, reason, None)
        self._ask_snapshot()

    # -------------------------------------------------------------- snapshots
    def on_snapshot(self, snap: BookSnapshot) -> list[DepthUpdate]:
        """Load a snapshot and apply the buffered diffs that follow it.

        Returns the buffered diffs that were applied (in order), so the caller
        can emit one book row per applied diff. A snapshot arriving while the
        book is synced is ignored.
        """
        if not self._started:
            self.start(snap.ts_recv)
        if self.state is SyncState.SYNCED:
            return []
        first = self._buffer[0] if self._buffer else None
        if first is not None and self._snapshot_too_old(snap, first):
            self._set(
                SyncState.STALE_SNAPSHOT,
                snap.ts_recv,
                f"snapshot lastUpdateId={snap.last_update_id} older than first buffered "
                f"U={first.first_update_id}",
                snap.last_update_id,
            )
            self._ask_snapshot()
            return []
        try:
            self.book.load(snap.bids, snap.asks)
        except InvalidEventError as exc:
            self._set(SyncState.INVALID, snap.ts_recv, f"snapshot: {exc}", snap.last_update_id)
            self._ask_snapshot()
            return []
        self.last_update_id = snap.last_update_id
        self._snapshot_loaded = True
        return self._drain_buffer()

    def _snapshot_too_old(self, snap: BookSnapshot, first: DepthUpdate) -> bool:
        if self.rule is ContinuityRule.SPOT:
            return snap.last_update_id + 1 < first.first_update_id
        return snap.last_update_id < first.first_update_id

    def _drain_buffer(self) -> list[DepthUpdate]:
        """Drop stale diffs, bridge with the first one, apply the rest in sequence."""
        applied: list[DepthUpdate] = []
        pending = list(self._buffer)
        self._buffer.clear()
        for i, ev in enumerate(pending):
            if self.state is SyncState.SYNCED:
                if self._apply_in_sequence(ev):
                    applied.append(ev)
                elif self.state is not SyncState.SYNCED:  # discarded: keep the rest
                    self._buffer.extend(pending[i + 1 :])
                    return applied
                continue
            verdict = self._bridge(ev)
            if verdict == "stale":
                self.dropped_stale += 1
                continue
            if verdict == "gap":
                self._buffer.extend(pending[i:])
                self._reject_snapshot(ev)
                return applied
            self._snapshot_loaded = False
            if not self._apply(ev):
                self._buffer.extend(pending[i + 1 :])
                return applied
            applied.append(ev)
        return applied

    def _reject_snapshot(self, ev: DepthUpdate) -> None:
        self._set(
            SyncState.STALE_SNAPSHOT,
            ev.ts_recv,
            f"no diff bridges lastUpdateId={self.last_update_id}: next diff "
            f"U={ev.first_update_id} u={ev.last_update_id}",
            self.last_update_id,
        )
        self.book.clear()
        self.last_update_id = None
        self._snapshot_loaded = False
        self._ask_snapshot()

    def _bridge(self, ev: DepthUpdate) -> str:
        last = self.last_update_id
        assert last is not None
        if self.rule is ContinuityRule.SPOT:
            if ev.last_update_id <= last:
                return "stale"
            return "ok" if ev.first_update_id <= last + 1 <= ev.last_update_id else "gap"
        if ev.last_update_id < last:
            return "stale"
        return "ok" if ev.first_update_id <= last <= ev.last_update_id else "gap"

    def _enter_synced(self, ev: DepthUpdate) -> None:
        self.sync_epoch += 1
        self._set(
            SyncState.SYNCED,
            ev.ts_recv,
            f"bridged snapshot with U={ev.first_update_id} u={ev.last_update_id}",
            ev.last_update_id,
        )

    # ---------------------------------------------------------------- helpers
    def _set(self, state: SyncState, ts_recv: int, detail: str, update_id: int | None) -> None:
        self.state = state
        self._on_state(
            SyncStateChange(self.exchange, self.symbol, ts_recv, str(state), detail, update_id)
        )

    def _ask_snapshot(self) -> None:
        if self._request_snapshot is not None:
            self._request_snapshot(self.symbol)
