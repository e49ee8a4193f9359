"""The ingest service: exchange frames -> normalized events -> the bus (Kafka).

:class:`IngestService` wraps the pipeline's :class:`~microstream.engine.Ingestor`
(parse and publish) and adds what a separate process needs:

* the raw recorder (every frame to capture files, ``--record DIR``);
* snapshot service: engines ask on ``Topics.CONTROL`` for a fresh snapshot
  (:class:`~microstream.bus.codec.SnapshotRequest`) when they take a symbol
  over; ingest answers from its own book (:mod:`microstream.services.snapshots`)
  and also republishes every symbol's snapshot periodically, so a new engine
  can always rebuild its books.

The service is driven by its source: :meth:`IngestService.on_frame` for every
frame and :meth:`IngestService.service` in idle moments. Control requests
arrive on the bus's poll thread and are answered on the source's thread.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from microstream.bus.codec import SnapshotRequest
from microstream.bus.protocol import Bus, Topics, split_symbol_key, symbol_key
from microstream.engine import Ingestor
from microstream.events import BookSnapshot, DepthUpdate
from microstream.frames import RawFrame
from microstream.services.snapshots import SnapshotKeeper

log = logging.getLogger(__name__)


class FrameRecorder(Protocol):
    """Where raw frames are recorded (:class:`~microstream.venues.binance.recorder.CaptureWriter`)."""

    def write(self, frame: RawFrame) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class IngestServiceStats:
    """Counters of the ingest service (on top of the ingestor's own)."""

    snapshot_requests: int = 0
    snapshots_answered: int = 0
    snapshots_periodic: int = 0
    requests_ignored: int = 0
    pending: set[str] = field(default_factory=set)


class _TapBus:
    """Publishes the events of the served symbols and shows them to the snapshot keeper."""

    def __init__(self, bus: Bus, keeper: SnapshotKeeper, symbols: set[str] | None) -> None:
        self.bus = bus
        self.keeper = keeper
        self.symbols = symbols
        self.skipped = 0

    def publish(self, topic: str, key: str, message: Any) -> None:
        if self.symbols is not None and getattr(message, "symbol", None) not in self.symbols:
            self.skipped += 1
            return
        self.bus.publish(topic, key, message)
        if isinstance(message, DepthUpdate):
            self.keeper.on_depth(message)
        elif isinstance(message, BookSnapshot):
            self.keeper.on_snapshot(message)

    def subscribe(self, topic: str, handler: Callable[[str, Any], None]) -> None:
        self.bus.subscribe(topic, handler)

    def flush(self, timeout: float = 10.0) -> None:
        self.bus.flush(timeout)

    def close(self) -> None:
        self.bus.close()


class IngestService:
    """Frames in, events and snapshots out (see the module docstring).

    Args:
        bus: the bus to publish on; it must deliver ``Topics.CONTROL`` to
            :meth:`on_control` (the constructor subscribes before it starts).
        symbols: upper-case symbols this ingest publishes and answers for
            (``None``: every symbol of the source).
        exchange: the exchange this ingest serves (``None``: any); requests
            for another exchange are left to the ingest that serves it.
        snapshot_every_s: period of the unrequested snapshot republishing
            (``0`` or less: never).
        recorder: raw frame recorder, or ``None``.
        source_snapshot: asks the source for a snapshot (live: REST) when the
            service's own book of ``(exchange, symbol)`` is not in sync.
        clock: monotonic clock (tests).
    """

    def __init__(
        self,
        bus: Bus,
        *,
        symbols: set[str] | None = None,
        exchange: str | None = None,
        snapshot_every_s: float = 60.0,
        recorder: FrameRecorder | None = None,
        source_snapshot: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.symbols = symbols
        self.exchange = exchange
        self.snapshot_every_s = snapshot_every_s
        self.recorder = recorder
        self.source_snapshot = source_snapshot
        self.keeper = SnapshotKeeper(request_snapshot=self._ask_source)
        self._tap = _TapBus(bus, self.keeper, symbols)
        self.ingestor = Ingestor(self._tap)
        self.stats = IngestServiceStats()
        self._clock = clock
        self._requests: queue.SimpleQueue[SnapshotRequest] = queue.SimpleQueue()
        self._next_periodic = clock() + snapshot_every_s
        self._started = clock()
        self._last_frame: float | None = None
        bus.subscribe(Topics.CONTROL, self.on_control)

    def _ask_source(self, exchange: str, symbol: str) -> None:
        if self.source_snapshot is not None:
            self.source_snapshot(exchange, symbol)

    # -- frames ------------------------------------------------------------------

    def on_frame(self, frame: RawFrame) -> None:
        """Record, parse and publish one frame, then answer due requests."""
        self._last_frame = self._clock()
        if self.recorder is not None:
            self.recorder.write(frame)
        self.ingestor.on_frame(frame)
        if (
            self.stats.pending
            or not self._requests.empty()
            or (self.snapshot_every_s > 0 and self._clock() >= self._next_periodic)
        ):
            self.service()

    # -- control -----------------------------------------------------------------

    def on_control(self, key: str, message: Any) -> None:
        """Bus handler of ``Topics.CONTROL`` (any thread): queue snapshot requests."""
        if isinstance(message, SnapshotRequest):
            self._requests.put(message)

    def service(self) -> None:
        """Answer queued requests, pending requests and periodic republishing."""
        while not self._requests.empty():
            self._on_request(self._requests.get_nowait())
        for key in sorted(self.stats.pending):
            exchange, symbol = split_symbol_key(key)
            if self._publish_snapshot(exchange, symbol):
                self.stats.pending.discard(key)
                self.stats.snapshots_answered += 1
        if self.snapshot_every_s > 0 and self._clock() >= self._next_periodic:
            self._next_periodic = self._clock() + self.snapshot_every_s
            for exchange, symbol in self.keeper.symbols():
                if self._publish_snapshot(exchange, symbol):
                    self.stats.snapshots_periodic += 1
        if self.recorder is not None:
            self.recorder.flush()

    def _on_request(self, request: SnapshotRequest) -> None:
        symbol = request.symbol.upper()
        if not self._serves(request.exchange, symbol):
            self.stats.requests_ignored += 1
            return
        self.stats.snapshot_requests += 1
        log.info(
            "snapshot requested for %s %s by %s (%s)",
            request.exchange,
            symbol,
            request.requester or "?",
            request.reason,
        )
        if self._publish_snapshot(request.exchange, symbol):
            self.stats.snapshots_answered += 1
            return
        self.stats.pending.add(symbol_key(request.exchange, symbol))
        self._ask_source(request.exchange, symbol)

    def _serves(self, exchange: str, symbol: str) -> bool:
        if self.exchange is not None and exchange != self.exchange:
            return False
        if self.symbols is not None:
            return symbol in self.symbols
        return self.keeper.has_book(exchange, symbol)

    def _publish_snapshot(self, exchange: str, symbol: str) -> bool:
        snapshot = self.keeper.snapshot(exchange, symbol)
        if snapshot is None:
            return False
        self.bus.publish(Topics.SNAPSHOTS, symbol_key(exchange, symbol), snapshot)
        return True

    def frame_age_s(self) -> float:
        """Seconds since the last frame (since the service started, before the first)."""
        last = self._started if self._last_frame is None else self._last_frame
        return max(0.0, self._clock() - last)

    @property
    def skipped(self) -> int:
        """Events of other symbols than :attr:`symbols`, not published."""
        return self._tap.skipped

    def close(self) -> None:
        """Flush and close the bus, and finish the recording."""
        try:
            self.bus.close()
        finally:
            if self.recorder is not None:
                self.recorder.close()
