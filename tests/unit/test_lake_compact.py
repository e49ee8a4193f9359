"""Compaction: merging, crash safety at every step, the ``compact`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from microstream import cli
from microstream.bus.protocol import Row
from microstream.errors import StoreError
from microstream.store import compact as compact_mod
from microstream.store import files as lake_files
from microstream.store.compact import compact_lake, compact_partition
from microstream.store.lake import LakeWriter
from microstream.store.reader import list_table_files, read_table

DAY0 = 1_723_075_200_000_000_000
SECOND = 1_000_000_000


def trade(i: int) -> Row:
    values = {"ts_event": DAY0 + i * SECOND, "ts_recv": DAY0, "trade_id": i, "price": 1.0}
    return Row("trades", "binance", "BTCUSDT", values)


def write_trades(root: Path, ids: list[int], flush_rows: int = 3) -> None:
    writer = LakeWriter(root, flush_rows=flush_rows)
    for i in ids:
        writer.add(trade(i))
    writer.close()


def partition(root: Path) -> Path:
    return root / "trades" / "exchange=binance" / "symbol=BTCUSDT" / "date=2024-08-08"


def data_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.parquet"))


def ids(root: Path) -> list[int]:
    return list(read_table(root, "trades")["trade_id"])


def test_compaction_merges_and_sorts(tmp_path: Path) -> None:
    write_trades(tmp_path, [5, 4, 3, 9, 8, 7, 0, 1, 2, 6])
    sources = data_files(partition(tmp_path))
    assert len(sources) == 4
    result = compact_partition(partition(tmp_path), "trades")
    assert result.files_in == 4 and result.rows == 10
    names = data_files(partition(tmp_path))
    assert names == [result.output]
    merged = pq.read_table(partition(tmp_path) / names[0])
    assert merged.column("trade_id").to_pylist() == list(range(10))  # sorted by ts_event
    meta = pq.read_schema(partition(tmp_path) / names[0]).metadata
    assert json.loads(meta[b"microstream.replaces"]) == sources
    assert ids(tmp_path) == list(range(10))


def test_compacting_again_includes_the_previous_compacted_file(tmp_path: Path) -> None:
    write_trades(tmp_path, [0, 1, 2, 3])
    compact_partition(partition(tmp_path), "trades")
    write_trades(tmp_path, [4, 5])
    result = compact_partition(partition(tmp_path), "trades")
    assert result.files_in == 2 and result.rows == 6
    assert len(data_files(partition(tmp_path))) == 1
    assert ids(tmp_path) == list(range(6))


def test_single_file_partition_is_left_alone(tmp_path: Path) -> None:
    write_trades(tmp_path, [0, 1], flush_rows=10)
    before = data_files(partition(tmp_path))
    result = compact_partition(partition(tmp_path), "trades")
    assert result.output is None and data_files(partition(tmp_path)) == before


def test_crash_after_merged_file_before_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between writing the merged file and deleting its sources."""
    write_trades(tmp_path, list(range(10)))
    real_delete = compact_mod._delete

    def crash(directory: Path, names: list[str]) -> None:
        if names:
            raise KeyboardInterrupt("simulated crash")
        real_delete(directory, names)

    monkeypatch.setattr(compact_mod, "_delete", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_partition(partition(tmp_path), "trades")
    on_disk = data_files(partition(tmp_path))
    assert len(on_disk) == 5  # 4 sources + the merged file, all present
    assert ids(tmp_path) == list(range(10))  # each row exactly once
    assert [p.name for p in list_table_files(tmp_path, "trades")] == [
        n for n in on_disk if n.startswith("compact-")
    ]
    monkeypatch.setattr(compact_mod, "_delete", real_delete)
    result = compact_partition(partition(tmp_path), "trades")
    assert result.cleaned == 4 and result.output is None
    assert len(data_files(partition(tmp_path))) == 1
    assert ids(tmp_path) == list(range(10))


def test_crash_halfway_through_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_trades(tmp_path, list(range(10)))
    real_delete = compact_mod._delete

    def partial(directory: Path, names: list[str]) -> None:
        real_delete(directory, names[:2])
        if names:
            raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(compact_mod, "_delete", partial)
    with pytest.raises(KeyboardInterrupt):
        compact_partition(partition(tmp_path), "trades")
    assert ids(tmp_path) == list(range(10))
    write_trades(tmp_path, [10, 11])  # new rows written after the crash stay visible
    assert ids(tmp_path) == list(range(12))
    monkeypatch.setattr(compact_mod, "_delete", real_delete)
    compact_partition(partition(tmp_path), "trades")
    assert ids(tmp_path) == list(range(12))
    assert len(data_files(partition(tmp_path))) == 1


def test_failed_merge_write_leaves_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_trades(tmp_path, list(range(6)))
    before = data_files(partition(tmp_path))

    def full_disk(table: Any, handle: Any) -> None:
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lake_files, "_write_parquet", full_disk)
    with pytest.raises(StoreError, match=r"compact-.*No space left"):
        compact_partition(partition(tmp_path), "trades")
    assert data_files(partition(tmp_path)) == before
    assert [p.name for p in partition(tmp_path).iterdir() if p.name.endswith(".tmp")] == []
    assert ids(tmp_path) == list(range(6))


def test_compact_lake_all_tables(tmp_path: Path) -> None:
    write_trades(tmp_path, list(range(6)))
    writer = LakeWriter(tmp_path, flush_rows=1)
    for i in range(3):
        writer.add(Row("regimes", "binance", "ETHUSDT", {"ts": DAY0 + i, "regime": "bullish"}))
    writer.close()
    results = compact_lake(tmp_path)
    assert sorted(r.rows for r in results) == [3, 6]
    assert read_table(tmp_path, "regimes")["ts"].to_list() == [DAY0, DAY0 + 1, DAY0 + 2]


def test_compact_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_trades(tmp_path, list(range(7)))
    assert cli.main(["compact", "--lake", str(tmp_path), "--table", "trades"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"partitions": 1, "compacted": 1, "files_in": 3, "rows": 7, "cleaned": 0}
    assert ids(tmp_path) == list(range(7))


def test_compact_command_missing_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compact", "--lake", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_readers_wait_while_a_swap_is_published(tmp_path: Path) -> None:
    import threading

    from microstream.store.files import publish_lock

    write_trades(tmp_path, list(range(6)))
    got: list[list[int]] = []
    with publish_lock(partition(tmp_path)):
        reader = threading.Thread(target=lambda: got.append(ids(tmp_path)))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive()  # listing waits for the swap to finish
    reader.join(10)
    assert got == [list(range(6))]
    assert [p.name for p in partition(tmp_path).iterdir() if p.name.startswith(".")] == [
        ".publish.lock"
    ]


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import os
    import time

    write_trades(tmp_path, [0, 1], flush_rows=10)
    stale = partition(tmp_path) / ".part-0-1-dead.parquet.tmp"
    fresh = partition(tmp_path) / ".part-0-2-live.parquet.tmp"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    result = compact_partition(partition(tmp_path), "trades")
    assert result.cleaned == 1
    assert not stale.exists() and fresh.exists()
