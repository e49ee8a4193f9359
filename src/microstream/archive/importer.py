"""Import historical archives into the lake.

- aggTrades / trades / Tardis trades → the ``trades`` table (one row per file
  row; ``is_aggregate`` true for aggTrades; ``ts_recv`` null for Binance
  archives, which carry no receive time) **and** ``bars_1m`` computed from them
  (:mod:`microstream.archive.bars`);
- 1-minute klines → ``bars_1m`` (``buy_volume`` = taker buy volume,
  ``sell_volume = volume - buy_volume``, ``vwap = quote_volume / volume``,
  ``trades`` = ``count``).

Rows go through :class:`~microstream.store.lake.LakeWriter`, so files are
atomic and partitioned exactly as the live pipeline's. Imported rows are not
marked ``simulated``. Importing the same file twice writes its rows twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from microstream.archive.bars import BarAccumulator
from microstream.archive.formats import ArchiveFormat, open_text, sniff
from microstream.archive.readers import ReadStats, read_batches
from microstream.bus.protocol import Row
from microstream.errors import ArchiveError
from microstream.events import BINANCE_COINM, BINANCE_SPOT, BINANCE_USDM
from microstream.features.schema import BAR_COLUMNS
from microstream.store.lake import LakeWriter
from microstream.store.schema import extend_table

log = logging.getLogger(__name__)

EXCHANGE_BY_MARKET: dict[str, str] = {
    "spot": BINANCE_SPOT,
    "usdm": BINANCE_USDM,
    "coinm": BINANCE_COINM,
}
TRADE_COLUMNS: tuple[str, ...] = (
    "ts_event",
    "ts_recv",
    "trade_id",
    "price",
    "qty",
    "side",
    "is_aggregate",
    "first_trade_id",
    "last_trade_id",
)

extend_table("trades", {"first_trade_id": pa.int64(), "last_trade_id": pa.int64()})


@dataclass
class FileReport:
    """What one file gave.

    Attributes:
        path: the file; kind: its detected format.
        trades: ``trades`` rows written; bars: ``bars_1m`` rows written.
        rejected: rows dropped as malformed; reasons: per reason.
    """

    path: str
    kind: str
    trades: int = 0
    bars: int = 0
    rows: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class ImportResult:
    """Every file's report plus the lake writer's final counters."""

    files: list[FileReport] = field(default_factory=list)
    rows_written: int = 0
    rows_rejected_by_lake: int = 0

    @property
    def trades(self) -> int:
        """Trade rows imported."""
        return sum(f.trades for f in self.files)

    @property
    def bars(self) -> int:
        """Bar rows imported."""
        return sum(f.bars for f in self.files)


def _rows(
    frame: pl.DataFrame, table: str, exchange: str, symbol: str, columns: tuple[str, ...]
) -> Iterator[Row]:
    names = list(columns)
    for values in frame.select(names).iter_rows():
        yield Row(table, exchange, symbol, dict(zip(names, values, strict=True)))


class ArchiveImporter:
    """Imports archive files of one symbol into a lake directory.

    Args:
        lake: lake root directory.
        symbol: symbol of the imported rows (upper-cased).
        market: ``spot``, ``usdm`` or ``coinm`` (the ``exchange=`` partition).
        flush_rows: rows per lake file.
        on_bytes: progress callback, called with bytes of CSV read.
    """

    def __init__(
        self,
        lake: str | os.PathLike[str],
        symbol: str,
        market: str = "spot",
        flush_rows: int = 200_000,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        if market not in EXCHANGE_BY_MARKET:
            raise ArchiveError(f"unknown market {market!r} (spot, usdm, coinm)")
        self.symbol = symbol.upper()
        self.exchange = EXCHANGE_BY_MARKET[market]
        self.writer = LakeWriter(lake, flush_rows=flush_rows, flush_seconds=3600.0)
        self._on_bytes = on_bytes or _ignore

    def import_file(self, path: Path, fmt: ArchiveFormat | None = None) -> FileReport:
        """Import one file (its trades and bars, or its klines)."""
        fmt = fmt or sniff(path)
        stats = ReadStats()
        report = FileReport(str(path), fmt.kind)
        bars = BarAccumulator()
        add = self.writer.add
        for batch in read_batches(path, fmt, stats, self._on_bytes):
            if fmt.kind == "klines":
                for row in _rows(batch, "bars_1m", self.exchange, self.symbol, BAR_COLUMNS):
                    add(row)
                report.bars += batch.height
                continue
            bars.add(batch)
            for row in _rows(batch, "trades", self.exchange, self.symbol, TRADE_COLUMNS):
                add(row)
            report.trades += batch.height
        if fmt.kind != "klines":
            frame = bars.bars()
            for row in _rows(frame, "bars_1m", self.exchange, self.symbol, BAR_COLUMNS):
                add(row)
            report.bars = frame.height
        report.rows, report.rejected, report.reasons = stats.rows, stats.rejected, stats.reasons
        if stats.rejected:
            log.warning("%s: %d malformed rows skipped %s", path, stats.rejected, stats.reasons)
        return report

    def close(self) -> None:
        """Write every buffered row."""
        self.writer.close()


def _ignore(n: int) -> None:
    """A progress callback that does nothing."""


def total_bytes(paths: Iterable[Path]) -> int:
    """Uncompressed CSV bytes of ``paths`` (the progress bar's total)."""
    total = 0
    for path in paths:
        with open_text(path) as (_, size):
            total += size
    return total


def import_archives(
    paths: Iterable[str | os.PathLike[str]],
    lake: str | os.PathLike[str],
    symbol: str,
    market: str = "spot",
    progress: bool = False,
) -> ImportResult:
    """Import ``paths`` (any mix of supported formats) into ``lake``.

    Trades spanning several files (a month as daily files) give correct bars
    only if a minute does not straddle two files — true of Binance's daily and
    monthly files, which are cut at UTC midnight.

    Raises:
        ArchiveError: a file is missing, not a known format, or unreadable.
    """
    files = [Path(p) for p in paths]
    formats = {p: sniff(p) for p in files}  # fail before writing anything
    bar: Any = None
    on_bytes: Callable[[int], None] = _ignore
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_bytes(files), unit="B", unit_scale=True, desc="import")
        on_bytes = bar.update
    importer = ArchiveImporter(lake, symbol, market, on_bytes=on_bytes)
    result = ImportResult()
    try:
        for path in files:
            if bar is not None:
                bar.set_postfix_str(path.name)
            result.files.append(importer.import_file(path, formats[path]))
    finally:
        importer.close()
        if bar is not None:
            bar.close()
    stats = importer.writer.stats
    result.rows_written = stats.rows_written
    result.rows_rejected_by_lake = stats.rows_rejected
    return result
