"""Read archive files as normalized Polars batches.

Every reader yields batches (a few hundred thousand rows) so a monthly file
never has to fit in memory. All CSV fields are read as text first and then
converted leniently: a row with a missing or impossible value (non-numeric,
non-positive price or quantity, zero time) is dropped and counted, never fatal.

Trade batches have the columns ``ts_event`` (Unix ns), ``ts_recv`` (Unix ns or
null), ``trade_id``, ``price``, ``qty``, ``side`` (aggressor, ``buy``/``sell``),
``is_aggregate``, ``first_trade_id``, ``last_trade_id`` and ``n_trades`` (the
exchange trades behind the row: ``last - first + 1`` for an aggregate trade).

Kline batches have the ``bars_1m`` columns: ``ts`` (minute start, ns), ``open``,
``high``, ``low``, ``close``, ``volume``, ``buy_volume`` (taker buy volume),
``sell_volume`` (``volume - buy_volume``), ``vwap`` (``quote_volume / volume``,
null when the volume is 0) and ``trades`` (``count``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from microstream.archive.formats import US_THRESHOLD, ArchiveFormat, open_text
from microstream.errors import ArchiveError

BLOCK_SIZE = 8 << 20
"""Bytes of CSV parsed per batch."""

NS_PER_MS = 1_000_000
MINUTE_NS = 60_000_000_000


@dataclass
class ReadStats:
    """Counters of one file.

    Attributes:
        rows: data rows read; rejected: rows dropped (bad values, wrong field count).
    """

    rows: int = 0
    rejected: int = 0
    bytes_read: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str, n: int) -> None:
        """Count ``n`` dropped rows for ``reason``."""
        if n:
            self.rejected += n
            self.reasons[reason] = self.reasons.get(reason, 0) + n


class _Counting:
    """A binary stream wrapper that reports the bytes read."""

    def __init__(self, raw: IO[bytes], on_bytes: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_bytes = on_bytes
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def _csv_batches(
    path: Path, fmt: ArchiveFormat, stats: ReadStats, on_bytes: Callable[[int], None]
) -> Iterator[pl.DataFrame]:
    """The file's rows as all-text Polars frames named by ``fmt.columns``."""

    def bad_row(row: pacsv.InvalidRow) -> str:
        stats.reject("wrong number of fields", 1)
        return "skip"

    def count(n: int) -> None:
        stats.bytes_read += n
        on_bytes(n)

    read = pacsv.ReadOptions(
        column_names=list(fmt.columns), skip_rows=1 if fmt.header else 0, block_size=BLOCK_SIZE
    )
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(fmt.columns, pa.string()))
    parse = pacsv.ParseOptions(invalid_row_handler=bad_row)
    with open_text(path) as (handle, _):
        try:
            reader = pacsv.open_csv(
                _Counting(handle, count),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
            for batch in reader:
                frame = pl.from_arrow(pa.Table.from_batches([batch]))
                assert isinstance(frame, pl.DataFrame)
                stats.rows += frame.height
                yield frame
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return
            raise ArchiveError(f"{path}: unreadable CSV: {exc}") from exc


def _int(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().cast(pl.Int64, strict=False)


def _float(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)


def _bool(name: str) -> pl.Expr:
    return (
        pl.col(name)
        .str.strip_chars()
        .str.to_lowercase()
        .replace_strict(
            {"true": True, "false": False, "1": True, "0": False},
            default=None,
            return_dtype=pl.Boolean,
        )
    )


def time_to_ns(expr: pl.Expr) -> pl.Expr:
    """Binance archive times (ms, or µs from 2025 on) to Unix ns, value by value."""
    return pl.when(expr >= US_THRESHOLD).then(expr * 1_000).otherwise(expr * NS_PER_MS)


def _keep_valid(frame: pl.DataFrame, stats: ReadStats, required: list[str]) -> pl.DataFrame:
    ok = pl.all_horizontal([pl.col(c).is_not_null() for c in required])
    for col in ("price", "qty", "open", "high", "low", "close"):
        if col in frame.columns:
            ok = ok & pl.col(col).is_finite() & (pl.col(col) > 0)
    time_col = "ts_event" if "ts_event" in frame.columns else "ts"
    ok = ok & (pl.col(time_col) > 0)
    good = frame.filter(ok.fill_null(False))
    stats.reject("missing or impossible value", frame.height - good.height)
    return good


def _agg_trades(raw: pl.DataFrame, stats: ReadStats) -> pl.DataFrame:
    frame = raw.select(
        time_to_ns(_int("transact_time")).alias("ts_event"),
        pl.lit(None, dtype=pl.Int64).alias("ts_recv"),
        _int("agg_trade_id").alias("trade_id"),
        _float("price").alias("price"),
        _float("quantity").alias("qty"),
        pl.when(_bool("is_buyer_maker"))
        .then(pl.lit("sell"))
        .otherwise(pl.lit("buy"))
        .alias("side"),
        _bool("is_buyer_maker").alias("_maker"),
        pl.lit(True).alias("is_aggregate"),
        _int("first_trade_id").alias("first_trade_id"),
        _int("last_trade_id").alias("last_trade_id"),
    )
    frame = _keep_valid(frame, stats, ["ts_event", "trade_id", "_maker", "qty"])
    n = (pl.col("last_trade_id") - pl.col("first_trade_id") + 1).clip(lower_bound=1)
    return frame.drop("_maker").with_columns(n.fill_null(1).alias("n_trades"))


def _raw_trades(raw: pl.DataFrame, stats: ReadStats) -> pl.DataFrame:
    frame = raw.select(
        time_to_ns(_int("time")).alias("ts_event"),
        pl.lit(None, dtype=pl.Int64).alias("ts_recv"),
        _int("id").alias("trade_id"),
        _float("price").alias("price"),
        _float("qty").alias("qty"),
        pl.when(_bool("is_buyer_maker"))
        .then(pl.lit("sell"))
        .otherwise(pl.lit("buy"))
        .alias("side"),
        _bool("is_buyer_maker").alias("_maker"),
        pl.lit(False).alias("is_aggregate"),
    )
    frame = _keep_valid(frame, stats, ["ts_event", "trade_id", "_maker", "qty"])
    return frame.drop("_maker").with_columns(
        pl.col("trade_id").alias("first_trade_id"),
        pl.col("trade_id").alias("last_trade_id"),
        pl.lit(1, dtype=pl.Int64).alias("n_trades"),
    )


def _tardis_trades(raw: pl.DataFrame, stats: ReadStats) -> pl.DataFrame:
    side = pl.col("side").str.strip_chars().str.to_lowercase()
    frame = raw.select(
        (_int("timestamp") * 1_000).alias("ts_event"),
        (_int("local_timestamp") * 1_000).alias("ts_recv"),
        _int("id").alias("trade_id"),
        _float("price").alias("price"),
        _float("amount").alias("qty"),
        pl.when(side.is_in(["buy", "sell"])).then(side).otherwise(None).alias("side"),
        pl.lit(False).alias("is_aggregate"),
    )
    frame = _keep_valid(frame, stats, ["ts_event", "trade_id", "side", "qty"])
    return frame.with_columns(
        pl.col("trade_id").alias("first_trade_id"),
        pl.col("trade_id").alias("last_trade_id"),
        pl.lit(1, dtype=pl.Int64).alias("n_trades"),
    )


def _klines(raw: pl.DataFrame, stats: ReadStats, path: Path) -> pl.DataFrame:
    frame = raw.select(
        time_to_ns(_int("open_time")).alias("ts"),
        time_to_ns(_int("close_time")).alias("_close_time"),
        _float("open").alias("open"),
        _float("high").alias("high"),
        _float("low").alias("low"),
        _float("close").alias("close"),
        _float("volume").alias("volume"),
        _float("quote_volume").alias("_quote"),
        _int("count").alias("trades"),
        _float("taker_buy_volume").alias("buy_volume"),
    )
    frame = _keep_valid(frame, stats, ["ts", "volume", "buy_volume", "_quote"])
    span = ((pl.col("_close_time") - pl.col("ts") + NS_PER_MS) / MINUTE_NS).round(0)
    if frame.height and not frame.select((span == 1).all()).item():
        raise ArchiveError(f"{path}: not 1-minute klines (only 1m klines become bars_1m)")
    vwap = pl.when(pl.col("volume") > 0).then(pl.col("_quote") / pl.col("volume"))
    return frame.select(
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "buy_volume",
        (pl.col("volume") - pl.col("buy_volume")).clip(lower_bound=0.0).alias("sell_volume"),
        vwap.otherwise(None).alias("vwap"),
        "trades",
    )


def read_batches(
    path: Path,
    fmt: ArchiveFormat,
    stats: ReadStats,
    on_bytes: Callable[[int], None] = lambda n: None,
) -> Iterator[pl.DataFrame]:
    """Normalized batches of ``path``: trade batches, or bar batches for klines.

    Raises:
        ArchiveError: unreadable file, or klines of another interval than 1m.
    """
    if fmt.kind == "klines" and fmt.interval not in (None, "1m"):
        raise ArchiveError(f"{path}: {fmt.interval} klines; only 1m klines become bars_1m")
    for raw in _csv_batches(path, fmt, stats, on_bytes):
        if fmt.kind == "aggTrades":
            yield _agg_trades(raw, stats)
        elif fmt.kind == "trades":
            yield _raw_trades(raw, stats)
        elif fmt.kind == "tardis_trades":
            yield _tardis_trades(raw, stats)
        else:
            yield _klines(raw, stats, path)
