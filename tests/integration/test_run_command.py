"""`microstream run`: the simulator end to end, and the auto source's fallback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import polars as pl

TABLES = ("trades", "book_top", "book_sync", "features", "regimes", "predictions", "sim_truth")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_auto_falls_back_to_the_simulator_loudly(tmp_path: Path) -> None:
    api_port = free_port()
    dead = free_port()  # nothing listens here: "Binance" is unreachable
    env = {
        **os.environ,
        "BINANCE_REST_URL": f"http://127.0.0.1:{dead}",
        "BINANCE_WS_URL": f"ws://127.0.0.1:{dead}",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microstream.cli",
            "run",
            "--no-dashboard",
            "--duration",
            "40",
            "--data-dir",
            str(tmp_path / "lake"),
            "--api-port",
            str(api_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        api = f"http://127.0.0.1:{api_port}"

        def synced() -> Any:
            health = get_json(api + "/health")
            books = [s.get("book_valid") for s in health.get("symbols", {}).values()]
            return health if books and all(books) else None

        health = wait_for(synced, 90, "a synced simulated book")
        assert health["simulated"] is True
        assert health["source"] == "sim"
        assert health["feed"]["connected"] is True
        state = get_json(api + "/api/v1/symbols")
        assert state, "no symbol listed by the API"
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "Binance is not reachable" in stderr
    assert "SIMULATED DATA" in stderr

    lake = tmp_path / "lake"
    for table in TABLES:
        frame = pl.read_parquet(str(lake / table / "**/*.parquet"), hive_partitioning=True)
        assert frame.height > 0, f"{table} is empty"
        assert frame["simulated"].fill_null(False).all(), f"{table} rows not marked simulated"
    sync = pl.read_parquet(str(lake / "book_sync/**/*.parquet"), hive_partitioning=True)
    assert "synced" in sync["state"].to_list()
    features = pl.read_parquet(str(lake / "features/**/*.parquet"), hive_partitioning=True)
    assert features["book_valid"].any()
    assert features.filter(pl.col("book_valid"))["mid"].null_count() == 0
