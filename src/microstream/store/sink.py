"""The lake sink: output rows from the bus to Parquet, off the feed's thread.

:class:`LakeSink` subscribes to :data:`~microstream.bus.protocol.Topics.ROWS`
and hands rows (:class:`~microstream.bus.protocol.Row`, or a
:class:`~microstream.bus.protocol.RowBatch` of many) to a background thread
through a bounded queue, so the feed never waits for the disk. The queue is
a plain deque (appending to it is atomic and costs the feed's thread a fraction of a microsecond, where a
``queue.Queue`` costs it more than the row itself); the thread wakes every
``tick`` seconds, or at once for a flush, and writes everything queued.
The queue's bound and every counter are in rows (a batch counts its rows).
When the queue is full, a row (or batch) waits at most ``put_timeout``
seconds, then it is dropped, counted and logged (never silently). Writer
errors are kept in :attr:`LakeSink.error`, logged, and raised again by
:meth:`LakeSink.close`.
"""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from microstream.bus.protocol import Bus, Row, RowBatch, Topics
from microstream.errors import StoreError
from microstream.store.lake import LakeWriter, WriterStats

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL = 5.0
_BATCH = 1024


@dataclass(frozen=True)
class SinkStats:
    """Counters of a :class:`LakeSink` (a snapshot).

    Attributes:
        received: rows offered to the sink.
        dropped: rows dropped because the queue stayed full (or the sink was closed).
        rejected: messages that were not rows.
        queue_depth: rows waiting in the queue.
        writer: the writer's own counters.
    """

    received: int
    dropped: int
    rejected: int
    queue_depth: int
    writer: WriterStats


class LakeSink:
    """Writes bus rows into the lake from a background thread.

    Args:
        writer: the lake writer; owned by the sink's thread from now on.
        maxsize: capacity of the queue in rows (a batch larger than that is
            queued only when the queue is empty).
        put_timeout: seconds a row may wait for room before it is dropped;
            ``None`` waits as long as needed (back-pressure instead of drops,
            for offline replays where the producer can slow down).
        tick: seconds between checks for due flushes when no rows arrive.
    """

    def __init__(
        self,
        writer: LakeWriter,
        *,
        maxsize: int = 100_000,
        put_timeout: float | None = 0.05,
        tick: float = 0.1,
    ) -> None:
        self.writer = writer
        self.put_timeout = put_timeout
        self.tick = tick
        self.error: StoreError | None = None
        self._pending: collections.deque[Row | RowBatch] = collections.deque()
        self._maxsize = maxsize
        # rows queued (written by producers only) and rows taken out (by the
        # sink's thread only): their difference is the queue depth in rows
        self._queued = 0
        self._taken = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_waiters: collections.deque[threading.Event] = collections.deque()
        self._closed = False
        self._received = 0
        self._dropped = 0
        self._rejected = 0
        self._last_drop_log = float("-inf")
        self._thread = threading.Thread(target=self._run, name="lake-sink", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> SinkStats:
        """A snapshot of the counters."""
        return SinkStats(
            received=self._received,
            dropped=self._dropped,
            rejected=self._rejected,
            queue_depth=max(0, self._queued - self._taken),
            writer=self.writer.stats,
        )

    def attach(self, bus: Bus) -> None:
        """Subscribe to the output rows of ``bus``."""
        bus.subscribe(Topics.ROWS, self.on_message)

    def on_message(self, key: str, message: Any) -> None:
        """Bus handler: queue ``message`` if it is a :class:`Row` or a :class:`RowBatch`."""
        if isinstance(message, Row):
            self.put(message)
        elif isinstance(message, RowBatch):
            self.put_batch(message)
        else:
            self._rejected += 1
            if self._rejected == 1:
                log.warning("lake sink: non-row message on %s skipped", Topics.ROWS)

    def put(self, row: Row) -> bool:
        """Queue one row; False if it was dropped (queue full or sink closed)."""
        return self._enqueue(row, 1)

    def put_batch(self, batch: RowBatch) -> bool:
        """Queue a batch of rows; False if it was dropped (queue full or sink closed).

        The batch needs room for all its rows (or an empty queue); a dropped
        batch counts its rows in ``dropped``.
        """
        return self._enqueue(batch, batch.num_rows)

    def _enqueue(self, item: Row | RowBatch, rows: int) -> bool:
        self._received += rows
        if self._closed:
            self._drop("sink closed", rows)
            return False
        if rows == 0:
            return True
        if not self._has_room(rows) and not self._wait_for_room(rows):
            self._drop("queue full", rows)
            return False
        self._queued += rows
        self._pending.append(item)
        return True

    def _has_room(self, rows: int) -> bool:
        depth = self._queued - self._taken
        return depth <= 0 or depth + rows <= self._maxsize

    def _wait_for_room(self, rows: int) -> bool:
        """Wait until the queue has room: at most ``put_timeout`` s (None: as long as it takes).

        Raises:
            StoreError: waiting without a limit while the sink's thread is dead.
        """
        deadline = None if self.put_timeout is None else time.monotonic() + self.put_timeout
        self._wake.set()  # the thread may be sleeping between ticks
        while not self._has_room(rows):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if deadline is None and not self._thread.is_alive():
                raise StoreError("lake sink thread is not running; cannot queue rows")
            time.sleep(0.001)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Write every row queued so far; True if done within ``timeout``.

        Safe to call from a signal handler: it only sets events.
        """
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        self._flush_waiters.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue, flush and close the writer.

        Raises:
            StoreError: a write failed at any time during the sink's life.
        """
        self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise StoreError(f"lake sink did not finish writing within {timeout:.0f} s")
        self._count_stranded()
        if self.error is not None:
            raise self.error

    def _count_stranded(self) -> None:
        """Rows a producer queued while the sink was closing were not written."""
        stranded = max(0, self._queued - self._taken)
        self._pending.clear()
        self._taken = self._queued
        if stranded:
            self._dropped += stranded
            log.warning("lake sink: %d rows queued during close dropped", stranded)

    def _drop(self, reason: str, rows: int = 1) -> None:
        self._dropped += rows
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            self._last_drop_log = now
            log.warning(
                "lake sink: %d rows dropped (%s); %d dropped so far", rows, reason, self._dropped
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._pending:
                self._drain(_BATCH)
            else:
                self._guard(self.writer.flush_due)
                self._wake.wait(self.tick)
                self._wake.clear()
            if self._flush_waiters:
                self._serve_flush()
        self._drain(None)
        self._guard(self.writer.close)
        self._release_waiters()

    def _drain(self, limit: int | None) -> None:
        pending, write = self._pending, self._write
        if limit is None:  # until empty, rows queued meanwhile included
            while pending:
                write(pending.popleft())
            return
        for _ in range(min(limit, len(pending))):
            write(pending.popleft())

    def _serve_flush(self) -> None:
        waiting = len(self._flush_waiters)
        self._drain(len(self._pending))
        self._guard(self.writer.flush)
        self._release_waiters(waiting)

    def _release_waiters(self, count: int | None = None) -> None:
        while self._flush_waiters and (count is None or count > 0):
            self._flush_waiters.popleft().set()
            count = None if count is None else count - 1

    def _write(self, message: Row | RowBatch) -> None:
        try:
            if isinstance(message, Row):
                self._taken += 1
                self.writer.add(message)
            else:
                self._taken += message.num_rows
                self.writer.add_batch(message)
        except Exception as exc:
            self._failed(exc)

    def _guard(self, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        if isinstance(exc, StoreError):
            self._record(exc)
        else:  # the thread must never die silently
            log.error("lake sink: unexpected error", exc_info=exc)
            self._record(StoreError(f"lake sink failed: {exc!r}"))

    def _record(self, exc: StoreError) -> None:
        if self.error is None:
            self.error = exc
        log.error("lake sink: %s", exc)


SignalHandler = Callable[[int, types.FrameType | None], Any] | int | None


def install_flush_on_signal(
    flush: Callable[[], object],
    signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
) -> Callable[[], None]:
    """On each of ``signals``, call ``flush`` then the previous handler.

    With the default previous handler, SIGINT raises :class:`KeyboardInterrupt`
    and other signals :class:`SystemExit` (``128 + signum``), so the process
    still stops, after its lake rows are on disk. Must run in the main thread.

    Returns:
        A function that restores the previous handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        log.warning("signal handlers can only be installed from the main thread")
        return lambda: None
    previous: dict[signal.Signals, SignalHandler] = {}

    def handler(signum: int, frame: types.FrameType | None) -> None:
        try:
            flush()
        except Exception:
            log.exception("flush on signal %d failed", signum)
        _chain(previous.get(signal.Signals(signum)), signum, frame)

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)

    return restore


def _chain(previous: SignalHandler, signum: int, frame: types.FrameType | None) -> None:
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt
    else:
        raise SystemExit(128 + signum)
