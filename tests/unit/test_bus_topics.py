"""Kafka topic mapping and the murmur2 partitioner."""

from __future__ import annotations

import pytest

from microstream.bus.protocol import Row, Topics
from microstream.bus.topics import TopicMap, murmur2, partition_for


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # Kafka's own test vectors (org.apache.kafka.common.utils.UtilsTest)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    signed = murmur2(data) - (1 << 32) if murmur2(data) >= 1 << 31 else murmur2(data)
    assert signed == expected


def test_partition_is_stable_and_in_range() -> None:
    assert all(0 <= partition_for(f"binance:S{i}", 6) < 6 for i in range(100))
    assert partition_for("binance-futures:BTCUSDT", 6) == partition_for(
        "binance-futures:BTCUSDT", 6
    )


def test_topic_mapping() -> None:
    topics = TopicMap(prefix="ms", raw_bars_topic="bars", regime_signals_topic="regsig")
    assert topics.for_logical(Topics.TRADES) == "ms.md.events"
    assert topics.for_logical(Topics.DEPTH) == "ms.md.events"
    assert topics.for_logical(Topics.CONTROL) == "ms.md.control"
    split = TopicMap(prefix="ms", split_market_data=True)
    assert split.for_logical(Topics.TRADES) == "ms.md.trades"

    def row(table: str) -> Row:
        return Row(table, "binance", "BTCUSDT", {})

    assert topics.for_message(Topics.ROWS, row("bars_1m")) == "bars"
    assert topics.for_message(Topics.ROWS, row("regimes")) == "regsig"
    assert topics.for_message(Topics.ROWS, row("signals_1m")) == "regsig"
    assert topics.for_message(Topics.ROWS, row("features")) == "ms.out.features"
    assert topics.for_message(Topics.ROWS, row("predictions")) == "ms.out.predictions"
    assert topics.for_message(Topics.ROWS, row("whatever")) == "ms.out.other"
    subscription = topics.subscription(Topics.ROWS)
    assert {"bars", "regsig", "ms.out.features", "ms.out.other"} <= set(subscription)
    assert set(subscription) <= set(topics.all_topics())
