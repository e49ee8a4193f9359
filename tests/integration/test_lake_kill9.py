"""Kill -9 at random moments: the lake never shows a partial file or a row twice."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from microstream.bus.protocol import Row
from microstream.store.compact import compact_partition
from microstream.store.lake import LakeWriter
from microstream.store.reader import read_table

DAY0 = 1_723_075_200_000_000_000
FLUSH_ROWS = 37

WRITER_SCRIPT = """
import sys
from microstream.bus.protocol import Row
from microstream.store.lake import LakeWriter

writer = LakeWriter(sys.argv[1], flush_rows=int(sys.argv[2]), flush_seconds=1e9)
i = 0
while True:
    ts = int(sys.argv[3]) + i
    values = {"ts_event": ts, "ts_recv": ts, "trade_id": i, "price": 1.0 + i, "qty": 0.1,
              "side": "buy"}
    writer.add(Row("trades", "binance", "BTCUSDT", values))
    i += 1
"""

COMPACT_SCRIPT = """
import sys, time
from microstream.store import compact

real_delete = compact._delete

def slow_delete(directory, names):  # a slow disk: the delete phase lasts a while
    if names:
        print("deleting", flush=True)
    for name in names:
        real_delete(directory, [name])
        time.sleep(0.01)

compact._delete = slow_delete
print("start", flush=True)
compact.compact_lake(sys.argv[1])
"""


def partition(root: Path) -> Path:
    return root / "trades" / "exchange=binance" / "symbol=BTCUSDT" / "date=2024-08-08"


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def assert_every_file_complete(root: Path) -> None:
    for path in root.rglob("*.parquet"):
        table = pq.read_table(path)  # raises on a truncated or partial file
        assert table.num_rows == pq.read_metadata(path).num_rows > 0


def assert_prefix(ids: list[int]) -> None:
    assert sorted(ids) == list(range(len(ids))), "rows missing or duplicated"


def test_writer_killed_mid_stream_leaves_complete_prefix(tmp_path: Path) -> None:
    rng = random.Random(20240808)
    for attempt in range(2):
        root = tmp_path / f"lake{attempt}"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(root), str(FLUSH_ROWS), str(DAY0)]
        )
        try:
            wait_for(lambda root=root: len(list(root.rglob("*.parquet"))) >= 3)
            time.sleep(rng.uniform(0.0, 0.3))
        finally:
            kill(writer)
        assert_every_file_complete(root)
        glob = str(root / "trades" / "**" / "*.parquet")
        ids = pl.scan_parquet(glob, hive_partitioning=True).collect()["trade_id"].to_list()
        assert len(ids) % FLUSH_ROWS == 0 and len(ids) >= 3 * FLUSH_ROWS
        assert_prefix(ids)
        hidden = [p.name for p in partition(root).iterdir() if p.name.startswith(".")]
        assert all(name.endswith(".parquet.tmp") for name in hidden)


def test_concurrent_compaction_and_reads_while_writer_runs_then_dies(tmp_path: Path) -> None:
    """A writer process, a compacting thread and a reader run at the same time."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(tmp_path), "11", str(DAY0)])
    stop = threading.Event()
    compactions: list[int] = []

    def compact_loop() -> None:
        while not stop.is_set():
            compactions.append(compact_partition(partition(tmp_path), "trades").files_in)

    try:
        wait_for(lambda: len(list(tmp_path.rglob("*.parquet"))) >= 2)
        compactor = threading.Thread(target=compact_loop)
        compactor.start()
        lengths = []
        for _ in range(25):
            ids = read_table(tmp_path, "trades")["trade_id"].to_list()
            assert_prefix(ids)
            assert ids == sorted(ids)
            lengths.append(len(ids))
        stop.set()
        compactor.join(timeout=60)
    finally:
        stop.set()
        kill(writer)
    assert lengths == sorted(lengths)  # a later read never sees fewer rows
    assert sum(1 for n in compactions if n) >= 2
    assert_every_file_complete(tmp_path)
    before = read_table(tmp_path, "trades")["trade_id"].to_list()
    assert_prefix(before)
    compact_partition(partition(tmp_path), "trades")
    assert read_table(tmp_path, "trades")["trade_id"].to_list() == before
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 1


def add_small_files(root: Path, first: int, count: int) -> None:
    writer = LakeWriter(root, flush_rows=8)
    for i in range(first, first + count):
        writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0 + i, "trade_id": i}))
    writer.close()


def test_compaction_killed_at_random_moments(tmp_path: Path) -> None:
    rng = random.Random(7)
    total = 400  # 50 small files
    add_small_files(tmp_path, 0, total)
    # Killed while merging (after "start") or while deleting the sources.
    for phase in (b"start", b"deleting", b"deleting", b"start"):
        process = subprocess.Popen(
            [sys.executable, "-c", COMPACT_SCRIPT, str(tmp_path)],
            stdout=subprocess.PIPE,
        )
        assert process.stdout is not None
        while (line := process.stdout.readline().strip()) != phase:
            assert line, "compaction ended before the phase to kill"
        time.sleep(rng.uniform(0.0, 0.3))
        kill(process)
        assert_every_file_complete(tmp_path)
        assert read_table(tmp_path, "trades")["trade_id"].to_list() == list(range(total))
        add_small_files(tmp_path, total, 80)  # more small files for the next round
        total += 80
    compact_partition(partition(tmp_path), "trades")
    assert read_table(tmp_path, "trades")["trade_id"].to_list() == list(range(total))
    assert len(list(partition(tmp_path).glob("*.parquet"))) == 1
