"""The engine service: market data from Kafka -> per-symbol pipelines -> outputs.

One :class:`EngineService` is one member of a consumer group. Kafka gives it a
share of the market-data partitions (symbols are keys, so a symbol lives in one
partition and belongs to one engine at a time); for each symbol it runs the
pipeline's :class:`~microstream.engine.SymbolPipeline` and publishes the rows
on the output topics, into the local lake and into the live state behind the
engine API.

Taking a symbol over (start, rebalance, another engine died):

* the symbol's book is marked invalid (``book_sync`` state ``resync``) and a
  :class:`~microstream.bus.codec.SnapshotRequest` goes to ingest on
  ``Topics.CONTROL``; the book stays invalid until the fresh snapshot arrives;
* messages between the last committed offset and the takeover are read again
  (at-least-once): replayed trades and diffs are dropped by
  :class:`~microstream.bus.dedup.EventDedup`, and the outputs the previous
  owner already published are learnt from the tail of the output topics, so
  no output row is published twice.

Simulated data: a message whose envelope says ``simulated`` (ingest of the
market simulator) marks its symbol's pipeline simulated, so every row of that
symbol carries ``simulated=True`` and ``/health`` says ``simulated``, whatever
the engine's own settings (``MICROSTREAM_SIMULATED=1`` / ``--simulated`` still
mark everything).

Health: :meth:`EngineService.health` has a ``status`` (``ok``, ``degraded`` or
``down``, see :mod:`microstream.services.status`); the engine API answers 503
when it is ``down``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from microstream.bus.codec import SnapshotRequest
from microstream.bus.dedup import EventDedup
from microstream.bus.kafka import KafkaBus, KafkaSettings, PartitionList, read_tail
from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Handler, Row, RowBatch, Topics, symbol_key
from microstream.engine import MARKET_TOPICS, Engine, PipelineOptions, SymbolPipeline
from microstream.services.status import engine_status

log = logging.getLogger(__name__)

PRIME_MARGIN_S = 120.0
"""Extra seconds of output read back on a takeover (slow rebalances, clock skew)."""

NOT_DEDUPLICATED = frozenset({"book_sync"})
"""Output tables whose rows describe this engine's own book, never a replay."""


class LakeLike(Protocol):
    """What the engine needs of the lake sink (:class:`~microstream.store.sink.LakeSink`)."""

    def on_message(self, key: str, message: Any) -> None: ...
    def flush(self, timeout: float = 30.0) -> bool: ...


@dataclass
class EngineServiceStats:
    """Counters of the engine service."""

    takeovers: int = 0
    released: int = 0
    snapshot_requests: int = 0
    outputs_published: int = 0
    outputs_duplicate: int = 0
    primed_rows: int = 0
    simulated_symbols: int = 0


class _Rate:
    """Messages per second between two reads of a counter."""

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None
        self._value = 0.0

    def update(self, count: int, now_ns: int) -> float:
        if self._last is not None and now_ns - self._last[1] >= 500_000_000:
            self._value = (count - self._last[0]) / ((now_ns - self._last[1]) / 1e9)
            self._last = (count, now_ns)
        elif self._last is None:
            self._last = (count, now_ns)
        return round(self._value, 1)


class _TeeBus:
    """Market topics come from Kafka; rows go to Kafka and to local subscribers.

    ``every_row`` handlers (the lake) see every row the pipelines emit; Kafka
    and the other local subscribers only the rows not published before. A
    :class:`RowBatch` is published as its rows, one by one (Kafka carries
    rows, and each row is checked for duplicates).
    """

    def __init__(self, kafka: KafkaBus, accept_row: Callable[[Row], bool]) -> None:
        self.kafka = kafka
        self.local = MemoryBus()
        self.every_row: list[Handler] = []
        self._accept_row = accept_row

    def publish(self, topic: str, key: str, message: Any) -> None:
        if topic == Topics.ROWS and isinstance(message, RowBatch):
            for row in message.rows():
                self.publish(topic, key, row)
            return
        if topic == Topics.ROWS:
            for handler in self.every_row:
                handler(key, message)
            if not self._accept_row(message):
                return
            self.local.publish(topic, key, message)
        self.kafka.publish(topic, key, message)

    def subscribe(self, topic: str, handler: Handler) -> None:
        if topic == Topics.ROWS:
            self.local.subscribe(topic, handler)
        else:
            self.kafka.subscribe(topic, handler)

    def flush(self, timeout: float = 10.0) -> None:
        self.kafka.flush(timeout)

    def close(self) -> None:
        self.kafka.close()


class EngineService:
    """One engine of the group (see the module docstring).

    Args:
        settings: Kafka settings (group id, partitions, topics).
        options: pipeline options (features, models, grid).
        name: this engine's name in logs and snapshot requests.
        prime_tail: output messages read back per partition on a takeover.
        snapshot_retry_s: minimum seconds between two snapshot requests of a symbol.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        options: PipelineOptions | None = None,
        *,
        name: str | None = None,
        prime_tail: int = 100_000,
        snapshot_retry_s: float = 2.0,
    ) -> None:
        self.name = name or f"engine@{socket.gethostname()}"
        self.settings = settings
        self.stats = EngineServiceStats()
        self.outputs = EventDedup()
        self.kafka = KafkaBus(
            settings, on_assign=self._assigned, on_revoke=self._revoked, dedup=EventDedup()
        )
        self.bus = _TeeBus(self.kafka, self._accept_output)
        self.engine = Engine(
            self.bus, options, request_snapshot=self._request_snapshot, subscribe=False
        )
        for topic in MARKET_TOPICS:
            self.bus.subscribe(topic, self._on_market)
        self.prime_tail = prime_tail
        self.snapshot_retry_s = snapshot_retry_s
        self.assigned: set[int] = set()
        self._revoking: set[int] = set()
        self._last_request: dict[str, float] = {}
        self._md_topic = settings.topics.for_logical(Topics.DEPTH)
        self._rate = _Rate()
        self.on_simulated: Callable[[str], None] | None = None
        """Called with the symbol key when a symbol's data turns out to be simulated."""

    # -- outputs -----------------------------------------------------------------

    def _accept_output(self, row: Any) -> bool:
        if not isinstance(row, Row) or row.table in NOT_DEDUPLICATED:
            return True
        if self.outputs.accept(row):
            self.stats.outputs_published += 1
            return True
        self.stats.outputs_duplicate += 1
        return False

    def attach(self, topic: str, handler: Handler) -> None:
        """Subscribe a local consumer (the live state) to ``Topics.ROWS``."""
        self.bus.subscribe(topic, handler)

    def attach_lake(self, sink: LakeLike, flush_timeout: float = 60.0) -> None:
        """Write every emitted row to the lake, flushed before each offset commit.

        The lake gets the rows the engine computes from the last committed
        offset on, whatever Kafka already holds, and is flushed right before
        each commit: after a crash, the next owner writes exactly the rows
        whose files the dead engine had not written. (Keep the writer's own
        time and size flushes rare, or a crash right after one duplicates
        rows of that window.)
        """
        self.bus.every_row.append(sink.on_message)

        def flush() -> bool:
            done = sink.flush(flush_timeout)
            if not done:
                log.warning(
                    "lake flush not done within %.0f s: offsets not committed", flush_timeout
                )
            return done

        self.kafka.before_commit = flush

    # -- market data ---------------------------------------------------------------

    def _on_market(self, key: str, event: Any) -> None:
        pipe = self.engine.pipelines.get(key)
        if pipe is None:
            self._take_over(event.exchange, event.symbol, event.ts_recv)
            pipe = self.engine.pipeline(event.exchange, event.symbol)
        current = self.kafka.current
        if current is not None and current.simulated and not pipe.simulated:
            self._mark_simulated(key, pipe)
        pipe.on_event(event)

    def _mark_simulated(self, key: str, pipe: SymbolPipeline) -> None:
        """The source of ``key`` says its data is simulated: mark its rows from now on."""
        pipe.mark_simulated()
        self.stats.simulated_symbols += 1
        log.info("%s: %s is simulated data (outputs marked simulated)", self.name, key)
        if self.on_simulated is not None:
            self.on_simulated(key)

    def _take_over(self, exchange: str, symbol: str, ts_recv: int) -> None:
        """A symbol new to this engine: its book is invalid until a fresh snapshot."""
        self.stats.takeovers += 1
        log.info(
            "%s takes %s %s over: book invalid until a fresh snapshot", self.name, exchange, symbol
        )
        pipe = self.engine.pipeline(exchange, symbol)
        pipe.sync.reset(ts_recv, f"assigned to {self.name}: waiting for a fresh snapshot")

    def _request_snapshot(self, exchange: str, symbol: str) -> None:
        key = symbol_key(exchange, symbol)
        now = time.monotonic()
        if now - self._last_request.get(key, float("-inf")) < self.snapshot_retry_s:
            return
        self._last_request[key] = now
        self.stats.snapshot_requests += 1
        request = SnapshotRequest(exchange, symbol, "book resync", self.name)
        self.kafka.publish(Topics.CONTROL, key, request)

    # -- rebalancing ---------------------------------------------------------------

    def _md_partitions(self, partitions: PartitionList) -> set[int]:
        return {p for topic, p in partitions if topic == self._md_topic}

    def _assigned(self, partitions: PartitionList) -> None:
        owned = self._md_partitions(partitions)
        self._release(self._revoking - owned)
        self._revoking = set()
        new = owned - self.assigned
        self.assigned = owned
        if new:
            self._prime_outputs(new)

    def _revoked(self, partitions: PartitionList) -> None:
        # An eager rebalance revokes everything and assigns again: symbols that
        # stay here keep their book; the others are released on the assignment.
        self._revoking |= self._md_partitions(partitions)

    def _release(self, gone: set[int]) -> None:
        """Drop the pipelines of the symbols of ``gone`` (another engine owns them now)."""
        if not gone:
            return
        self.assigned -= gone
        for key in list(self.engine.pipelines):
            if self.kafka.partition_of(self._md_topic, key) in gone:
                pipe = self.engine.pipelines.pop(key)
                self.stats.released += 1
                log.info("%s releases %s", self.name, key)
                assert self.kafka.dedup is not None
                self.kafka.dedup.forget((pipe.exchange, pipe.symbol))
                self.outputs.forget((pipe.exchange, pipe.symbol))

    def _prime_outputs(self, partitions: set[int]) -> None:
        """Learn the outputs already published for the symbols of ``partitions``."""
        started = time.monotonic()
        topics = self.settings.topics.subscription(Topics.ROWS)
        primed = 0
        # The previous owner published, after its last commit, at most one commit
        # interval of rows before it died; it died at most a session timeout ago.
        window_s = self.settings.session_timeout_ms / 1000 + 3 * self.settings.commit_interval_s
        since_ms = int(time.time() * 1000 - (window_s + PRIME_MARGIN_S) * 1000)
        for _topic, key, _partition, decoded in read_tail(
            self.settings, topics, self.prime_tail, self.kafka.codec, since_ms=since_ms
        ):
            row = decoded.message
            if not isinstance(row, Row) or row.table in NOT_DEDUPLICATED:
                continue
            if self.kafka.partition_of(self._md_topic, key) in partitions:
                self.outputs.accept(row)
                primed += 1
        self.stats.primed_rows += primed
        log.info(
            "%s learnt %d published output rows of partitions %s in %.2f s",
            self.name,
            primed,
            sorted(partitions),
            time.monotonic() - started,
        )

    # -- life cycle ----------------------------------------------------------------

    @property
    def simulated(self) -> bool:
        """Whether this engine's outputs are (partly) simulated data."""
        return self.engine.options.simulated or any(
            pipe.simulated for pipe in list(self.engine.pipelines.values())
        )

    def health(self) -> dict[str, Any]:
        """The engine's part of the ``/health`` document (``status``: see the module docstring)."""
        kafka = self.kafka.stats
        pipes = list(self.engine.pipelines.items())
        symbols = {key: {**pipe.book_health(), "simulated": pipe.simulated} for key, pipe in pipes}
        now = time.time_ns()
        last = kafka.last_message_ns
        rate = self._rate.update(kafka.consumed, now)
        dedup = self.kafka.dedup
        broker_down_s = self.kafka.broker_down_s(now)
        error_streak_s = self.kafka.error_streak_s(now)
        status, reasons = engine_status(
            assigned=bool(self.assigned),
            books_synced={key: pipe.sync.is_synced for key, pipe in pipes},
            broker_down_s=broker_down_s,
            error_streak_s=error_streak_s,
            down_after_s=self.settings.down_after_s,
        )
        return {
            "status": status,
            "status_reasons": reasons,
            "simulated": self.simulated,
            "bus": "kafka",
            "engine": self.name,
            "group": self.settings.group_id,
            "partitions": sorted(self.assigned),
            "feed_connected": bool(self.assigned)
            and broker_down_s is None
            and error_streak_s is None,
            "broker_down_s": broker_down_s,
            "error_streak_s": error_streak_s,
            "down_after_s": self.settings.down_after_s,
            "last_message_age_s": None if last is None else (now - last) / 1e9,
            "messages_per_s": rate,
            "symbols": symbols,
            "consumed": kafka.consumed,
            "consumer_errors": kafka.consumer_errors,
            "client_errors": kafka.client_errors,
            "handler_errors": kafka.handler_errors,
            "rejected": sum(self.kafka.codec.rejected.values()),
            "duplicates_dropped": sum(dedup.duplicates.values()) if dedup is not None else 0,
            "rebalances": kafka.rebalances,
            "reconnects": kafka.connect_retries,
            "takeovers": self.stats.takeovers,
            "resyncs": sum(pipe.sync.resyncs for _, pipe in pipes),
            "queue_depth": self.kafka.queue_depth,
            "dropped": kafka.delivery_errors,
            "outputs_published": self.stats.outputs_published,
            "outputs_duplicate": self.stats.outputs_duplicate,
        }

    def run(self) -> None:
        """Consume until :meth:`stop` (blocking)."""
        self.kafka.run()

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        self.kafka.request_stop()

    def start(self) -> None:
        """Consume in a background thread."""
        self.kafka.start()

    def stop(self) -> None:
        """Stop consuming, flush the outputs (offsets are committed on the way out)."""
        self.kafka.stop()
        self.kafka.flush()

    def close(self) -> None:
        """Stop and release the Kafka clients."""
        self.kafka.close()
