"""Binance archive import: formats, units, zip/csv, headers, bars, lake round trip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from conftest import require_shared
from microstream.archive import detect_format, import_archives, sniff
from microstream.archive.bars import BarAccumulator, merge_partials, partial_bars
from microstream.cli import main
from microstream.errors import ArchiveError

T0_MS = 1_704_067_200_000  # 2024-01-01 00:00:00 UTC
MIN_MS = 60_000
AGG_HEADER = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
    "is_buyer_maker,is_best_match"
)
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)

# (agg id, price, qty, first id, last id, ms offset, buyer is maker)
AGG_ROWS = [
    (1, 100.0, 1.0, 10, 12, 1_000, False),  # minute 0: buy, 3 trades
    (2, 102.0, 2.0, 13, 13, 20_000, True),  # sell
    (3, 99.0, 0.5, 14, 15, 59_999, False),  # buy
    (4, 101.0, 1.5, 16, 16, 60_000, True),  # minute 1: sell
    (5, 103.0, 1.0, 17, 19, 150_000, False),  # minute 2
]


def agg_lines(unit: str = "ms", best_match: bool = True) -> list[str]:
    scale = 1000 if unit == "us" else 1
    lines = []
    for aid, px, qty, first, last, off, maker in AGG_ROWS:
        fields = [aid, px, qty, first, last, (T0_MS + off) * scale, maker]
        if best_match:
            fields.append(True)
        lines.append(",".join(str(f) for f in fields))
    return lines


def write(path: Path, lines: list[str], header: str | None = None, zipped: bool = False) -> Path:
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if zipped:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text)
    return path


def read_table(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(str(lake / table / "**/*.parquet"), hive_partitioning=True).sort(
        "ts" if table != "trades" else "ts_event"
    )


EXPECTED_BARS = [
    # ts offset, open, high, low, close, volume, buy, sell, vwap, trades
    (0, 100.0, 102.0, 99.0, 99.0, 3.5, 1.5, 2.0, (100 + 204 + 49.5) / 3.5, 6),
    (MIN_MS, 101.0, 101.0, 101.0, 101.0, 1.5, 0.0, 1.5, 101.0, 1),
    (2 * MIN_MS, 103.0, 103.0, 103.0, 103.0, 1.0, 1.0, 0.0, 103.0, 3),
]


def check_bars(bars: pl.DataFrame) -> None:
    assert bars.height == 3
    for row, exp in zip(bars.iter_rows(named=True), EXPECTED_BARS, strict=True):
        assert row["ts"] == (T0_MS + exp[0]) * 1_000_000
        got = [row[c] for c in ("open", "high", "low", "close", "volume")]
        assert got == pytest.approx(list(exp[1:6]))
        assert row["buy_volume"] == pytest.approx(exp[6])
        assert row["sell_volume"] == pytest.approx(exp[7])
        assert row["vwap"] == pytest.approx(exp[8])
        assert row["trades"] == exp[9]


@pytest.mark.parametrize(
    ("unit", "header", "zipped", "best_match"),
    [
        ("ms", False, True, True),  # spot daily zip before 2025
        ("us", False, True, True),  # spot 2025+: microseconds
        ("ms", True, False, False),  # USD-M futures: header, 7 columns
        ("us", True, True, True),
    ],
)
def test_agg_trades_import_round_trip(
    tmp_path: Path, unit: str, header: bool, zipped: bool, best_match: bool
) -> None:
    name = "BTCUSDT-aggTrades-2024-01-01" + (".zip" if zipped else ".csv")
    head = AGG_HEADER if header else None
    if header and not best_match:
        head = AGG_HEADER.rsplit(",", 1)[0]
    path = write(tmp_path / name, agg_lines(unit, best_match), head, zipped)
    lake = tmp_path / "lake"
    result = import_archives([path], lake, "btcusdt", "usdm" if not best_match else "spot")
    assert result.trades == 5 and result.bars == 3
    trades = read_table(lake, "trades")
    assert trades["ts_event"].to_list() == [(T0_MS + r[5]) * 1_000_000 for r in AGG_ROWS]
    assert trades["side"].to_list() == ["buy", "sell", "buy", "sell", "buy"]
    assert trades["is_aggregate"].all()
    assert trades["ts_recv"].null_count() == 5
    assert trades["trade_id"].to_list() == [1, 2, 3, 4, 5]
    assert trades["first_trade_id"].to_list() == [10, 13, 14, 16, 17]
    assert trades["symbol"].unique().to_list() == ["BTCUSDT"]
    exchange = "binance-futures" if not best_match else "binance"
    assert trades["exchange"].unique().to_list() == [exchange]
    assert trades["date"].cast(pl.Utf8).unique().to_list() == ["2024-01-01"]
    check_bars(read_table(lake, "bars_1m"))


def kline_lines(unit: str = "ms") -> list[str]:
    scale = 1000 if unit == "us" else 1
    lines = []
    for i, (o, h, lo, c, v, qv, n, tb) in enumerate(
        [
            (100, 102, 99, 101, 4.0, 402.0, 7, 3.0),
            (101, 101.5, 100, 100.5, 2.0, 201.0, 3, 0.5),
            (100.5, 100.5, 100.5, 100.5, 0.0, 0.0, 0, 0.0),
        ]
    ):
        open_time = (T0_MS + i * MIN_MS) * scale
        close_time = (T0_MS + (i + 1) * MIN_MS - 1) * scale + (999 if unit == "us" else 0)
        fields = [open_time, o, h, lo, c, v, close_time, qv, n, tb, tb * c, 0]
        lines.append(",".join(str(f) for f in fields))
    return lines


@pytest.mark.parametrize(("unit", "header", "zipped"), [("ms", False, True), ("us", True, False)])
def test_klines_import_round_trip(tmp_path: Path, unit: str, header: bool, zipped: bool) -> None:
    name = "BTCUSDT-1m-2024-01-01" + (".zip" if zipped else ".csv")
    path = write(tmp_path / name, kline_lines(unit), KLINE_HEADER if header else None, zipped)
    lake = tmp_path / "lake"
    result = import_archives([path], lake, "BTCUSDT", "spot")
    assert result.bars == 3 and result.trades == 0
    bars = read_table(lake, "bars_1m")
    assert bars["ts"].to_list() == [(T0_MS + i * MIN_MS) * 1_000_000 for i in range(3)]
    first = bars.row(0, named=True)
    assert first["buy_volume"] == 3.0 and first["sell_volume"] == 1.0
    assert first["vwap"] == pytest.approx(100.5) and first["trades"] == 7
    assert bars["vwap"][2] is None  # no volume, no vwap
    assert not (lake / "trades").exists()


def test_klines_of_another_interval_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "BTCUSDT-5m-2024-01-01.csv", kline_lines())
    with pytest.raises(ArchiveError, match="1m"):
        import_archives([path], tmp_path / "lake", "BTCUSDT")
    # without the interval in the name, the close time gives it away
    lines = [
        line.replace(str(T0_MS + MIN_MS - 1), str(T0_MS + 5 * MIN_MS - 1)) for line in kline_lines()
    ]
    path = write(tmp_path / "klines.csv", lines[:1])
    with pytest.raises(ArchiveError, match="1-minute"):
        import_archives([path], tmp_path / "lake2", "BTCUSDT")


def test_malformed_rows_are_counted_and_skipped(tmp_path: Path) -> None:
    lines = agg_lines()
    lines.insert(1, "7,abc,1.0,1,1,1704067201000,False,True")  # price not a number
    lines.insert(2, "8,100.0,1.0,1,1")  # too few fields
    lines.insert(3, "9,-5,1.0,1,1,1704067201000,False,True")  # negative price
    path = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv", lines)
    result = import_archives([path], tmp_path / "lake", "BTCUSDT")
    assert result.trades == 5
    assert result.files[0].rejected == 3
    check_bars(read_table(tmp_path / "lake", "bars_1m"))


def test_format_detection() -> None:
    assert detect_format("x.csv", ",".join(["1"] * 12)).kind == "klines"
    assert detect_format("x.csv", "1,2,3,4,5,6,True,True").kind == "aggTrades"
    assert detect_format("x.csv", "1,2,3,4,5,6,false").kind == "aggTrades"
    assert detect_format("x.csv", "1,2.0,3,4.5,1700000000000,True,True").kind == "trades"
    assert detect_format("x.csv", "1,2.0,3,4.5,1700000000000,true").kind == "trades"
    fmt = detect_format("BTCUSDT-1m-2024-01.zip", KLINE_HEADER)
    assert (fmt.kind, fmt.header, fmt.interval) == ("klines", True, "1m")
    tardis = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount"
    assert detect_format("t.csv", tardis).kind == "tardis_trades"
    with pytest.raises(ArchiveError):
        detect_format("x.csv", "1,2,3")


def test_unreadable_files_raise_archive_errors(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError):
        sniff(tmp_path / "missing.csv")
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ArchiveError):
        sniff(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ArchiveError):
        sniff(empty)


def test_bars_merge_across_batches_equals_one_batch() -> None:
    trades = pl.DataFrame(
        {
            "ts_event": [(T0_MS + r[5]) * 1_000_000 for r in AGG_ROWS],
            "trade_id": [r[0] for r in AGG_ROWS],
            "price": [r[1] for r in AGG_ROWS],
            "qty": [r[2] for r in AGG_ROWS],
            "side": ["sell" if r[6] else "buy" for r in AGG_ROWS],
            "n_trades": [r[4] - r[3] + 1 for r in AGG_ROWS],
        }
    )
    whole = merge_partials([partial_bars(trades)])
    check_bars(whole)
    for cut in range(1, 5):
        acc = BarAccumulator()
        acc.add(trades.slice(cut))  # later batch first: order of batches must not matter
        acc.add(trades.head(cut))
        assert acc.bars().equals(whole)


def test_tardis_trades_become_trades_and_bars(tmp_path: Path) -> None:
    source = require_shared("tardis/binance-futures_trades_BTCUSDT_20200222.csv")
    lake = tmp_path / "lake"
    result = import_archives([source], lake, "BTCUSDT", "usdm")
    assert result.trades == 9999 and result.files[0].rejected == 0
    trades = read_table(lake, "trades")
    raw = pl.read_csv(source)
    assert trades["trade_id"].to_list() == raw["id"].to_list()
    assert (trades["ts_recv"] - trades["ts_event"]).min() > 0  # local time after exchange time
    bars = read_table(lake, "bars_1m")
    assert bars.height >= 100  # about 2 h of trades (a few quiet minutes have none)
    assert bars["volume"].sum() == pytest.approx(raw["amount"].sum())
    assert bars["trades"].sum() == 9999
    buy = raw.filter(pl.col("side") == "buy")["amount"].sum()
    assert bars["buy_volume"].sum() == pytest.approx(buy)
    assert (bars["low"] <= bars["vwap"]).all() and (bars["vwap"] <= bars["high"]).all()


def test_cli_import_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agg = write(tmp_path / "BTCUSDT-aggTrades-2024-01-01.zip", agg_lines("us"), zipped=True)
    kl = write(tmp_path / "ETHUSDT-1m-2024-01-01.csv", kline_lines())
    lake = tmp_path / "lake"
    code = main(
        ["import-archive", str(agg), "--lake", str(lake), "--symbol", "BTCUSDT", "--no-progress"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"files": 1, "trades": 5, "bars": 3, "rejected": 0, "rows_written": 8}
    code = main(["import-archive", str(kl), "--lake", str(lake), "--symbol", "ETHUSDT"])
    assert code == 0
    bars = pl.read_parquet(str(lake / "bars_1m/**/*.parquet"), hive_partitioning=True)
    assert sorted(bars["symbol"].unique().to_list()) == ["BTCUSDT", "ETHUSDT"]
    assert (
        main(["import-archive", str(tmp_path / "nope.csv"), "--lake", str(lake), "--symbol", "X"])
        == 2
    )
