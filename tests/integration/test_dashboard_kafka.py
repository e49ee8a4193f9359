"""The dashboard's engine routing against two real ``microstream engine`` processes.

A tansu broker, ``microstream ingest --source sim`` for BTCUSDT and ETHUSDT,
and two engines in one consumer group whose APIs listen on 127.0.0.1 and
127.0.0.2 with the same port, reached through one host name that resolves to
both (as ``http://engine:8765`` does under ``docker compose --scale engine=2``).
The group gives each engine one symbol; the dashboard reads each symbol from
its engine; when one engine is killed, the survivor takes its symbol over and
the dashboard follows it there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from kafka_broker import TansuBroker, free_port
from microstream.dashboard import data, engines

pytestmark = pytest.mark.kafka

BTC, ETH = "binance:BTCUSDT", "binance:ETHUSDT"
NAME = "engines.test"


@pytest.fixture
def resolver() -> Iterator[None]:
    engines.set_resolver(lambda host, port: ["127.0.0.1", "127.0.0.2"] if host == NAME else [])
    yield
    engines.set_resolver(None)


def routing(setting: str) -> engines.Routing:
    engines.clear_resolved()
    return engines.route(data.engine_status(e) for e in engines.endpoints(setting))


def wait_for(setting: str, done: object, timeout: float) -> engines.Routing:
    """Poll the routing until ``done(routing)`` is true (fails after ``timeout`` s)."""
    assert callable(done)
    deadline = time.monotonic() + timeout
    view = routing(setting)
    while not done(view):
        if time.monotonic() > deadline:
            pytest.fail(f"routing never settled: {view.routes}, {[e.owned for e in view.engines]}")
        time.sleep(1)
        view = routing(setting)
    return view


def test_dashboard_follows_symbols_across_a_real_engine_group(
    broker: TansuBroker, resolver: None, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    cli = [sys.executable, "-m", "microstream.cli"]
    engine_args = ["engine", "--group", "dash", "--no-lake", "--no-models", "--simulated"]
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("wb") as out:
            proc = subprocess.Popen(cli + args, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        return proc

    setting = f"http://{NAME}:{port}"
    a_url, b_url = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    try:
        start(["ingest", "--source", "sim", "--symbols", "BTCUSDT,ETHUSDT"], "ingest.log")
        start(
            [*engine_args, "--name", "a", "--api-host", "127.0.0.1", "--api-port", str(port)],
            "a.log",
        )
        b = start(
            [*engine_args, "--name", "b", "--api-host", "127.0.0.2", "--api-port", str(port)],
            "b.log",
        )
        # the group splits the two symbols: one engine each, each read from its engine
        view = wait_for(
            setting, lambda v: len(v.routes) == 2 and len(set(v.routes.values())) == 2, 120
        )
        assert [e.url for e in view.engines] == [a_url, b_url]
        for label, url in view.routes.items():
            engine = view.engine_of(label)
            assert engine is not None and engine.owned is not None and label in engine.owned
            exchange, symbol = engines.split_label(label)
            state = requests.get(f"{url}/api/v1/{exchange}/{symbol}/state", timeout=5)
            assert state.status_code == 200 and state.json()["symbol"] == symbol
        moved = next(label for label, url in view.routes.items() if url == b_url)

        b.send_signal(signal.SIGKILL)
        # the survivor takes the dead engine's symbol over; the dashboard follows it
        view = wait_for(setting, lambda v: v.routes.get(moved) == a_url, 90)
        assert [e.up for e in view.engines] == [True, False]
        assert view.labels == [BTC, ETH] and set(view.routes.values()) == {a_url}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
