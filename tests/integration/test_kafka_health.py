"""Distributed mode over a real Kafka-protocol broker (tansu): engine health and the simulated flag.

* ``/health`` of an engine: ``degraded`` while a book waits for its snapshot,
  ``ok`` once synced, ``down`` (HTTP 503) when the broker has been away longer
  than ``down_after_s``, ``ok`` again after it comes back. The outage is played
  with the TCP proxy in front of the broker (see ``tests/kafka_broker.py``).
  The ingest's ``/health`` (same broker check) goes ``down`` and back too.
* ``microstream ingest --source sim`` -> ``microstream engine`` (processes,
  without ``MICROSTREAM_SIMULATED``): the flag travels in the messages, so the
  engine's rows are ``simulated`` and its ``/health`` and ``/api/v1/symbols`` say so;
  the ingest's ``--health-port`` answers ``ok``.

Engines read their partitions directly (instant; a group takes up to ~20 s to
form on tansu).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kafka_broker import TansuBroker, TcpProxy, free_port
from microstream.api import EngineApi
from microstream.bus.kafka import KafkaBus, KafkaSettings
from microstream.bus.protocol import Topics, symbol_key
from microstream.bus.topics import TopicMap
from microstream.engine import PipelineOptions
from microstream.events import BookSnapshot, DepthUpdate, Trade
from microstream.live_state import LiveStateStore
from microstream.services.engine import EngineService
from microstream.services.ingest import IngestService
from microstream.services.runner import ingest_health

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]


def get(url: str) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of a GET (503 included); ``(0, {})`` if unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def wait_for(condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def test_engine_status_follows_its_book_and_the_broker(
    proxied_broker: tuple[TansuBroker, TcpProxy],
) -> None:
    broker, proxy = proxied_broker
    prefix = f"hl{uuid.uuid4().hex[:6]}"
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        topics=TopicMap(
            prefix=prefix,
            raw_bars_topic=f"{prefix}_bars",
            regime_signals_topic=f"{prefix}_regimes",
        ),
        partitions=2,
        mode="direct",
        group_id=f"{prefix}-engine",
        down_after_s=2.0,
        topic_check_s=0.3,
    )
    producer = KafkaBus(settings)
    ingest = IngestService(producer, snapshot_every_s=0)
    feed_done = threading.Event()
    feed_done.set()  # no feed here: only the broker counts
    service = EngineService(settings, PipelineOptions(features=False), name="health-test")
    store = LiveStateStore(source="kafka")
    store.set_health_provider(service.health)
    api = EngineApi(store, "127.0.0.1", 0)
    api.start()
    health_url = f"{api.url}/health"
    key = symbol_key("binance", "BTCUSDT")
    cut: float | None = None
    service.start()
    try:
        wait_for(lambda: get(health_url)[1].get("status") == "ok", 30, "status ok (assigned)")
        code, doc = get(health_url)
        assert code == 200 and doc["partitions"] == [0, 1] and doc["symbols"] == {}

        # a diff without a snapshot: the engine takes the symbol over, book invalid
        producer.publish(
            Topics.DEPTH,
            key,
            DepthUpdate("binance", "BTCUSDT", 10, 11, 101, 102, None, ((99.0, 2.0),), ()),
        )
        producer.flush()
        wait_for(lambda: key in get(health_url)[1].get("symbols", {}), 30, "the symbol")
        code, doc = get(health_url)
        assert (code, doc["status"]) == (200, "degraded")
        assert doc["status_reasons"] == [f"book not synced: {key}"]

        # the snapshot arrives: the buffered diff bridges it, the book syncs
        snapshot = BookSnapshot("binance", "BTCUSDT", 12, 13, 100, ((99.0, 1.0),), ((101.0, 1.0),))
        producer.publish(Topics.SNAPSHOTS, key, snapshot)
        producer.publish(
            Topics.TRADES, key, Trade("binance", "BTCUSDT", 14, 15, 1, 100.0, 1.0, "buy")
        )
        producer.flush()
        wait_for(lambda: get(health_url)[1].get("status") == "ok", 30, "status ok (synced)")
        doc = get(health_url)[1]
        assert doc["symbols"][key]["book_valid"] is True
        assert doc["simulated"] is False and doc["symbols"][key]["simulated"] is False

        # the broker goes away: degraded at once, down after down_after_s (HTTP 503)
        proxy.stop()
        cut = time.monotonic()
        wait_for(lambda: get(health_url)[0] == 503, 30, "HTTP 503 (down)")
        assert time.monotonic() - cut > settings.down_after_s
        assert get(health_url)[1]["status_reasons"][0].startswith("Kafka ")

        # the broker check (a metadata request every 0.3 s here) keeps failing: down
        # for good. (librdkafka's own errors come further apart as its reconnect
        # backoff grows, up to 10 s: with the 2 s limit of this test they alone
        # make separate short streaks.)
        def broker_down_for_long() -> bool:
            code, doc = get(health_url)
            return code == 503 and (doc.get("broker_down_s") or 0) > settings.down_after_s

        wait_for(broker_down_for_long, 15, "the broker check to report a long outage")
        doc = get(health_url)[1]
        assert doc["status"] == "down" and doc["feed_connected"] is False
        assert "Kafka broker unreachable for" in doc["status_reasons"][0]
        with urllib.request.urlopen(f"{api.url}/metrics", timeout=3) as answer:
            assert "microstream_up 0" in answer.read().decode().splitlines()
        # ingest's health uses the same check of its own bus
        wait_for(
            lambda: ingest_health(ingest, producer, "test", feed_done)["status"] == "down",
            15,
            "ingest status down",
        )

        # it comes back: ok again once its errors are older than down_after_s
        proxy.start()
        cut = None
        wait_for(lambda: get(health_url)[1].get("status") == "ok", 60, "status ok (recovered)")
        doc = get(health_url)[1]
        assert doc["broker_down_s"] is None and doc["feed_connected"] is True
        assert doc["client_errors"] > 0  # librdkafka reported the outage
        wait_for(
            lambda: ingest_health(ingest, producer, "test", feed_done)["status"] == "ok",
            15,
            "ingest status ok",
        )
    finally:
        if cut is not None:
            proxy.start()  # the other tests of the module need the broker
        service.stop()
        service.close()
        producer.close()
        api.stop()


def test_ingest_of_the_simulator_marks_the_engine_outputs_simulated_and_reports_health(
    proxied_broker: tuple[TansuBroker, TcpProxy], tmp_path: Path
) -> None:
    broker, _ = proxied_broker
    prefix = f"sim{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_KAFKA_TOPIC_PREFIX": prefix,
        "MICROSTREAM_KAFKA_PARTITIONS": "2",
        "KAFKA_RAW_BARS_TOPIC": f"{prefix}_bars",
        "KAFKA_REGIME_SIGNALS_TOPIC": f"{prefix}_regimes",
    }
    env.pop("MICROSTREAM_SIMULATED", None)  # the flag must come with the data
    port = free_port()
    base = [sys.executable, "-m", "microstream.cli"]
    engine_cmd = ["engine", "--direct", "--no-lake", "--no-models", "--api-port", str(port)]
    ingest_port = free_port()
    ingest_cmd = ["ingest", "--source", "sim", "--symbols", "BTCUSDT", "--duration", "90"]
    ingest_cmd += ["--health-port", str(ingest_port)]
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("engine", "ingest")}
    engine = subprocess.Popen(
        [*base, *engine_cmd], env=env, stdout=logs["engine"], stderr=subprocess.STDOUT
    )
    ingest = subprocess.Popen(
        [*base, *ingest_cmd], env=env, stdout=logs["ingest"], stderr=subprocess.STDOUT
    )
    api = f"http://127.0.0.1:{port}"
    key = symbol_key("binance", "BTCUSDT")
    try:
        wait_for(
            lambda: (
                get(f"{api}/health")[1].get("symbols", {}).get(key, {}).get("book_valid") is True
            ),
            90,
            "the simulated symbol's book to sync on the engine",
            poll=0.5,
        )
        code, doc = get(f"{api}/health")
        assert code == 200 and doc["status"] == "ok"
        assert doc["simulated"] is True and doc["symbols"][key]["simulated"] is True
        assert get(f"{api}/api/v1/symbols")[1]["simulated"] is True  # the dashboard's banner
        wait_for(
            lambda: bool(get(f"{api}/api/v1/binance/BTCUSDT/trades?limit=50")[1].get("rows")),
            30,
            "trade rows",
        )
        doc = get(f"{api}/api/v1/binance/BTCUSDT/trades?limit=50")[1]
        assert all(row["simulated"] is True for row in doc["rows"])
        tops = get(f"{api}/api/v1/binance/BTCUSDT/book_top?limit=50")[1]["rows"]
        assert tops and all(row["simulated"] is True for row in tops)

        # ingest --health-port: feed connected, broker reachable
        code, doc = get(f"http://127.0.0.1:{ingest_port}/health")
        assert code == 200 and doc["status"] == "ok", doc
        assert doc["service"] == "ingest" and doc["simulated"] is True
        assert doc["feed_connected"] is True and doc["broker_down_s"] is None
        assert doc["frames"] > 0 and doc["published"] > 0
    finally:
        for proc in (ingest, engine):
            if proc.poll() is None:
                proc.terminate()
        for proc in (ingest, engine):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs.values():
            log.close()
    assert engine.returncode == 0, (tmp_path / "engine.log").read_text()[-3000:]
