"""LakeWriter: layout, round trip, flush by rows and age, atomicity, full disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from microstream.bus.protocol import Row
from microstream.errors import StoreError
from microstream.events import BookTop, SyncStateChange, Trade
from microstream.store import files as lake_files
from microstream.store.lake import LakeWriter
from microstream.store.rows import book_sync_row, book_top_row, trade_row
from microstream.store.schema import get_table

DAY0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z in ns
SECOND = 1_000_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trade(i: int, ts: int | None = None, symbol: str = "BTCUSDT") -> Row:
    t = Trade(
        exchange="binance",
        symbol=symbol,
        ts_event=DAY0 + i * SECOND if ts is None else ts,
        ts_recv=DAY0 + i * SECOND + 5,
        trade_id=i,
        price=60_000.0 + i,
        qty=0.5,
        side="buy" if i % 2 else "sell",
    )
    return trade_row(t)


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def scan(root: Path, table: str) -> pl.DataFrame:
    return pl.scan_parquet(str(root / table / "**" / "*.parquet"), hive_partitioning=True).collect()


def test_trades_round_trip_through_contract_glob(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    for i in range(10):
        writer.add(trade(i))
    writer.close()
    frame = scan(tmp_path, "trades").sort("ts_event")
    assert frame["trade_id"].to_list() == list(range(10))
    assert frame["price"].dtype == pl.Float64
    assert frame["ts_event"].dtype == pl.Int64
    assert set(frame["exchange"]) == {"binance"}
    assert set(frame["symbol"]) == {"BTCUSDT"}
    assert frame["date"].cast(pl.String).unique().to_list() == ["2024-08-08"]
    assert frame["side"].to_list()[:2] == ["sell", "buy"]
    assert writer.stats.rows_written == 10 and writer.stats.files_written == 1


def test_layout_and_partition_keys_not_stored(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path, writer_id="w1")
    writer.add(trade(0))
    writer.add(trade(1, ts=DAY0 + 86_400 * SECOND))  # next UTC day
    writer.add(trade(2, symbol="ETHUSDT"))
    writer.close()
    rel = [p.relative_to(tmp_path).parent.as_posix() for p in parquet_files(tmp_path)]
    assert rel == [
        "trades/exchange=binance/symbol=BTCUSDT/date=2024-08-08",
        "trades/exchange=binance/symbol=BTCUSDT/date=2024-08-09",
        "trades/exchange=binance/symbol=ETHUSDT/date=2024-08-08",
    ]
    for path in parquet_files(tmp_path):
        names = pq.read_schema(path).names
        assert "exchange" not in names and "symbol" not in names and "date" not in names
        assert path.name.startswith("part-") and path.name.endswith("-w1.parquet")


def test_every_table_round_trips(tmp_path: Path) -> None:
    top = BookTop(
        exchange="binance-futures",
        symbol="BTCUSDT",
        ts_event=DAY0,
        ts_recv=DAY0 + 7,
        update_id=42,
        bid_px=(100.0, 99.0, None, None, None),
        bid_qty=(1.0, 2.0, None, None, None),
        ask_px=(101.0,),
        ask_qty=(3.0,),
        book_valid=True,
        sync_epoch=2,
    )
    sync = SyncStateChange("binance", "BTCUSDT", DAY0, "synced", "snapshot 42", update_id=42)
    writer = LakeWriter(tmp_path)
    writer.add(book_top_row(top))
    writer.add(book_sync_row(sync, simulated=True))
    writer.add(Row("bars_1m", "binance", "BTCUSDT", {"ts": DAY0, "open": 1.0, "trades": 3}))
    writer.add(Row("regimes", "binance", "BTCUSDT", {"ts": DAY0, "regime": "bullish"}))
    writer.add(Row("signals_1m", "binance", "BTCUSDT", {"ts": DAY0, "anomaly": True}))
    writer.add(Row("predictions", "binance", "BTCUSDT", {"ts": DAY0, "p_up": 0.4}))
    writer.add(Row("sim_truth", "sim", "BTCUSDT", {"ts": DAY0, "regime": "neutral"}))
    writer.add(Row("features", "binance", "BTCUSDT", {"ts": DAY0, "mid": 100.5}))
    writer.close()
    book = scan(tmp_path, "book_top").row(0, named=True)
    assert book["bid_px_2"] == 99.0 and book["bid_px_3"] is None and book["ask_px_2"] is None
    assert book["book_valid"] is True and book["sync_epoch"] == 2
    assert book["exchange"] == "binance-futures"
    sync_row = scan(tmp_path, "book_sync").row(0, named=True)
    assert sync_row["state"] == "synced" and sync_row["update_id"] == 42
    assert sync_row["simulated"] is True
    for table in ("bars_1m", "regimes", "signals_1m", "predictions", "sim_truth", "features"):
        frame = scan(tmp_path, table)
        spec = get_table(table)
        assert spec is not None
        assert frame.height == 1
        assert list(frame.columns[: len(spec.columns)]) == list(spec.columns)


def test_flush_by_rows(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path, flush_rows=4, flush_seconds=1e9)
    for i in range(10):
        writer.add(trade(i))
    assert len(parquet_files(tmp_path)) == 2
    assert writer.stats.rows_buffered == 2
    writer.close()
    sizes = [pq.read_metadata(p).num_rows for p in parquet_files(tmp_path)]
    assert sizes == [4, 4, 2]


def test_flush_by_age_on_add_and_on_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = LakeWriter(tmp_path, flush_rows=1000, flush_seconds=5.0, clock=clock)
    writer.add(trade(0))
    clock.now += 4.9
    writer.add(trade(1))
    assert parquet_files(tmp_path) == []
    clock.now += 0.2
    writer.add(trade(2))  # the buffer is now 5.1 s old: flushed on add
    assert [pq.read_metadata(p).num_rows for p in parquet_files(tmp_path)] == [3]
    writer.add(trade(3))
    assert writer.flush_due(clock.now + 1.0) == 0
    assert writer.flush_due(clock.now + 5.0) == 1
    assert writer.stats.rows_buffered == 0
    assert len(parquet_files(tmp_path)) == 2


def test_file_names_sort_by_time_and_writers_never_collide(tmp_path: Path) -> None:
    a = LakeWriter(tmp_path, flush_rows=2)
    b = LakeWriter(tmp_path, flush_rows=2)
    for i in range(4):
        a.add(trade(i))
        b.add(trade(i))
    a.close()
    b.close()
    names = [p.name for p in parquet_files(tmp_path)]
    assert len(names) == 4 and len(set(names)) == 4
    firsts = [int(n.split("-")[1]) for n in names]
    assert firsts == sorted(firsts)
    assert scan(tmp_path, "trades").height == 8


def test_bad_rows_are_counted_and_skipped(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    writer.add(trade(0))
    writer.add(Row("trades", "binance", "BTCUSDT", {"price": 1.0}))  # no time
    writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": "x"}))  # not an int
    writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0, "price": "abc"}))
    writer.add(trade(1))
    writer.close()
    assert writer.stats.rows_rejected == 3
    assert writer.stats.rows_written == 2
    assert scan(tmp_path, "trades")["trade_id"].to_list() == [0, 1]


def test_undeclared_columns_and_tables_are_kept(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    writer.add(Row("features", "binance", "BTCUSDT", {"ts": DAY0, "mid": 1.0}))
    writer.add(Row("features", "binance", "BTCUSDT", {"ts": DAY0 + 1, "my_feature": 2.5}))
    writer.add(Row("custom_table", "binance", "BTCUSDT", {"ts": DAY0, "v": 1}))
    writer.close()
    frame = scan(tmp_path, "features").sort("ts")
    assert frame["my_feature"].to_list() == [None, 2.5]
    assert frame["mid"].to_list() == [1.0, None]
    assert scan(tmp_path, "custom_table")["v"].to_list() == [1]


def test_numpy_integer_time_is_accepted(tmp_path: Path) -> None:
    import numpy as np

    writer = LakeWriter(tmp_path)
    writer.add(Row("regimes", "binance", "BTCUSDT", {"ts": np.int64(DAY0), "regime": "bearish"}))
    writer.close()
    assert scan(tmp_path, "regimes")["ts"].to_list() == [DAY0]


def test_no_temp_file_matched_by_the_contract_glob(tmp_path: Path) -> None:
    directory = tmp_path / "trades" / "exchange=binance" / "symbol=BTCUSDT" / "date=2024-08-08"
    directory.mkdir(parents=True)
    (directory / ".part-x.parquet.tmp").write_bytes(b"half a file")
    writer = LakeWriter(tmp_path)
    writer.add(trade(0))
    writer.close()
    assert scan(tmp_path, "trades").height == 1
    assert all(pq.read_table(p).num_rows >= 1 for p in parquet_files(tmp_path))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_full_disk_raises_store_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def half_write(table: Any, handle: Any) -> None:
        handle.write(b"PAR1 partial")
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(lake_files, "_write_parquet", half_write)
    writer = LakeWriter(tmp_path, flush_rows=2)
    writer.add(trade(0))
    with pytest.raises(StoreError, match=r"trades/exchange=binance.*part-.*\.parquet") as info:
        writer.add(trade(1))
    assert errno.errorcode[code] in str(info.value)
    assert list(tmp_path.rglob("*.parquet*")) == []  # no data file, no temp file left
    stats = writer.stats
    assert stats.errors == 1 and stats.rows_lost == 2 and stats.rows_written == 0


def test_failing_rename_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_rename(src: Any, dst: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lake_files.os, "replace", no_rename)
    writer = LakeWriter(tmp_path)
    writer.add(trade(0))
    with pytest.raises(StoreError, match="Read-only"):
        writer.close()
    assert list(tmp_path.rglob("*.parquet*")) == []


def test_unwritable_directory_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    writer = LakeWriter(tmp_path / "lake")
    monkeypatch.setattr(Path, "mkdir", denied)
    writer.add(trade(0))
    with pytest.raises(StoreError, match=r"create directory .*lake/trades.*EACCES"):
        writer.close()


def test_an_unwritable_lake_is_refused_when_the_writer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(self: Path, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", denied)
    with pytest.raises(StoreError, match=r"create lake directory .*lake.*EACCES"):
        LakeWriter(tmp_path / "lake")


def test_a_lake_path_that_is_a_file_is_refused_when_the_writer_starts(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a directory")
    with pytest.raises(StoreError, match=r"lake"):
        LakeWriter(tmp_path / "lake")


def test_a_lake_in_which_no_file_can_be_created_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def read_only(path: Any, flags: int, *args: Any) -> int:
        if "write-probe" in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(StoreError, match=r"write in lake directory .*EROFS"):
        LakeWriter(tmp_path / "lake")
    assert not list((tmp_path / "lake").iterdir())  # the probe left nothing behind


def test_closed_writer_refuses_rows(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    writer.close()
    with pytest.raises(StoreError, match="closed"):
        writer.add(trade(0))


def test_float_in_an_int_column_is_rejected_not_truncated(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0, "trade_id": 1.5}))
    writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0 + 1, "trade_id": 2}))
    writer.add(Row("trades", "binance", "BTCUSDT", {"ts_event": DAY0 + 2, "side": 7}))
    writer.close()
    assert scan(tmp_path, "trades")["trade_id"].to_list() == [2]
    assert writer.stats.rows_rejected == 2


def test_rows_to_table_orders_declared_columns_then_extras() -> None:
    from microstream.store.arrow import rows_to_table

    spec = get_table("bars_1m")
    assert spec is not None
    rows = [{"ts": 1, "close": 2.0, "zz": "a"}, {"trades": 3, "ts": 2, "open": 1}]
    table, dropped, reason = rows_to_table(rows, spec.schema, ["zz"])
    assert (dropped, reason) == (0, "")
    assert table.column_names == [*spec.columns, "zz"]
    assert table.column("open").to_pylist() == [None, 1.0]
    assert table.column("trades").to_pylist() == [None, 3]
    assert table.column("zz").to_pylist() == ["a", None]


def test_a_failed_file_among_several_loses_only_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several partitions flush at once (written in parallel): one full-disk
    failure loses that file's rows only, the others are written, the counters add up."""
    real = lake_files._write_parquet

    def fail_for_eth(table: Any, handle: Any) -> None:
        if "ETHUSDT" in handle.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(table, handle)

    monkeypatch.setattr(lake_files, "_write_parquet", fail_for_eth)
    writer = LakeWriter(tmp_path, flush_rows=1000)
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        for i in range(3):
            writer.add(trade(i, symbol=symbol))
    with pytest.raises(StoreError, match="ETHUSDT"):
        writer.close()
    stats = writer.stats
    assert stats.files_written == 2 and stats.rows_written == 6
    assert stats.errors == 1 and stats.rows_lost == 3 and stats.rows_buffered == 0
    assert sorted(scan(tmp_path, "trades")["symbol"].unique().to_list()) == ["BTCUSDT", "SOLUSDT"]
    assert list(tmp_path.rglob("*.tmp")) == []
