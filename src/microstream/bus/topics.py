"""Mapping of the bus's logical topics onto Kafka topics, and the key partitioner.

Market data of one symbol must reach the engine in the order ingest saw it
(a feature at grid time t needs the trades *and* depth events up to t), and
Kafka orders messages only within one partition of one topic. So by default all
market-data kinds share one Kafka topic, ``<prefix>.md.events``, keyed by
``"<exchange>:<SYMBOL>"``; the consumer routes each message back to its logical
topic from the envelope. ``split_market_data=True`` gives one Kafka topic per
kind (``<prefix>.md.trades``, ...) for consumers that want a single kind and do
not need cross-kind order.

Output rows go to one topic per table; bars and regime signals keep the
original design's names (``KAFKA_RAW_BARS_TOPIC``, ``KAFKA_REGIME_SIGNALS_TOPIC``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from microstream.bus.protocol import Row, RowBatch, Topics

MARKET_DATA_TOPICS: Final = (Topics.TRADES, Topics.DEPTH, Topics.SNAPSHOTS, Topics.TICKERS)
ROW_TABLES: Final = (
    "trades",
    "book_top",
    "book_sync",
    "features",
    "bars_1m",
    "regimes",
    "signals_1m",
    "predictions",
    "sim_truth",
)
"""Lake tables that have a row topic (rows of other tables use ``<prefix>.out.other``)."""


@dataclass(frozen=True)
class TopicMap:
    """Logical topic (and row table) -> Kafka topic names.

    Attributes:
        prefix: prefix of every MicroStream-named topic (``"microstream"``).
        raw_bars_topic: Kafka topic of ``bars_1m`` rows.
        regime_signals_topic: Kafka topic of ``regimes`` and ``signals_1m`` rows.
        split_market_data: one Kafka topic per market-data kind instead of one
            shared, per-symbol-ordered topic.
    """

    prefix: str = "microstream"
    raw_bars_topic: str = "market_raw_bars"
    regime_signals_topic: str = "market_regime_signals"
    split_market_data: bool = False

    def for_logical(self, topic: str) -> str:
        """The Kafka topic of a non-row logical topic."""
        if topic in MARKET_DATA_TOPICS and not self.split_market_data:
            return f"{self.prefix}.md.events"
        return f"{self.prefix}.{topic}"

    def for_table(self, table: str) -> str:
        """The Kafka topic of one table's output rows."""
        if table == "bars_1m":
            return self.raw_bars_topic
        if table in ("regimes", "signals_1m"):
            return self.regime_signals_topic
        if table in ROW_TABLES:
            return f"{self.prefix}.out.{table}"
        return f"{self.prefix}.out.other"

    def for_message(self, topic: str, message: Any) -> str:
        """The Kafka topic one published message goes to (a batch: its table's)."""
        if topic == Topics.ROWS and isinstance(message, Row | RowBatch):
            return self.for_table(message.table)
        return self.for_logical(topic)

    def subscription(self, topic: str) -> tuple[str, ...]:
        """Every Kafka topic a subscriber of logical ``topic`` must read."""
        if topic == Topics.ROWS:
            names = {self.for_table(table) for table in ROW_TABLES}
            names.add(self.for_table("other"))
            return tuple(sorted(names))
        return (self.for_logical(topic),)

    def all_topics(self) -> tuple[str, ...]:
        """Every Kafka topic MicroStream uses (for topic creation)."""
        names = {self.for_logical(t) for t in (*MARKET_DATA_TOPICS, Topics.CONTROL)}
        names.update(self.subscription(Topics.ROWS))
        return tuple(sorted(names))


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (Java client and librdkafka ``murmur2_random``)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length % 4
    if tail:
        rest = data[length - tail :]
        for index in range(tail - 1, -1, -1):
            h ^= rest[index] << (8 * index)
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
