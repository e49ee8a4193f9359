"""``microstream ingest --record DIR``: the raw recorder beside the Kafka publisher.

Ingest runs the simulator for a few seconds against a real Kafka-protocol
broker (tansu) and records every raw frame; the recording must replay through
the project's own capture reader and parser, frame for frame. Without a
``--source``, ingest falls back from an unreachable Binance to the simulator,
loudly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from kafka_broker import TansuBroker
from microstream.capture import read_captures
from microstream.venues.binance.parse import FrameDecoder

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def test_ingest_records_every_frame_it_publishes(broker: TansuBroker, tmp_path: Path) -> None:
    out = tmp_path / "recording"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_KAFKA_TOPIC_PREFIX": f"rec{uuid.uuid4().hex[:6]}",
    }
    command = ["ingest", "--source", "sim", "--symbols", "BTCUSDT", "--duration", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "microstream.cli", *command, "--record", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["published"] == summary["delivered"] > 0

    files = sorted(out.glob("*.gz"))
    assert files, f"nothing recorded in {out}"
    frames = list(read_captures(files))
    assert len(frames) == summary["frames"]
    assert b"btcusdt@depthSnapshot" in frames[0].payload  # the REST snapshot comes first
    decoder = FrameDecoder()
    kinds = Counter(type(e).__name__ for f in frames for e in decoder.decode(f))
    assert kinds["BookSnapshot"] >= 1 and kinds["DepthUpdate"] > 0
    assert kinds["Trade"] == summary["events"]["Trade"]
    # only what a live client subscribes to on Binance: no aggTrade or 1 s diffs
    # that would reach the engines as second copies of the same trades and book
    streams = {json.loads(f.payload)["stream"] for f in frames[1:]}
    assert streams == {"btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@bookTicker"}


def test_ingest_without_a_source_falls_back_to_the_simulator_loudly(
    broker: TansuBroker, tmp_path: Path
) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there: "Binance" is unreachable
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_KAFKA_TOPIC_PREFIX": f"auto{uuid.uuid4().hex[:6]}",
        "BINANCE_REST_URL": f"http://127.0.0.1:{port}",
        "BINANCE_WS_URL": f"ws://127.0.0.1:{port}",
    }
    command = ["ingest", "--symbols", "BTCUSDT", "--duration", "3"]  # no --source: auto
    done = subprocess.run(
        [sys.executable, "-m", "microstream.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Binance is not reachable" in done.stderr
    assert "MARKET SIMULATOR" in done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["source"] == "sim"
    assert summary["events"].get("Trade", 0) > 0
    assert summary["published"] == summary["delivered"] > 0
