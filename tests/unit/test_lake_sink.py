"""LakeSink: background writing, bounded queue with drop counting, errors, signals."""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from microstream.bus import MemoryBus, Row, Topics
from microstream.errors import StoreError
from microstream.store import files as lake_files
from microstream.store.lake import LakeWriter
from microstream.store.reader import read_table
from microstream.store.sink import LakeSink, install_flush_on_signal

DAY0 = 1_723_075_200_000_000_000


def row(i: int) -> Row:
    return Row("regimes", "binance", "BTCUSDT", {"ts": DAY0 + i, "regime": "neutral"})


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


class BlockedWriter(LakeWriter):
    """A writer whose ``add`` waits until released (a disk that stalls)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.release = threading.Event()
        self.entered = threading.Event()

    def add(self, row: Row) -> None:
        self.entered.set()
        self.release.wait(10)
        super().add(row)


def test_rows_from_the_bus_reach_the_lake(tmp_path: Path) -> None:
    bus = MemoryBus()
    sink = LakeSink(LakeWriter(tmp_path))
    sink.attach(bus)
    for i in range(100):
        bus.publish(Topics.ROWS, "binance:BTCUSDT", row(i))
    sink.close()
    assert read_table(tmp_path, "regimes")["ts"].to_list() == [DAY0 + i for i in range(100)]
    stats = sink.stats
    assert stats.received == 100 and stats.dropped == 0 and stats.writer.rows_written == 100


def test_full_queue_drops_rows_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = BlockedWriter(tmp_path)
    sink = LakeSink(writer, maxsize=2, put_timeout=0.01)
    assert sink.put(row(0))
    assert writer.entered.wait(5)  # the thread holds row 0, blocked on the "disk"
    with caplog.at_level(logging.WARNING, logger="microstream.store.sink"):
        accepted = [sink.put(row(i)) for i in range(1, 10)]
    assert accepted == [True, True] + [False] * 7
    assert sink.stats.dropped == 7 and sink.stats.queue_depth == 2
    assert any("dropped" in r.getMessage() for r in caplog.records)
    writer.release.set()
    sink.close()
    assert sink.stats.writer.rows_written == 3
    assert sink.stats.received == sink.stats.writer.rows_written + sink.stats.dropped


def test_rows_after_close_are_dropped_not_lost_silently(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path))
    sink.close()
    assert not sink.put(row(0))
    assert sink.stats.dropped == 1


def test_non_rows_are_rejected(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path))
    sink.on_message("k", {"not": "a row"})
    sink.on_message("k", row(0))
    sink.close()
    assert sink.stats.rejected == 1 and sink.stats.writer.rows_written == 1


def test_flush_writes_without_closing(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path, flush_seconds=1e9))
    for i in range(5):
        sink.put(row(i))
    assert sink.flush(timeout=10)
    assert read_table(tmp_path, "regimes").height == 5
    sink.put(row(5))
    sink.close()
    assert read_table(tmp_path, "regimes").height == 6


def test_age_flush_happens_on_the_sink_thread(tmp_path: Path) -> None:
    sink = LakeSink(LakeWriter(tmp_path, flush_seconds=0.05), tick=0.01)
    sink.put(row(0))
    wait_for(lambda: any(tmp_path.rglob("*.parquet")))
    sink.close()


def test_writer_error_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(table: Any, handle: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lake_files, "_write_parquet", full_disk)
    sink = LakeSink(LakeWriter(tmp_path))
    sink.put(row(0))
    sink.flush(timeout=10)
    assert isinstance(sink.error, StoreError)
    assert "No space left" in str(sink.error)
    sink.put(row(1))  # the feed keeps going; the sink keeps counting
    with pytest.raises(StoreError, match="ENOSPC"):
        sink.close()
    assert sink.stats.writer.rows_lost == 2


def test_signal_flushes_then_chains_to_previous_handler(tmp_path: Path) -> None:
    calls: list[int] = []

    def previous(signum: int, frame: types.FrameType | None) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGUSR1, previous)
    sink = LakeSink(LakeWriter(tmp_path, flush_seconds=1e9))
    restore = install_flush_on_signal(sink.flush, signals=(signal.SIGUSR1,))
    try:
        sink.put(row(0))
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_for(lambda: calls == [signal.SIGUSR1])
        assert read_table(tmp_path, "regimes").height == 1
    finally:
        restore()
        assert signal.getsignal(signal.SIGUSR1) is previous
        signal.signal(signal.SIGUSR1, old)
        sink.close()


def test_signal_with_default_handler_exits_after_flush(tmp_path: Path) -> None:
    old = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    sink = LakeSink(LakeWriter(tmp_path, flush_seconds=1e9))
    restore = install_flush_on_signal(sink.flush, signals=(signal.SIGUSR2,))
    try:
        sink.put(row(0))
        with pytest.raises(SystemExit) as info:
            os.kill(os.getpid(), signal.SIGUSR2)
            wait_for(lambda: False, timeout=5)
        assert info.value.code == 128 + signal.SIGUSR2
        assert read_table(tmp_path, "regimes").height == 1
    finally:
        restore()
        signal.signal(signal.SIGUSR2, old)
        sink.close()


def test_blocking_put_applies_back_pressure_without_drops(tmp_path: Path) -> None:
    writer = BlockedWriter(tmp_path)
    sink = LakeSink(writer, maxsize=1, put_timeout=None)
    done = threading.Event()

    def produce() -> None:
        for i in range(20):
            sink.put(row(i))
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert writer.entered.wait(5)
    assert not done.wait(0.2)  # the producer waits for the stalled disk
    writer.release.set()
    assert done.wait(10)
    producer.join()
    sink.close()
    assert sink.stats.dropped == 0 and sink.stats.writer.rows_written == 20


def test_unexpected_writer_exception_is_kept_not_fatal(tmp_path: Path) -> None:
    class Broken(LakeWriter):
        def add(self, row: Row) -> None:
            raise RuntimeError("bug in the writer")

    sink = LakeSink(Broken(tmp_path))
    sink.put(row(0))
    sink.put(row(1))
    assert sink.flush(timeout=10)  # the thread survived both rows
    with pytest.raises(StoreError, match="bug in the writer"):
        sink.close()
