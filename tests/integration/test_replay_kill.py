"""A kill -9 during `microstream replay` leaves only complete Parquet files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq


def test_kill_minus_nine_during_replay_leaves_complete_files(
    spot_capture: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "lake"
    env = {**os.environ, "MICROSTREAM_FLUSH_ROWS": "300", "MICROSTREAM_FLUSH_SECONDS": "0.2"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microstream.cli",
            "replay",
            *map(str, spot_capture),
            "--out",
            str(out),
            "--quiet",
            "--speed",
            "20",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(out.glob("*/**/*.parquet"))) < 8:
            assert proc.poll() is None, "replay ended before it could be killed"
            assert time.monotonic() < deadline, "replay wrote no files in time"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    files = list(out.glob("*/**/*.parquet"))
    assert files
    rows = 0
    for path in files:
        assert not path.name.startswith("."), f"temporary file visible: {path}"
        rows += pq.read_table(path).num_rows  # raises on a truncated file
    assert rows > 0
    # The contract's reader pattern sees exactly these files and reads them all.
    for table in {p.relative_to(out).parts[0] for p in files}:
        frame = pl.scan_parquet(str(out / table / "**/*.parquet"), hive_partitioning=True)
        assert frame.select(pl.len()).collect().item() > 0
    trades = pl.read_parquet(str(out / "trades/**/*.parquet"), hive_partitioning=True)
    assert trades["trade_id"].n_unique() == trades.height, "a trade was written twice"
