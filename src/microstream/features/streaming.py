"""Streaming microstructure features on a fixed grid of exchange time.

:class:`FeatureEngine` consumes one symbol's :class:`~microstream.events.BookTop`,
:class:`~microstream.events.Trade` and :class:`~microstream.events.SyncStateChange`
events in arrival order and emits one ``features`` row per grid point ``t`` (a
multiple of ``grid_ms`` of exchange time), plus ``bars_1m`` rows through its
:class:`~microstream.features.bars.BarBuilder`.

Contract: the row at ``t`` uses only events with exchange time ``<= t``; book
features come from the book after the last applied depth event with ``E <= t``,
trade features from the trades with ``T`` in ``(t − W, t]``.

Ordering. Trades (time ``T``) and depth events (time ``E``) travel on different
streams, so they arrive slightly out of exchange-time order (up to ~170 ms in
the spot capture). The engine holds events in a small buffer sorted by exchange
time (ties keep arrival order) and processes them once the watermark
``max exchange time seen − lateness`` has passed them; grid point ``t`` is
emitted once the watermark is past ``t``. With ``lateness_ms=0`` this is "emit
``t`` when an event with time ``> t`` arrives". An event older than what was
already processed is *late*: it is counted (:attr:`FeatureEngine.late_events`),
applied to the state (it counts in the windows from then on) but cannot change
rows already emitted, and a late trade of a closed minute stays out of bars.

A ``SyncStateChange`` to any state but ``synced`` invalidates the book: it acts
as an invalid book top at the latest exchange time seen so far (the engine
inserts such a marker); the book stays invalid until the next ``BookTop`` with
``book_valid`` true. The batch twin (:mod:`microstream.features.batch`) derives
the same markers from the ``book_sync`` table.

Cost: O(1) amortised per event — running totals and a reference to the latest
book top; windows are differences of totals recorded at grid boundaries
(:mod:`microstream.features.windows`). Work per grid point is constant.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from microstream.bus.protocol import Row
from microstream.counted import should_log
from microstream.events import NO_LEVELS, BookTop, SyncStateChange, Trade, pad_levels
from microstream.features.bars import BarBuilder
from microstream.features.book_math import (
    book_features,
    book_snapshot,
    mid_of,
    ofi_pair,
)
from microstream.features.schema import (
    DAY_NS,
    DEFAULT_GRID_MS,
    DEFAULT_LATENESS_MS,
    DEFAULT_MAX_GAP_S,
    FEATURES_TABLE,
    MAX_WINDOW_NS,
    MIN_GRID_MS,
    MIN_MAX_GAP_S,
    MINUTE_NS,
    NS_PER_MS,
    NS_PER_S,
    RETURN_STEP_NS,
    WINDOW_1M_NS,
    WINDOW_5M_NS,
    WINDOW_10S_NS,
    declare_lake_columns,
)
from microstream.features.windows import SnapshotRing

log = logging.getLogger(__name__)

Emit = Callable[[Row], None]

# Running totals recorded at each boundary:
# (Σ p·q, Σ q, Σ buy q, Σ sell q, trades, Σ OFI l1, Σ OFI l1-5, Σ r², returns)
Snap = tuple[float, float, float, float, int, float, float, float, int]
_ZERO: Snap = (0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0, 0.0, 0)
_NOT_STARTED = -(2**62)
_NOT_SEEN = -(2**62)
_INF = math.inf
_SYNCED = "synced"
_INTENSITY_S = WINDOW_10S_NS / NS_PER_S
_LOG_EVERY = 10_000

declare_lake_columns()


def _five_levels(top: BookTop) -> BookTop:
    """``top`` with exactly five levels per side (padded with ``None`` or cut)."""
    return BookTop(
        top.exchange,
        top.symbol,
        top.ts_event,
        top.ts_recv,
        top.update_id,
        pad_levels(top.bid_px),
        pad_levels(top.bid_qty),
        pad_levels(top.ask_px),
        pad_levels(top.ask_qty),
        top.book_valid,
        top.sync_epoch,
    )


class FeatureEngine:
    """Streaming features and 1-minute bars of one symbol.

    Args:
        exchange: exchange name of the emitted rows.
        symbol: symbol of the emitted rows.
        emit: receives every ``features`` and ``bars_1m`` row.
        grid_ms: grid step in milliseconds of exchange time (>= 10).
        lateness_ms: how long to wait (in exchange time) for out-of-order
            events before processing them and emitting a grid point.
        max_gap_s: a silence longer than this (exchange time, e.g. two
            recording sessions replayed together) ends a segment: the engine
            flushes it like :meth:`finish` and restarts with a new grid, empty
            windows and no book, instead of writing a row for every second
            of the silence. Events of the old segment arriving afterwards
            are late.

    Raises:
        ValueError: ``grid_ms``, ``lateness_ms`` or ``max_gap_s`` is out of range.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: Emit,
        grid_ms: int = DEFAULT_GRID_MS,
        lateness_ms: int = DEFAULT_LATENESS_MS,
        max_gap_s: int = DEFAULT_MAX_GAP_S,
    ) -> None:
        if grid_ms < MIN_GRID_MS:
            raise ValueError(f"grid_ms must be at least {MIN_GRID_MS}, got {grid_ms}")
        if lateness_ms < 0:
            raise ValueError(f"lateness_ms must be >= 0, got {lateness_ms}")
        if max_gap_s < MIN_MAX_GAP_S:
            raise ValueError(f"max_gap_s must be at least {MIN_MAX_GAP_S}, got {max_gap_s}")
        self.exchange = exchange
        self.symbol = symbol
        self.emit = emit
        self.grid_ns = grid_ms * NS_PER_MS
        self.step_ns = math.gcd(self.grid_ns, RETURN_STEP_NS)
        self.lateness_ns = lateness_ms * NS_PER_MS
        self.max_gap_ns = max_gap_s * NS_PER_S
        self.bars = BarBuilder(exchange, symbol, emit)
        self._pending: deque[Trade | BookTop] = deque()
        self._max_ts = _NOT_SEEN
        self._floor = _NOT_SEEN
        self._sync_state = "unknown"
        self._finished = False
        self.events = 0
        self.rejected = 0
        self.late_events = 0
        self.sync_markers = 0
        self.rows_emitted = 0
        self.segments = 0
        self._reset_segment()

    def _reset_segment(self) -> None:
        """Fresh grid, windows, book and returns (at start and after a long silence)."""
        self._next_b = _NOT_STARTED
        self._last_ts = _NOT_SEEN
        self._book: BookTop | None = None
        self._pq = self._q = self._buy = self._sell = 0.0
        self._n = 0
        self._ofi = self._ofi5 = 0.0
        self._r2 = 0.0
        self._nr = 0
        step = self.step_ns
        self._ring: SnapshotRing[Snap] = SnapshotRing(MAX_WINDOW_NS // step + 1, _ZERO)
        self._k1m = WINDOW_1M_NS // step
        self._k5m = WINDOW_5M_NS // step
        self._k10s = WINDOW_10S_NS // step
        self._prev_mid: float | None = None
        self._have_sample = False
        self._last_return: float | None = None
        self._session: tuple[float, float, int] = (0.0, 0.0, 0)
        self._last_row: dict[str, Any] | None = None

    # ------------------------------------------------------------------ input
    def on_trade(self, trade: Trade) -> None:
        """Take one trade (``ts_event`` = trade time ``T``, ``side`` = aggressor)."""
        p = trade.price
        q = trade.qty
        if not (0.0 < p < _INF and 0.0 < q < _INF) or (
            trade.side != "buy" and trade.side != "sell"
        ):
            self._reject(trade, "price/qty not finite and positive, or unknown side")
            return
        self._push(trade, trade.ts_event)

    def on_book_top(self, top: BookTop) -> None:
        """Take the book's top five levels after one applied depth event.

        Level tuples shorter or longer than five are padded with ``None`` or cut.
        """
        if (
            len(top.bid_px) != 5
            or len(top.ask_px) != 5
            or len(top.bid_qty) != 5
            or len(top.ask_qty) != 5
        ):
            top = _five_levels(top)
        self._push(top, top.ts_event)

    def _push(self, event: Trade | BookTop, ts: int) -> None:
        """Queue an event at ``ts`` in exchange-time order; drain what the watermark passed."""
        self.events += 1
        if ts > self._max_ts:
            if ts - self._max_ts > self.max_gap_ns:
                self._new_segment(ts)
            self._max_ts = ts
        elif ts < self._floor:
            self._late_before_segment()
            return
        pending = self._pending
        if not pending or ts >= pending[-1].ts_event:
            pending.append(event)
        else:
            self._insert_sorted(event, ts)
        wm = self._max_ts - self.lateness_ns
        if pending[0].ts_event <= wm:
            self._drain(wm)

    def on_sync(self, change: SyncStateChange) -> None:
        """Take a sync-state change; any state but ``synced`` invalidates the book."""
        self._sync_state = change.state
        if change.state == _SYNCED or self._max_ts == _NOT_SEEN:
            return
        self.sync_markers += 1
        marker = BookTop(
            self.exchange,
            self.symbol,
            self._max_ts,
            change.ts_recv,
            -1 if change.update_id is None else change.update_id,
            NO_LEVELS,
            NO_LEVELS,
            NO_LEVELS,
            NO_LEVELS,
            False,
            -1,
        )
        self._push(marker, self._max_ts)

    def finish(self) -> None:
        """End of stream: process everything held and emit what is complete.

        Emits every grid point ``t <= `` the latest exchange time seen (all its
        events are known now), then the forming 1-minute bar (possibly partial).
        Call once, after the last event.
        """
        if self._finished or self._max_ts == _NOT_SEEN:
            self._finished = True
            return
        self._finished = True
        self._flush_segment()

    def _flush_segment(self) -> None:
        """Process everything held; emit grid points up to the latest time and the last bar."""
        self._drain(self._max_ts)
        self._run_boundaries(self._max_ts + 1)
        self.bars.finish()

    def _new_segment(self, ts: int) -> None:
        """A silence longer than ``max_gap_s`` before ``ts``: close the segment, start afresh."""
        if self._max_ts != _NOT_SEEN:
            log.info(
                "%s %s: %.0f s without events; feature grid restarts",
                self.exchange,
                self.symbol,
                (ts - self._max_ts) / NS_PER_S,
            )
            self._flush_segment()
            self._reset_segment()
            self.segments += 1
            # events of the old segment that still arrive are late; the new one's are not
            self._floor = ts - self.lateness_ns

    def _late_before_segment(self) -> None:
        self.late_events += 1

    # ------------------------------------------------------------ processing
    def _insert_sorted(self, event: Trade | BookTop, ts: int) -> None:
        pending = self._pending
        i = len(pending) - 1
        while i >= 0 and pending[i].ts_event > ts:
            i -= 1
        pending.insert(i + 1, event)

    def _drain(self, wm: int) -> None:
        """Process held events with time <= ``wm`` in order; run boundaries < ``wm``.

        This is the hot loop: trade and book updates are inlined.
        """
        pending = self._pending
        bars_add = self.bars.add
        next_b = self._next_b
        last_ts = self._last_ts
        while pending and pending[0].ts_event <= wm:
            event = pending.popleft()
            ts = event.ts_event
            if ts > next_b:
                if next_b == _NOT_STARTED:
                    step = self.step_ns
                    next_b = self._next_b = -(-ts // step) * step
                else:
                    self._run_boundaries(ts)
                    next_b = self._next_b
            if ts < last_ts:
                self.late_events += 1
            else:
                last_ts = ts
            if type(event) is Trade:
                p = event.price
                q = event.qty
                self._pq += p * q
                self._q += q
                self._n += 1
                if event.side == "buy":
                    self._buy += q
                    bars_add(ts, p, q, True)
                else:
                    self._sell += q
                    bars_add(ts, p, q, False)
            else:
                prev = self._book
                if (
                    event.book_valid  # type: ignore[union-attr]
                    and prev is not None
                    and prev.book_valid
                    and prev.sync_epoch == event.sync_epoch  # type: ignore[union-attr]
                ):
                    e1, e5 = ofi_pair(prev, event)  # type: ignore[arg-type]
                    self._ofi += e1
                    self._ofi5 += e5
                self._book = event  # type: ignore[assignment]
        self._last_ts = last_ts
        if next_b != _NOT_STARTED and next_b < wm:
            self._run_boundaries(wm)

    # ------------------------------------------------------------ boundaries
    def _run_boundaries(self, limit: int) -> None:
        """Run every boundary strictly before ``limit``."""
        step = self.step_ns
        b = self._next_b
        while b < limit:
            self._boundary(b)
            b += step
            self._next_b = b

    def _boundary(self, b: int) -> None:
        if b % RETURN_STEP_NS == 0:
            self._sample_return()
        snap: Snap = (
            self._pq,
            self._q,
            self._buy,
            self._sell,
            self._n,
            self._ofi,
            self._ofi5,
            self._r2,
            self._nr,
        )
        k = b // self.step_ns
        self._ring.record(k, snap)
        if b % MINUTE_NS == 0:
            self.bars.close_until(b)
        if b % self.grid_ns == 0:
            self._emit_row(b, k, snap)
        if b % DAY_NS == 0:
            self._session = (snap[0], snap[1], snap[4])

    def _sample_return(self) -> None:
        mid = mid_of(self._book)
        prev = self._prev_mid
        r: float | None = None
        if self._have_sample and mid is not None and prev is not None and mid > 0.0 and prev > 0.0:
            r = math.log(mid / prev)
            self._r2 += r * r
            self._nr += 1
        self._prev_mid = mid
        self._have_sample = True
        self._last_return = r

    def _emit_row(self, t: int, k: int, snap: Snap) -> None:
        values = self._row_values(t, k, snap)
        self._last_row = values
        self.rows_emitted += 1
        self.emit(Row(FEATURES_TABLE, self.exchange, self.symbol, values))

    def _row_values(self, t: int, k: int, now: Snap) -> dict[str, Any]:
        book = book_features(self._book)
        valid = self._book is not None and self._book.book_valid
        ring = self._ring
        s1 = ring.at(k - self._k1m)
        s5 = ring.at(k - self._k5m)
        s10 = ring.at(k - self._k10s)
        pq, q, buy, sell, n, ofi, ofi5, r2, nr = now
        n1 = n - s1[4]
        q1 = q - s1[1]
        n5 = n - s5[4]
        q5 = q - s5[1]
        buy1 = buy - s1[2]
        sell1 = sell - s1[3]
        flow_den = buy1 + sell1
        nr1 = nr - s1[8]
        nr5 = nr - s5[8]
        spq, sq, sn = self._session
        ns = n - sn
        qs = q - sq
        return {
            "ts": t,
            "mid": book["mid"],
            "spread": book["spread"],
            "spread_bps": book["spread_bps"],
            "microprice": book["microprice"],
            "imbalance_l1": book["imbalance_l1"],
            "imbalance_l5": book["imbalance_l5"],
            "vwap_1m": (pq - s1[0]) / q1 if n1 > 0 and q1 > 0.0 else None,
            "vwap_5m": (pq - s5[0]) / q5 if n5 > 0 and q5 > 0.0 else None,
            "buy_volume_1m": buy1,
            "sell_volume_1m": sell1,
            "flow_imbalance_1m": (buy1 - sell1) / flow_den if n1 > 0 and flow_den > 0.0 else None,
            "trade_count_1m": n1,
            "volatility_1m": math.sqrt(r2 - s1[7]) if nr1 > 0 else None,
            "volatility_5m": math.sqrt(r2 - s5[7]) if nr5 > 0 else None,
            "ofi_10s": ofi - s10[5] if valid else None,
            "book_valid": valid,
            "depth_bid_10bps": book["depth_bid_10bps"],
            "depth_ask_10bps": book["depth_ask_10bps"],
            "ofi_l5_10s": ofi5 - s10[6] if valid else None,
            "trade_intensity_10s": (n - s10[4]) / _INTENSITY_S,
            "vwap_session": (pq - spq) / qs if ns > 0 and qs > 0.0 else None,
            "log_return_1s": self._last_return,
        }

    # ------------------------------------------------------------------ misc
    def _reject(self, event: Trade, reason: str) -> None:
        self.rejected += 1
        if should_log(self.rejected, every=_LOG_EVERY):
            log.warning(
                "%s %s: skipped bad trade %s (%s); %d skipped so far",
                self.exchange,
                self.symbol,
                event.trade_id,
                reason,
                self.rejected,
            )

    def live_state(self) -> dict[str, Any]:
        """The latest values, for the dashboard.

        ``features`` is the last emitted grid row with its book features replaced
        by those of the latest processed book top (``features_ts`` is the grid time
        of the window features, ``ts`` the exchange time of the latest processed
        event); ``bar`` is the forming 1-minute bar; ``book`` the latest book top.
        """
        features: dict[str, Any] = dict(self._last_row) if self._last_row else {}
        features.update(book_features(self._book))
        features["book_valid"] = self._book is not None and self._book.book_valid
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "ts": None if self._last_ts == _NOT_SEEN else self._last_ts,
            "features_ts": self._last_row["ts"] if self._last_row else None,
            "features": features,
            "bar": self.bars.forming_bar(),
            "book": book_snapshot(self._book),
            "sync_state": self._sync_state,
            "counters": {
                "events": self.events,
                "rejected": self.rejected,
                "late_events": self.late_events,
                "late_trades_bars": self.bars.late_trades,
                "sync_markers": self.sync_markers,
                "pending": len(self._pending),
                "rows_emitted": self.rows_emitted,
                "bars_emitted": self.bars.bars_emitted,
            },
        }
