"""Reading the lake with Polars, honouring the compaction rule.

:func:`read_table` returns a DataFrame with the stored columns plus
``exchange``, ``symbol`` (strings) and ``date`` (a Polars ``Date``) from the
partition directories, sorted by the table's time column. Files replaced by a
compacted file are skipped, so a row is never returned twice, even while (or
after a crash during) compaction.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from microstream.errors import StoreError
from microstream.store.files import (
    date_of_ns,
    file_schema,
    snapshot_names,
    split_visible,
)
from microstream.store.schema import get_table

TimeBound = int | dt.datetime | dt.date
"""A time bound: Unix ns, a datetime (naive means UTC) or a date (its midnight UTC)."""

HIVE_SCHEMA: dict[str, pl.DataType] = {
    "exchange": pl.String(),
    "symbol": pl.String(),
    "date": pl.Date(),
}

_READ_ATTEMPTS = 5


def to_ns(bound: TimeBound) -> int:
    """A time bound as integer Unix nanoseconds."""
    if isinstance(bound, dt.datetime):
        aware = bound if bound.tzinfo else bound.replace(tzinfo=dt.UTC)
        delta = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(bound, dt.date):
        return to_ns(dt.datetime(bound.year, bound.month, bound.day, tzinfo=dt.UTC))
    return int(bound)


def _subdirs(directory: Path, key: str, wanted: str | None) -> Iterator[tuple[str, Path]]:
    if wanted is not None:
        path = directory / f"{key}={wanted}"
        if path.is_dir():
            yield wanted, path
        return
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return
    prefix = f"{key}="
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_dir():
            yield entry.name[len(prefix) :], Path(entry.path)


def partition_dirs(
    root: str | os.PathLike[str],
    table: str,
    exchange: str | None = None,
    symbol: str | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> list[Path]:
    """Partition directories of ``table`` matching the filters (dates pruned by time)."""
    table_dir = Path(root) / table
    if not table_dir.is_dir():
        raise StoreError(f"lake table {table!r} does not exist under {Path(root)}")
    first = date_of_ns(to_ns(start)) if start is not None else None
    last = date_of_ns(to_ns(end)) if end is not None else None
    found: list[Path] = []
    for _, ex_dir in _subdirs(table_dir, "exchange", exchange):
        for _, sym_dir in _subdirs(ex_dir, "symbol", symbol):
            for date, date_dir in _subdirs(sym_dir, "date", None):
                if (first is None or date >= first) and (last is None or date <= last):
                    found.append(date_dir)
    return found


def visible_files(directory: Path) -> list[Path]:
    """The files of one partition a reader must read (replaced files excluded)."""
    visible, _ = split_visible(directory, snapshot_names(directory))
    return [directory / name for name in visible]


def list_table_files(
    root: str | os.PathLike[str],
    table: str,
    exchange: str | None = None,
    symbol: str | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> list[Path]:
    """Every visible file of ``table`` matching the filters, in partition/name order."""
    files: list[Path] = []
    for directory in partition_dirs(root, table, exchange, symbol, start, end):
        files.extend(visible_files(directory))
    return files


def _time_column(table: str, files: list[Path]) -> str | None:
    spec = get_table(table)
    if spec is not None:
        return spec.time_column
    if files:
        names = file_schema(str(files[0])).names
        return next((c for c in ("ts", "ts_event", "ts_recv") if c in names), None)
    return None


def _scan_files(files: list[Path]) -> pl.LazyFrame:
    groups: dict[str, list[str]] = {}
    for path in files:
        schema = file_schema(str(path)).remove_metadata()
        groups.setdefault(schema.to_string(), []).append(str(path))
    frames = [
        pl.scan_parquet(paths, hive_partitioning=True, hive_schema=HIVE_SCHEMA)
        for paths in groups.values()
    ]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _empty(table: str) -> pl.LazyFrame:
    spec = get_table(table)
    frame = pl.DataFrame(spec.schema.empty_table()) if spec else pl.DataFrame()
    return frame.with_columns(
        pl.lit(None, pl.String).alias("exchange"),
        pl.lit(None, pl.String).alias("symbol"),
        pl.lit(None, pl.Date).alias("date"),
    ).lazy()


def _scan(
    table: str, files: list[Path], start: TimeBound | None, end: TimeBound | None
) -> pl.LazyFrame:
    frame = _scan_files(files) if files else _empty(table)
    time_column = _time_column(table, files)
    if time_column is None:
        return frame
    if start is not None:
        frame = frame.filter(pl.col(time_column) >= to_ns(start))
    if end is not None:
        frame = frame.filter(pl.col(time_column) < to_ns(end))
    return frame.sort(time_column, maintain_order=True)


def scan_table(
    root: str | os.PathLike[str],
    table: str,
    exchange: str | None = None,
    symbol: str | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> pl.LazyFrame:
    """A LazyFrame over ``table``, rows with time in ``[start, end)``, sorted by time.

    The file list is fixed when this is called: a compaction that runs before
    ``collect()`` may remove a listed file. :func:`read_table` retries instead.

    Raises:
        StoreError: the table does not exist under ``root``.
    """
    files = list_table_files(root, table, exchange, symbol, start, end)
    return _scan(table, files, start, end)


def read_table(
    root: str | os.PathLike[str],
    table: str,
    exchange: str | None = None,
    symbol: str | None = None,
    start: TimeBound | None = None,
    end: TimeBound | None = None,
) -> pl.DataFrame:
    """``table`` as a DataFrame, rows with time in ``[start, end)``, sorted by time.

    The read is consistent with a concurrent compaction: partitions are
    listed under its publish lock, and if it removed a listed file before it
    was read, the table is listed and read again. Rows a writer adds
    meanwhile may or may not be included (each row exactly once if so).

    Raises:
        StoreError: the table does not exist, or stays unreadable.
    """
    for _ in range(_READ_ATTEMPTS):
        files = list_table_files(root, table, exchange, symbol, start, end)
        try:
            frame = _scan(table, files, start, end).collect()
        except (OSError, pl.exceptions.PolarsError) as exc:
            if all(path.exists() for path in files):
                raise StoreError(f"cannot read lake table {table!r}: {exc}") from exc
            continue  # a compaction removed a listed file: list again
        return frame
    raise StoreError(f"lake table {table!r} under {Path(root)} keeps changing while read")
