"""The Kafka bus against a real Kafka-protocol broker (tansu on 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import require_shared
from kafka_broker import TansuBroker, free_port
from microstream.bus.codec import Codec
from microstream.bus.dedup import EventDedup
from microstream.bus.kafka import KafkaBus, KafkaSettings, read_tail
from microstream.bus.protocol import Row, Topics, symbol_key
from microstream.bus.topics import TopicMap
from microstream.errors import BusError
from microstream.events import DepthUpdate, Trade

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]
EX = "binance-futures"


def settings(broker: TansuBroker, **overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap,
        "topics": TopicMap(prefix=f"t{uuid.uuid4().hex[:8]}"),
        "partitions": 4,
        "mode": "direct",
        "group_id": f"g{uuid.uuid4().hex[:8]}",
        "connect_retries": 3,
        "retry_backoff_s": 0.2,
    }
    values.update(overrides)
    return KafkaSettings(**values)


def trade(symbol: str, trade_id: int) -> Trade:
    return Trade(EX, symbol, trade_id, trade_id + 1, trade_id, 100.0 + trade_id, 1.0, "buy")


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within timeout")
        time.sleep(0.05)


class Collector:
    """A thread-safe subscriber that records (key, message)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, key: str, message: Any) -> None:
        with self._lock:
            self.items.append((key, message))

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


def test_round_trip_keeps_keys_partitions_and_per_symbol_order(broker: TansuBroker) -> None:
    config = settings(broker)
    bus = KafkaBus(config)
    trades, depth = Collector(), Collector()
    bus.subscribe(Topics.TRADES, trades)
    bus.subscribe(Topics.DEPTH, depth)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    for i in range(300):
        for symbol in symbols:
            bus.publish(Topics.TRADES, symbol_key(EX, symbol), trade(symbol, i))
            bus.publish(
                Topics.DEPTH,
                symbol_key(EX, symbol),
                DepthUpdate(EX, symbol, i, i, i, i, i - 1, ((1.0, 1.0),), ()),
            )
    bus.flush()
    bus.start()
    try:
        wait_until(lambda: len(trades) == 900 and len(depth) == 900)
    finally:
        bus.close()
    for symbol in symbols:
        key = symbol_key(EX, symbol)
        ids = [m.trade_id for k, m in trades.items if k == key]
        assert ids == list(range(300)), symbol  # in order, once each
        assert [m.last_update_id for k, m in depth.items if k == key] == list(range(300))
    assert bus.stats.delivered == 1800 and bus.stats.delivery_errors == 0

    # every message of a key sits in the partition Kafka's murmur2 picks
    topic = config.topics.for_logical(Topics.TRADES)
    raw = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "raw-check"})
    raw.assign([TopicPartition(topic, p, 0) for p in range(4)])
    seen = 0
    deadline = time.monotonic() + 20
    while seen < 1800 and time.monotonic() < deadline:
        for message in raw.consume(500, timeout=0.5):
            assert message.error() is None
            key = message.key().decode()
            assert message.partition() == bus.partition_of(topic, key)
            seen += 1
    raw.close()
    assert seen == 1800


def test_broker_down_at_start_is_a_clear_retried_error(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    port = free_port()
    config = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{port}", connect_retries=3, retry_backoff_s=0.1
    )
    expected = f"127.0.0.1:{port} is unreachable after 3 attempts"
    with (
        caplog.at_level(logging.WARNING, logger="microstream.bus.kafka"),
        pytest.raises(BusError, match=expected),
    ):
        KafkaBus(config)
    retries = [r for r in caplog.records if "unreachable (attempt" in r.getMessage()]
    assert len(retries) == 3
    assert all(f"127.0.0.1:{port}" in r.getMessage() for r in retries)


def test_replayed_messages_are_delivered_once(broker: TansuBroker) -> None:
    bus = KafkaBus(settings(broker), dedup=EventDedup())
    got, rows = Collector(), Collector()
    bus.subscribe(Topics.TRADES, got)
    bus.subscribe(Topics.ROWS, rows)
    key = symbol_key(EX, "BTCUSDT")
    for _ in range(2):  # an ingest replay publishes the same trades and rows again
        for i in range(100):
            bus.publish(Topics.TRADES, key, trade("BTCUSDT", i))
            bus.publish(Topics.ROWS, key, Row("bars_1m", EX, "BTCUSDT", {"ts": i * 60}))
    bus.flush()
    bus.start()
    try:
        wait_until(lambda: bus.stats.consumed == 400)
    finally:
        bus.close()
    assert [m.trade_id for _, m in got.items] == list(range(100))
    assert [m.values["ts"] for _, m in rows.items] == [i * 60 for i in range(100)]
    assert bus.dedup is not None
    assert bus.dedup.duplicates == {"trade": 100, "row:bars_1m": 100}


def test_consumer_resumes_after_committed_offsets(broker: TansuBroker) -> None:
    config = settings(broker)
    key = symbol_key(EX, "BTCUSDT")
    first = KafkaBus(config)
    got = Collector()
    first.subscribe(Topics.TRADES, got)
    for i in range(50):
        first.publish(Topics.TRADES, key, trade("BTCUSDT", i))
    first.flush()
    first.start()
    wait_until(lambda: len(got) == 50)
    first.close()  # commits the offsets of handled messages

    second = KafkaBus(config)
    again = Collector()
    second.subscribe(Topics.TRADES, again)
    for i in range(50, 80):
        second.publish(Topics.TRADES, key, trade("BTCUSDT", i))
    second.flush()
    second.start()
    try:
        wait_until(lambda: len(again) == 30)
        time.sleep(0.5)
    finally:
        second.close()
    assert [m.trade_id for _, m in again.items] == list(range(50, 80))


def test_undecodable_message_is_counted_and_skipped(broker: TansuBroker) -> None:
    config = settings(broker)
    bus = KafkaBus(config)
    got = Collector()
    bus.subscribe(Topics.TRADES, got)
    topic = config.topics.for_logical(Topics.TRADES)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, b"\x01not msgpack", b"binance-futures:BTCUSDT")
    producer.flush(10)
    bus.publish(Topics.TRADES, symbol_key(EX, "BTCUSDT"), trade("BTCUSDT", 1))
    bus.flush()
    bus.start()
    try:
        wait_until(lambda: len(got) == 1)
    finally:
        bus.close()
    assert bus.codec.rejected["corrupt"] == 1


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microstream.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_ingest_command_publishes_a_capture(broker: TansuBroker) -> None:
    capture = require_shared("binance/usdm/btcusdt_20240718.gz")
    prefix = f"cli{uuid.uuid4().hex[:6]}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "MICROSTREAM_KAFKA_TOPIC_PREFIX": prefix}
    done = run_cli(["ingest", "--captures", str(capture), "--duration", "3", "--exit-at-end"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["source"] == "replay" and summary["exchange"] == "binance-futures"
    assert summary["published"] == summary["delivered"] > 1000
    assert summary["delivery_errors"] == 0


def test_commands_fail_clearly_when_the_broker_is_down() -> None:
    address = f"127.0.0.1:{free_port()}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": address, "MICROSTREAM_KAFKA_CONNECT_RETRIES": "2"}
    for command in (["engine", "--no-api", "--no-lake"], ["ingest", "--source", "sim"]):
        done = run_cli(command, env)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"Kafka broker at {address} is unreachable after 2 attempts" in done.stderr
        assert "Traceback" not in done.stderr


def test_read_tail_bounds_by_count_and_time(broker: TansuBroker) -> None:
    config = settings(broker, partitions=1)
    bus = KafkaBus(config)
    key = symbol_key(EX, "BTCUSDT")
    for i in range(30):
        bus.publish(Topics.ROWS, key, Row("features", EX, "BTCUSDT", {"ts": i}))
    bus.flush()
    time.sleep(1.0)
    since_ms = int(time.time() * 1000)
    time.sleep(0.2)
    for i in range(30, 50):
        bus.publish(Topics.ROWS, key, Row("features", EX, "BTCUSDT", {"ts": i}))
    bus.close()
    topic = [config.topics.for_table("features")]
    every = read_tail(config, topic, 1000, bus.codec)
    assert [d.message.values["ts"] for *_, d in every] == list(range(50))
    # a suffix of at least the last 10 (tansu reports the high watermark of a
    # partition as its last batch's base offset + 1, so more may come back)
    last = [d.message.values["ts"] for *_, d in read_tail(config, topic, 10, bus.codec)]
    assert last == list(range(last[0], 50)) and last[0] <= 40
    recent = read_tail(config, topic, 1000, bus.codec, since_ms=since_ms)
    assert [d.message.values["ts"] for *_, d in recent] == list(range(30, 50))


def test_ingest_command_runs_the_simulator(broker: TansuBroker) -> None:
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "MICROSTREAM_KAFKA_TOPIC_PREFIX": prefix}
    done = run_cli(["ingest", "--source", "sim", "--symbols", "BTCUSDT", "--duration", "4"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["exchange"] == "binance" and summary["events"]["Trade"] > 0
    assert summary["published"] == summary["delivered"]
    config = settings(broker, topics=TopicMap(prefix=prefix))
    truth = read_tail(config, [config.topics.for_table("sim_truth")], 1000, Codec())
    assert truth and all(d.message.table == "sim_truth" for *_, d in truth)
