"""`microstream run --bus kafka`: ingest and engine services over a real Kafka-protocol broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from kafka_broker import TansuBroker, free_port


def health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except OSError:
        return None


@pytest.mark.kafka
def test_run_over_kafka_with_the_simulator(broker: TansuBroker, tmp_path: Path) -> None:
    api_port = free_port()
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "MICROSTREAM_FLUSH_SECONDS": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microstream.cli",
            "run",
            "--bus",
            "kafka",
            "--source",
            "sim",
            "--no-dashboard",
            "--duration",
            "150",
            "--data-dir",
            str(lake),
            "--api-port",
            str(api_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 140
        synced = False
        while time.monotonic() < deadline and not synced:
            h = health(api_port)
            books = [s.get("book_valid") for s in (h or {}).get("symbols", {}).values()]
            synced = bool(books) and all(books)
            time.sleep(1)
        assert synced, "the engine never reported a synced book over Kafka"
        proc.send_signal(2)  # SIGINT: a clean stop of both services
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    trades = pl.read_parquet(str(lake / "trades/**/*.parquet"), hive_partitioning=True)
    assert trades.height > 0
    assert trades["trade_id"].n_unique() == trades.height
    assert trades["simulated"].all()
