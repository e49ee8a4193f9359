"""read_table / scan_table: partitions, filters, order, schemas, errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from microstream.bus.protocol import Row
from microstream.errors import StoreError
from microstream.store.lake import LakeWriter
from microstream.store.reader import read_table, scan_table, to_ns

DAY0 = 1_723_075_200_000_000_000  # 2024-08-08T00:00:00Z
HOUR = 3_600_000_000_000


def regime(ts: int, symbol: str = "BTCUSDT", exchange: str = "binance", **extra: object) -> Row:
    return Row("regimes", exchange, symbol, {"ts": ts, "regime": "neutral", "score": 0.0, **extra})


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    writer = LakeWriter(tmp_path, flush_rows=3)
    # Out of order across files and days, two symbols, two exchanges.
    for hour in (30, 2, 1, 25, 0, 26, 3):
        writer.add(regime(DAY0 + hour * HOUR))
    writer.add(regime(DAY0 + 5 * HOUR, symbol="ETHUSDT"))
    writer.add(regime(DAY0 + 6 * HOUR, exchange="binance-futures"))
    writer.close()
    return tmp_path


def test_read_all_sorted_with_partition_columns(lake: Path) -> None:
    frame = read_table(lake, "regimes")
    assert frame.height == 9
    assert frame["ts"].is_sorted()
    assert frame.schema["exchange"] == pl.String
    assert frame.schema["symbol"] == pl.String
    assert frame.schema["date"] == pl.Date
    assert set(frame["date"]) == {dt.date(2024, 8, 8), dt.date(2024, 8, 9)}


def test_filters_by_exchange_symbol_and_time(lake: Path) -> None:
    btc = read_table(lake, "regimes", exchange="binance", symbol="BTCUSDT")
    assert btc.height == 7 and set(btc["symbol"]) == {"BTCUSDT"}
    window = read_table(lake, "regimes", symbol="BTCUSDT", start=DAY0 + HOUR, end=DAY0 + 26 * HOUR)
    assert [(t - DAY0) // HOUR for t in window["ts"]] == [1, 2, 3, 6, 25]  # both exchanges
    by_datetime = read_table(
        lake, "regimes", start=dt.datetime(2024, 8, 9, 1), end=dt.datetime(2024, 8, 9, 3)
    )
    assert [(t - DAY0) // HOUR for t in by_datetime["ts"]] == [25, 26]
    assert read_table(lake, "regimes", exchange="binance-futures").height == 1


def test_scan_table_is_lazy_and_equal_to_read(lake: Path) -> None:
    lazy = scan_table(lake, "regimes", symbol="BTCUSDT")
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().equals(read_table(lake, "regimes", symbol="BTCUSDT"))


def test_missing_table_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="'trades' does not exist"):
        read_table(tmp_path, "trades")


def test_no_matching_partition_gives_empty_typed_frame(lake: Path) -> None:
    frame = read_table(lake, "regimes", symbol="XRPUSDT")
    assert frame.height == 0
    assert frame.schema["ts"] == pl.Int64 and frame.schema["date"] == pl.Date


def test_files_with_different_columns_are_unified(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path, flush_rows=1)
    writer.add(regime(DAY0))
    writer.add(regime(DAY0 + 1, extra_int=5))
    writer.add(regime(DAY0 + 2, extra_int=None, extra_txt="a"))
    writer.close()
    frame = read_table(tmp_path, "regimes")
    assert frame["extra_int"].to_list() == [None, 5, None]
    assert frame["extra_txt"].to_list() == [None, None, "a"]


def test_to_ns() -> None:
    assert to_ns(dt.date(2024, 8, 8)) == DAY0
    assert to_ns(dt.datetime(2024, 8, 8, 0, 0, 0, 1)) == DAY0 + 1000
    aware = dt.datetime(2024, 8, 8, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert to_ns(aware) == DAY0
    assert to_ns(5) == 5
