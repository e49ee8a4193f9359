"""The Kafka bus: :class:`~microstream.bus.protocol.Bus` over confluent-kafka.

Publishing uses an idempotent producer (``enable.idempotence``, ``acks=all``)
keyed by ``"<exchange>:<SYMBOL>"`` with Kafka's murmur2 partitioner, so one
symbol's messages stay in order in one partition (see :mod:`microstream.bus.topics`
for the topic mapping). Consuming is a poll loop (:meth:`KafkaBus.run`, or
:meth:`KafkaBus.start` in a thread) that decodes each message, drops
duplicates (:class:`~microstream.bus.dedup.EventDedup`), calls the subscribers
and only then stores the message's offset for the next commit: delivery is
at-least-once, outputs included: a commit first flushes the producer, so
the rows a message caused are in Kafka before its offset is committed.
Partitions come from a consumer group (``group.id``, range
assignment so a symbol's partitions of every topic go to the same engine) or
are assigned directly (tests, a single engine).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from microstream.bus.codec import Codec, Decoded
from microstream.bus.dedup import EventDedup
from microstream.bus.protocol import Handler
from microstream.bus.topics import TopicMap, partition_for
from microstream.config import env_float, env_int, env_str
from microstream.errors import BusError, CodecError

log = logging.getLogger(__name__)

PartitionList = list[tuple[str, int]]
RebalanceCallback = Callable[[PartitionList], None]


@dataclass(frozen=True)
class KafkaSettings:
    """Everything the Kafka bus needs, documented field by field.

    Attributes:
        bootstrap_servers: ``host:port[,host:port]`` of the brokers.
        topics: logical -> Kafka topic mapping.
        partitions: partitions of each topic the bus creates.
        replication_factor: replicas of each topic the bus creates.
        group_id: consumer group id (committed offsets live under it).
        mode: ``"group"`` (join the group, partitions balanced across members)
            or ``"direct"`` (assign partitions, no group membership).
        direct_partitions: partitions to read in direct mode (``None``: all).
        client_id: client id shown in broker logs.
        connect_retries: attempts to reach the broker before :class:`BusError`.
        retry_backoff_s: first wait between attempts (doubles, at most 10 s).
        session_timeout_ms: group session timeout (failure detection).
        commit_interval_s: seconds between offset commits; each commit first
            flushes the producer, so outputs are in Kafka before the inputs
            that caused them are marked consumed.
        topic_check_s: period of the check that recreates missing topics (a
            broker that lost its state comes back empty); ``0``: no check.
            The same check tells whether the broker is reachable
            (:meth:`KafkaBus.broker_down_s`).
        down_after_s: the broker unreachable, or consumer errors coming, for
            longer than this many seconds means the service is down
            (:meth:`KafkaBus.broker_down_s`, :meth:`KafkaBus.error_streak_s`);
            errors further apart than this are separate incidents.
        simulated: mark every message this bus publishes as simulated data
            (ingest of the market simulator; see :class:`~microstream.bus.codec.Envelope`).
        producer_config / consumer_config: extra librdkafka settings.
    """

    bootstrap_servers: str = "localhost:9092"
    topics: TopicMap = field(default_factory=TopicMap)
    partitions: int = 6
    replication_factor: int = 1
    group_id: str = "microstream-engine"
    mode: Literal["group", "direct"] = "group"
    direct_partitions: tuple[int, ...] | None = None
    client_id: str = "microstream"
    connect_retries: int = 5
    retry_backoff_s: float = 1.0
    session_timeout_ms: int = 10_000
    commit_interval_s: float = 1.0
    topic_check_s: float = 2.0
    down_after_s: float = 30.0
    simulated: bool = False
    producer_config: dict[str, Any] = field(default_factory=dict)
    consumer_config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: Any) -> KafkaSettings:
        """Settings from the environment (see ``.env.example``), then ``overrides``."""
        topics = TopicMap(
            prefix=env_str("MICROSTREAM_KAFKA_TOPIC_PREFIX", "microstream"),
            raw_bars_topic=env_str("KAFKA_RAW_BARS_TOPIC", "market_raw_bars"),
            regime_signals_topic=env_str("KAFKA_REGIME_SIGNALS_TOPIC", "market_regime_signals"),
        )
        values: dict[str, Any] = {
            "bootstrap_servers": env_str("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092"),
            "topics": topics,
            "partitions": env_int("MICROSTREAM_KAFKA_PARTITIONS", 6),
            "group_id": env_str("MICROSTREAM_KAFKA_GROUP", "microstream-engine"),
            "connect_retries": env_int("MICROSTREAM_KAFKA_CONNECT_RETRIES", 5),
            "session_timeout_ms": env_int("MICROSTREAM_KAFKA_SESSION_TIMEOUT_MS", 10_000),
            "down_after_s": env_float("MICROSTREAM_KAFKA_DOWN_AFTER_S", 30.0),
        }
        if not values["down_after_s"] > 0:
            raise BusError("MICROSTREAM_KAFKA_DOWN_AFTER_S must be a positive number of seconds")
        values.update(overrides)
        return cls(**values)


@dataclass
class BusStats:
    """Counters of one bus (read them for ``/health`` and ``/metrics``).

    ``consumer_errors`` counts error messages the consumer returned,
    ``client_errors`` the errors librdkafka reported on the consumer's
    connections (broker down, transport failures). The ``*_ns`` fields are
    wall-clock Unix nanoseconds: ``broker_down_since_ns`` the first failed
    broker check since the broker last answered, ``errors_since_ns`` the first
    error of the current streak of consumer errors (errors at most
    ``down_after_s`` apart, with no message consumed in between),
    ``last_error_ns`` the latest consumer error.
    """

    published: int = 0
    delivered: int = 0
    delivery_errors: int = 0
    consumed: int = 0
    handled: int = 0
    handler_errors: int = 0
    consumer_errors: int = 0
    client_errors: int = 0
    rebalances: int = 0
    connect_retries: int = 0
    last_error: str = ""
    last_message_ns: int | None = None
    broker_down_since_ns: int | None = None
    errors_since_ns: int | None = None
    last_error_ns: int | None = None


class KafkaBus:
    """Publish/subscribe over Kafka (see the module docstring for the guarantees).

    Subscribe before :meth:`run`/:meth:`start`. Handlers run on the poll thread;
    publishing is thread-safe.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        dedup: EventDedup | None = None,
        create_topics: bool = True,
    ) -> None:
        self.settings = settings
        self.codec = Codec()
        self.dedup = dedup
        self.stats = BusStats()
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self.before_commit: Callable[[], bool] | None = None
        """Called before each offset commit (a local sink's flush); False skips the commit."""
        self.current: Decoded | None = None
        """The message being dispatched (handlers read its envelope fields, e.g. ``simulated``)."""
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._kafka_topics: set[str] = set()
        self._session = time.time_ns()
        self._seq: Counter[str] = Counter()
        self._stop = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._partitions: dict[str, int] = {}
        self._topics_lock = threading.Lock()
        self._admin = AdminClient(self._common_config())
        self.connect()
        self._wanted_topics: set[str] = set()
        if create_topics:
            self.ensure_topics(settings.topics.all_topics())
        self._producer = Producer(self._producer_config())
        self._keeper: threading.Thread | None = None
        if settings.topic_check_s > 0:
            self._keeper = threading.Thread(
                target=self._keep_topics, name="kafka-topics", daemon=True
            )
            self._keeper.start()

    # -- connection and topics -------------------------------------------------

    def _common_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "client.id": self.settings.client_id,
            "logger": _librdkafka_log,
        }

    def connect(self) -> None:
        """Wait for the broker; :class:`BusError` after ``connect_retries`` failures."""
        address = self.settings.bootstrap_servers
        attempts = max(1, self.settings.connect_retries)
        backoff = self.settings.retry_backoff_s
        for attempt in range(1, attempts + 1):
            try:
                metadata = self._admin.list_topics(timeout=max(1.0, backoff))
            except KafkaException as exc:
                self.stats.connect_retries += 1
                self.stats.last_error = str(exc)
                log.warning(
                    "Kafka broker at %s unreachable (attempt %d/%d): %s",
                    address,
                    attempt,
                    attempts,
                    exc.args[0] if exc.args else exc,
                )
                if attempt < attempts:
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                continue
            self._remember_partitions(metadata.topics)
            log.info("connected to Kafka at %s", address)
            return
        raise BusError(
            f"Kafka broker at {address} is unreachable after {attempts} attempts "
            "(check KAFKA_BOOTSTRAP_SERVERS and that the broker is running)"
        )

    def _remember_partitions(self, topics: dict[str, Any]) -> None:
        for name, meta in topics.items():
            if meta.partitions:
                self._partitions[name] = len(meta.partitions)

    def ensure_topics(self, names: Sequence[str]) -> None:
        """Create the missing topics with ``settings.partitions`` partitions each."""
        with self._topics_lock:
            self._wanted_topics.update(names)
            self._create_missing([name for name in names if name not in self._partitions])

    def _keep_topics(self) -> None:
        """Recreate topics a restarted broker lost (runs until :meth:`close`)."""
        while not self._closed.wait(self.settings.topic_check_s):
            try:
                topics = self._admin.list_topics(timeout=2.0).topics
            except KafkaException as exc:
                if self.stats.broker_down_since_ns is None:
                    self.stats.broker_down_since_ns = time.time_ns()
                    log.warning("Kafka broker unreachable: %s", exc)
                continue  # broker down: try again later
            if self.stats.broker_down_since_ns is not None:
                log.info("Kafka broker reachable again")
            self.stats.broker_down_since_ns = None
            with self._topics_lock:
                missing = [name for name in sorted(self._wanted_topics) if name not in topics]
                if not missing:
                    continue
                log.warning("Kafka topics missing on the broker, recreating: %s", missing)
                for name in missing:
                    self._partitions.pop(name, None)
                try:
                    self._create_missing(missing)
                except BusError as exc:
                    log.warning("%s", exc)

    def _create_missing(self, missing: list[str]) -> None:
        if not missing:
            return
        new = [
            NewTopic(name, self.settings.partitions, self.settings.replication_factor)
            for name in missing
        ]
        for name, future in self._admin.create_topics(new, request_timeout=15.0).items():
            try:
                future.result(timeout=20.0)
                log.info("created Kafka topic %s (%d partitions)", name, self.settings.partitions)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not (
                    isinstance(error, KafkaError)
                    and error.code() == KafkaError.TOPIC_ALREADY_EXISTS
                ):
                    raise BusError(f"cannot create Kafka topic {name}: {exc}") from exc
        self._remember_partitions(self._admin.list_topics(timeout=10.0).topics)

    # -- health ------------------------------------------------------------------

    def broker_down_s(self, now_ns: int | None = None) -> float | None:
        """Seconds the broker has been unreachable (``None``: it answered the last check)."""
        since = self.stats.broker_down_since_ns
        if since is None:
            return None
        now = time.time_ns() if now_ns is None else now_ns
        return max(0.0, (now - since) / 1e9)

    def error_streak_s(self, now_ns: int | None = None) -> float | None:
        """Length in seconds of the current streak of consumer errors.

        ``None`` when there is none: no consumer error within the last
        ``down_after_s`` seconds, or a message was consumed since the last one.
        """
        since, last = self.stats.errors_since_ns, self.stats.last_error_ns
        if since is None or last is None:
            return None
        now = time.time_ns() if now_ns is None else now_ns
        if now - last > self.settings.down_after_s * 1e9:
            return None
        return max(0.0, (now - since) / 1e9)

    def _note_error(self, text: str) -> None:
        """A consumer error: start or extend the current streak."""
        now = time.time_ns()
        stats = self.stats
        last = stats.last_error_ns
        if (
            stats.errors_since_ns is None
            or last is None
            or now - last > self.settings.down_after_s * 1e9
        ):
            stats.errors_since_ns = now
        stats.last_error_ns = now
        stats.last_error = text

    def _client_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb`` of the consumer (runs on the poll thread)."""
        self.stats.client_errors += 1
        self._note_error(str(error))

    @property
    def queue_depth(self) -> int:
        """Messages waiting in the producer (not yet acknowledged by the broker)."""
        return len(self._producer)

    def partition_of(self, kafka_topic: str, key: str) -> int:
        """The partition of ``kafka_topic`` that carries ``key``."""
        count = self._partitions.get(kafka_topic, self.settings.partitions)
        return partition_for(key, count)

    # -- publishing --------------------------------------------------------------

    def _producer_config(self) -> dict[str, Any]:
        config = self._common_config()
        config.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
            }
        )
        config.update(self.settings.producer_config)
        return config

    def publish(self, topic: str, key: str, message: Any) -> None:
        """Encode and send ``message`` (buffered in the producer).

        Blocks only while the producer's local queue is full (the broker has
        been away for long): back-pressure instead of dropping data.
        """
        kafka_topic = self.settings.topics.for_message(topic, message)
        self._seq[key] += 1
        value = self.codec.encode(
            topic,
            message,
            session=self._session,
            seq=self._seq[key],
            simulated=self.settings.simulated,
        )
        while True:
            try:
                self._producer.produce(
                    kafka_topic, value, key.encode(), on_delivery=self._delivered
                )
                break
            except BufferError:  # local queue full: serve callbacks, then retry
                self._producer.poll(0.05)
        self.stats.published += 1
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.stats.delivered += 1
            return
        self.stats.delivery_errors += 1
        self.stats.last_error = str(error)
        log.error("Kafka delivery to %s failed: %s", message.topic(), error)

    def flush(self, timeout: float = 10.0) -> None:
        """Deliver everything published so far; :class:`BusError` after ``timeout``."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BusError(
                f"{remaining} message(s) not delivered to Kafka at "
                f"{self.settings.bootstrap_servers} within {timeout:.0f} s"
            )

    # -- consuming -----------------------------------------------------------------

    def subscribe(self, topic: str, handler: Handler) -> None:
        """Call ``handler(key, message)`` for every message published on logical ``topic``."""
        if self._consumer is not None:
            raise BusError("subscribe before the consumer starts")
        self._handlers[topic].append(handler)
        self._kafka_topics.update(self.settings.topics.subscription(topic))

    def _consumer_config(self) -> dict[str, Any]:
        config = self._common_config()
        config.update(
            {
                "group.id": self.settings.group_id,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "partition.assignment.strategy": "range",
                # A broker may hold a fetch until this expires when little data
                # arrives (tansu does): keep it short, it bounds the latency.
                "fetch.wait.max.ms": 50,
                "session.timeout.ms": self.settings.session_timeout_ms,
                "heartbeat.interval.ms": max(100, self.settings.session_timeout_ms // 5),
                "error_cb": self._client_error,
            }
        )
        config.update(self.settings.consumer_config)
        return config

    def _open_consumer(self) -> Consumer:
        consumer = Consumer(self._consumer_config())
        topics = sorted(self._kafka_topics)
        self.ensure_topics(topics)
        if self.settings.mode == "group":
            consumer.subscribe(topics, on_assign=self._assigned, on_revoke=self._revoked)
        else:
            wanted = self.settings.direct_partitions
            assignment = [
                TopicPartition(name, partition)
                for name in topics
                for partition in range(self._partitions.get(name, self.settings.partitions))
                if wanted is None or partition in wanted
            ]
            consumer.assign(assignment)
            if self._on_assign is not None:
                self._on_assign([(tp.topic, tp.partition) for tp in assignment])
        return consumer

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        log.info("assigned %s", _describe(partitions))
        if self._on_assign is not None:
            self._on_assign([(tp.topic, tp.partition) for tp in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.stats.rebalances += 1
        log.info("revoked %s", _describe(partitions))
        self._commit(consumer)
        if self._on_revoke is not None:
            self._on_revoke([(tp.topic, tp.partition) for tp in partitions])

    def _commit(self, consumer: Consumer) -> None:
        """Flush local sinks and the producer, then commit the offsets of handled messages."""
        if self.before_commit is not None and not self.before_commit():
            return
        remaining = self._producer.flush(self.settings.commit_interval_s * 5)
        if remaining:
            log.warning("%d output message(s) still undelivered: offsets not committed", remaining)
            return
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if not (isinstance(error, KafkaError) and error.code() == KafkaError._NO_OFFSET):
                log.warning("offset commit failed: %s", exc)

    def run(self) -> None:
        """Poll and dispatch until :meth:`stop`; commits stored offsets on the way out."""
        consumer = self._consumer = self._open_consumer()
        log.info("consuming %s (%s mode)", sorted(self._kafka_topics), self.settings.mode)
        next_commit = time.monotonic() + self.settings.commit_interval_s
        try:
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.2):
                    self._handle(consumer, message)
                self._producer.poll(0)
                if time.monotonic() >= next_commit:
                    self._commit(consumer)
                    next_commit = time.monotonic() + self.settings.commit_interval_s
        finally:
            self._commit(consumer)
            consumer.close()
            self._consumer = None

    def _handle(self, consumer: Consumer, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                self.stats.consumer_errors += 1
                self._note_error(str(error))
                log.warning("Kafka consumer error: %s", error)
            return
        self.stats.consumed += 1
        self.stats.last_message_ns = time.time_ns()
        self.stats.errors_since_ns = None  # a message came through: the streak is over
        self.stats.broker_down_since_ns = None
        decoded = self._decode(message)
        if decoded is not None and (self.dedup is None or self.dedup.accept(decoded.message)):
            key = (message.key() or b"").decode(errors="replace")
            self._dispatch(decoded, key)
        try:
            consumer.store_offsets(message=message)
        except KafkaException as exc:  # the partition was revoked meanwhile
            log.debug("offset not stored: %s", exc)

    def _decode(self, message: Message) -> Decoded | None:
        try:
            return self.codec.decode(message.value() or b"")
        except CodecError as exc:
            log.warning(
                "skipping undecodable message %s[%d]@%d: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                exc,
            )
            return None

    def _dispatch(self, decoded: Decoded, key: str) -> None:
        self.current = decoded
        try:
            for handler in self._handlers.get(decoded.topic, ()):
                try:
                    handler(key, decoded.message)
                except Exception:
                    self.stats.handler_errors += 1
                    log.exception("handler of %s failed on key %s", decoded.topic, key)
        finally:
            self.current = None
        self.stats.handled += 1

    def start(self) -> None:
        """Run the poll loop in a daemon thread."""
        if self._thread is not None:
            raise BusError("the consumer is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="kafka-poll", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the poll loop to stop (safe from a signal handler); does not wait."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the poll loop (the consumer commits and leaves the group)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop consuming and flush what was published."""
        self.stop()
        try:
            self.flush(timeout=10.0)
        finally:
            self._closed.set()
            self._producer.poll(0)


class _RateLimit(logging.Filter):
    """Lets one record of a kind through per ``period`` seconds (librdkafka repeats itself)."""

    def __init__(self, period: float = 30.0) -> None:
        super().__init__()
        self.period = period
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        kind = "".join(ch for ch in text if not ch.isdigit())[:80]
        now = time.monotonic()
        if now - self._last.get(kind, float("-inf")) < self.period:
            return False
        self._last[kind] = now
        if "Connection refused" in text and record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_librdkafka_log = logging.getLogger("microstream.bus.librdkafka")
_librdkafka_log.addFilter(_RateLimit())


def _offset_at(
    consumer: Consumer, topic: str, partition: int, since_ms: int, high: int, timeout: float
) -> int:
    """The first offset stamped at or after ``since_ms`` (``high`` if none)."""
    try:
        (found,) = consumer.offsets_for_times(
            [TopicPartition(topic, partition, since_ms)], timeout=timeout
        )
    except KafkaException as exc:
        log.warning("offsets by time of %s[%d] unavailable: %s", topic, partition, exc)
        return 0
    offset = found.offset if found.error is None else 0
    return high if offset < 0 else offset


def _describe(partitions: list[TopicPartition]) -> str:
    by_topic: dict[str, list[int]] = defaultdict(list)
    for tp in partitions:
        by_topic[tp.topic].append(tp.partition)
    return ", ".join(f"{name}{sorted(parts)}" for name, parts in sorted(by_topic.items())) or "-"


def read_tail(
    settings: KafkaSettings,
    topics: Sequence[str],
    per_partition: int,
    codec: Codec,
    timeout: float = 30.0,
    since_ms: int | None = None,
) -> list[tuple[str, str, int, Decoded]]:
    """The last messages of every partition of ``topics``.

    At most ``per_partition`` per partition, and with ``since_ms`` (Unix ms)
    only those the broker stamped at or after that time. Returns ``(kafka_topic, key, partition, decoded)`` in partition order; used by
    an engine that takes symbols over, to learn which outputs already exist.
    Undecodable messages are skipped (and counted by ``codec``).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"{settings.group_id}.tail",
            "enable.auto.commit": False,
            "logger": _librdkafka_log,
        }
    )
    try:
        return _read_tail(consumer, topics, per_partition, codec, timeout, since_ms)
    finally:
        consumer.close()


def _read_tail(
    consumer: Consumer,
    topics: Sequence[str],
    per_partition: int,
    codec: Codec,
    timeout: float,
    since_ms: int | None,
) -> list[tuple[str, str, int, Decoded]]:
    metadata = consumer.list_topics(timeout=timeout)
    ends: dict[tuple[str, int], int] = {}
    starts: dict[tuple[str, int], int] = {}
    assignment = []
    for name in topics:
        meta = metadata.topics.get(name)
        for partition in meta.partitions if meta is not None else ():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(name, partition), timeout=timeout
            )
            start = max(low, high - per_partition)
            if since_ms is not None and high > start:
                start = max(start, _offset_at(consumer, name, partition, since_ms, high, timeout))
            if high > start:
                ends[(name, partition)] = high
                starts[(name, partition)] = start
                assignment.append(TopicPartition(name, partition, start))
    out: list[tuple[str, str, int, Decoded]] = []
    if not assignment:
        return out
    consumer.assign(assignment)
    deadline = time.monotonic() + timeout
    # Read to the high watermarks, then until the broker has nothing more to
    # give (some brokers report a watermark below their real end).
    idle = False
    while (ends or not idle) and time.monotonic() < deadline:
        messages = consumer.consume(num_messages=1000, timeout=0.2)
        idle = not messages
        for message in messages:
            if message.error() is not None:
                continue
            where = (message.topic() or "", message.partition() or 0)
            offset = message.offset() or 0
            if offset + 1 >= ends.get(where, 0):
                ends.pop(where, None)
            if offset < starts.get(where, 0):
                continue  # some brokers return the whole batch around the start
            try:
                decoded = codec.decode(message.value() or b"")
            except CodecError:
                continue
            key = (message.key() or b"").decode(errors="replace")
            out.append((where[0], key, where[1], decoded))
    if ends:
        log.warning("tail of %s not fully read within %.0f s", sorted(ends), timeout)
    return out
