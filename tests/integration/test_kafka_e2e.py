"""Distributed mode end to end: ingest -> Kafka (tansu) -> engines in one group.

Real USD-M captures (BTCUSDT + ETHUSDT, 2024-07-18) are replayed by the ingest
service; engines run as separate processes (``microstream engine``) so one can
be killed with SIGKILL. Outputs are read back from the output topics.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import require_shared
from kafka_broker import TansuBroker, TcpProxy, free_port
from microstream.bus.codec import Codec
from microstream.bus.dedup import row_ident
from microstream.bus.kafka import KafkaBus, KafkaSettings
from microstream.bus.protocol import Row, Topics, symbol_key
from microstream.bus.topics import TopicMap, partition_for
from microstream.capture import read_captures
from microstream.engine import PipelineOptions
from microstream.events import Trade
from microstream.services.engine import EngineService
from microstream.services.ingest import IngestService
from microstream.services.sources import run_replay
from microstream.venues.binance.parse import FrameDecoder

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]
EX = "binance-futures"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def usdm_2024(*symbols: str) -> list[Path]:
    return [
        require_shared(f"binance/usdm/{s.lower()}_{day}.gz")
        for s in symbols
        for day in ("20240718", "20240719")
    ]


def expected_trades(captures: list[Path]) -> dict[str, set[int]]:
    decoder = FrameDecoder()
    ids: dict[str, set[int]] = defaultdict(set)
    for frame in read_captures(captures):
        for event in decoder.decode(frame):
            if isinstance(event, Trade):
                ids[event.symbol].add(event.trade_id)
    return ids


class RowCollector:
    """Reads every output topic from the start, in a thread, keeping every row."""

    def __init__(self, bootstrap: str, topics: TopicMap, partitions: int) -> None:
        self.rows: list[Row] = []
        self.topic_of: dict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._codec = Codec()
        names = topics.subscription(Topics.ROWS)
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
        self._consumer.assign([TopicPartition(n, p, 0) for n in names for p in range(partitions)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(1000, timeout=0.2):
                if message.error() is None:
                    row = self._codec.decode(message.value()).message
                    with self._lock:
                        self.rows.append(row)
                        self.topic_of[row.table].add(message.topic())
        self._consumer.close()

    def snapshot(self) -> list[Row]:
        with self._lock:
            return list(self.rows)

    def trade_ids(self) -> dict[str, list[int]]:
        ids: dict[str, list[int]] = defaultdict(list)
        for row in self.snapshot():
            if row.table == "trades":
                ids[row.symbol].append(row.values["trade_id"])
        return ids

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def all_trades_in(collector: RowCollector, expected: dict[str, set[int]]) -> Callable[[], bool]:
    def done() -> bool:
        got = collector.trade_ids()
        return all(set(got.get(s, ())) >= ids for s, ids in expected.items())

    return done


def assert_each_output_once(rows: list[Row]) -> Counter[str]:
    """No output row identity (table, symbol, key columns) appears twice."""
    seen: Counter[tuple[Any, ...]] = Counter()
    for row in rows:
        if row.table != "book_sync":
            seen[(row.table, row.exchange, row.symbol, row_ident(row))] += 1
    duplicates = {k: n for k, n in seen.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated outputs, e.g. {list(duplicates)[:5]}"
    return Counter(k[0] for k in seen)


def split_partitions() -> int:
    """A partition count that puts the two symbols in different halves (range assignor)."""
    for count in range(2, 16, 2):
        halves = {partition_for(symbol_key(EX, s), count) < count // 2 for s in SYMBOLS}
        if len(halves) == 2:
            return count
    raise AssertionError("no partition count splits the symbols")


def health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            doc: dict[str, Any] = json.loads(answer.read())
            return doc
    except OSError:
        return {}


def start_engine(
    name: str, env: dict[str, str], lake: Path, port: int, log: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "microstream.cli",
        "engine",
        "--name",
        name,
        "--data-dir",
        str(lake),
        "--api-port",
        str(port),
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def ingest_thread(
    settings: KafkaSettings, captures: list[Path], speed: float | None
) -> tuple[IngestService, threading.Event, threading.Event]:
    """Ingest replaying ``captures`` in a thread; returns (service, stop, replayed)."""
    bus = KafkaBus(settings)
    service = IngestService(bus, snapshot_every_s=0)
    stop, replayed = threading.Event(), threading.Event()
    bus.start()

    def run() -> None:
        try:
            run_replay(service, captures, speed=speed, stop=stop, done=replayed)
        finally:
            bus.stop()
            service.close()

    threading.Thread(target=run, name="ingest", daemon=True).start()
    return service, stop, replayed


def test_two_engines_share_the_symbols_and_one_takes_over(
    proxied_broker: tuple[TansuBroker, TcpProxy], tmp_path: Path
) -> None:
    broker, _ = proxied_broker
    captures = usdm_2024(*SYMBOLS)
    expected = expected_trades(captures)
    partitions = split_partitions()
    prefix = f"e2e{uuid.uuid4().hex[:6]}"
    topics = TopicMap(
        prefix=prefix, raw_bars_topic=f"{prefix}_bars", regime_signals_topic=f"{prefix}_regimes"
    )
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_KAFKA_TOPIC_PREFIX": prefix,
        "MICROSTREAM_KAFKA_PARTITIONS": str(partitions),
        "MICROSTREAM_KAFKA_GROUP": f"{prefix}-engines",
        "MICROSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "MICROSTREAM_FLUSH_SECONDS": "1",
        "KAFKA_RAW_BARS_TOPIC": topics.raw_bars_topic,
        "KAFKA_REGIME_SIGNALS_TOPIC": topics.regime_signals_topic,
    }
    ingest_settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topics=topics,
        partitions=partitions,
        mode="direct",
        group_id=f"{prefix}-ingest",
    )
    collector = RowCollector(broker.bootstrap, topics, partitions)
    ports = {"a": free_port(), "b": free_port()}
    engines = {
        name: start_engine(
            f"engine-{name}", env, tmp_path / "lake", ports[name], tmp_path / f"{name}.log"
        )
        for name in ports
    }
    service, stop_ingest, replayed = ingest_thread(ingest_settings, captures, speed=12.0)
    try:
        # both engines get a share of the partitions (one symbol each)
        wait_until(
            lambda: all(health(p).get("partitions") for p in ports.values()),
            90,
            "both engines to join the group",
        )
        owned = {name: health(port).get("partitions", []) for name, port in ports.items()}
        assert set(owned["a"]).isdisjoint(owned["b"])
        wait_until(
            lambda: all(health(p).get("symbols") for p in ports.values()),
            60,
            "both engines to run a symbol",
        )
        symbols_a = set(health(ports["a"]).get("symbols", {}))
        assert len(symbols_a) == 1 and symbols_a != set(health(ports["b"]).get("symbols", {}))

        engines["a"].send_signal(signal.SIGKILL)  # engine a dies without a goodbye
        engines["a"].wait(10)
        wait_until(
            lambda: len(health(ports["b"]).get("partitions", ())) == partitions,
            90,
            "engine b to take every partition over",
        )
        assert replayed.wait(120)
        wait_until(all_trades_in(collector, expected), 90, "every trade in the outputs")
        time.sleep(2)  # let late duplicates, if any, arrive
    finally:
        stop_ingest.set()
        for process in engines.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in engines.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        collector.stop()
    rows = collector.snapshot()
    # every trade exactly once, from one engine or the other
    for symbol, ids in collector.trade_ids().items():
        assert sorted(ids) == sorted(expected[symbol]), symbol
    tables = assert_each_output_once(rows)
    assert {"trades", "book_top", "features", "bars_1m", "regimes"} <= set(tables), tables
    assert collector.topic_of["bars_1m"] == {f"{prefix}_bars"}  # KAFKA_RAW_BARS_TOPIC
    assert collector.topic_of["regimes"] == {f"{prefix}_regimes"}  # KAFKA_REGIME_SIGNALS_TOPIC
    assert collector.topic_of["features"] == {f"{prefix}.out.features"}
    # the lake both engines wrote: every trade exactly once there too
    lake = pl.scan_parquet(
        str(tmp_path / "lake" / "trades" / "**" / "*.parquet"), hive_partitioning=True
    )
    in_lake = lake.select("symbol", "trade_id").collect()
    for symbol, ids in expected.items():
        got = in_lake.filter(pl.col("symbol") == symbol)["trade_id"].to_list()
        assert len(got) == len(set(got)), (
            f"{len(got) - len(set(got))} duplicated {symbol} trades in the lake"
        )
        assert set(got) == ids, f"{len(ids - set(got))} {symbol} trades missing from the lake"
    # the symbol that moved: book marked invalid by engine b, then synced again
    (moved,) = (key.split(":")[1] for key in symbols_a)
    sync = [r.values for r in rows if r.table == "book_sync" and r.symbol == moved]
    takeover = [
        i for i, v in enumerate(sync) if "engine-b" in v["detail"] and v["state"] == "resync"
    ]
    assert takeover, sync
    assert any(v["state"] == "synced" for v in sync[takeover[0] :]), sync[takeover[0] :]
    assert service.stats.snapshot_requests >= 1
    # the symbol that stayed on engine b kept its book through the rebalance
    (stayed,) = set(SYMBOLS) - {moved}
    kept = [r for r in rows if r.table == "book_sync" and r.symbol == stayed]
    assert sum("engine-b" in r.values["detail"] for r in kept) == 1, kept


def test_broker_outage_ingestion_resumes_without_losing_a_trade(
    proxied_broker: tuple[TansuBroker, TcpProxy],
) -> None:
    broker, proxy = proxied_broker
    captures = usdm_2024("BTCUSDT")
    expected = expected_trades(captures)
    prefix = f"out{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topics=TopicMap(prefix=prefix),
        partitions=2,
        mode="direct",
        group_id=f"{prefix}-engine",
    )
    engine = EngineService(settings, PipelineOptions(features=False, models=False), name="solo")
    engine.start()
    collector = RowCollector(broker.bootstrap, settings.topics, 2)
    service, stop_ingest, replayed = ingest_thread(
        KafkaSettings(**{**settings.__dict__, "group_id": f"{prefix}-ingest"}), captures, speed=40.0
    )
    try:
        wait_until(lambda: len(collector.trade_ids().get("BTCUSDT", ())) > 500, 60, "first trades")
        proxy.stop()  # the broker goes away: connections drop, new ones are refused
        time.sleep(5)
        proxy.start()
        assert replayed.wait(120)
        wait_until(all_trades_in(collector, expected), 90, "every trade after the outage")
        time.sleep(1)
    finally:
        stop_ingest.set()
        engine.close()
        collector.stop()
    assert sorted(collector.trade_ids()["BTCUSDT"]) == sorted(expected["BTCUSDT"])
    assert_each_output_once(collector.snapshot())
    assert service.bus.stats.delivery_errors == 0  # type: ignore[attr-defined]


def test_ingest_restart_replaying_the_capture_duplicates_no_output(
    proxied_broker: tuple[TansuBroker, TcpProxy],
) -> None:
    broker, _ = proxied_broker
    frames = list(itertools.islice(read_captures(usdm_2024("BTCUSDT")), 15_000))
    trades = {e.trade_id for f in frames for e in FrameDecoder().decode(f) if isinstance(e, Trade)}
    prefix = f"rst{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topics=TopicMap(prefix=prefix),
        partitions=2,
        mode="direct",
        group_id=f"{prefix}-engine",
    )
    engine = EngineService(settings, PipelineOptions(features=False, models=False), name="solo")
    engine.start()
    collector = RowCollector(broker.bootstrap, settings.topics, 2)
    try:
        for _run in range(2):  # ingest publishes the capture, restarts, publishes it again
            bus = KafkaBus(KafkaSettings(**{**settings.__dict__, "group_id": f"{prefix}-ingest"}))
            service = IngestService(bus, snapshot_every_s=0)
            for frame in frames:
                service.on_frame(frame)
            service.close()
        wait_until(lambda: engine.kafka.stats.consumed >= 2 * len(frames) - 10, 120, "both replays")
        time.sleep(2)
    finally:
        engine.close()
        collector.stop()
    assert sorted(collector.trade_ids()["BTCUSDT"]) == sorted(trades)
    tables = assert_each_output_once(collector.snapshot())
    assert tables["book_top"] > 1000
    assert engine.kafka.dedup is not None
    assert engine.kafka.dedup.duplicates["trade"] == len(trades)
