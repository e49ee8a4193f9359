"""Recompute the ``features`` and ``bars_1m`` tables of a lake with the batch twins.

Reads each (exchange, symbol)'s ``trades``, ``book_top`` and (when present)
``book_sync`` tables, runs :func:`~microstream.features.batch.compute_features`
and :func:`~microstream.features.batch.compute_bars`, and writes the rows through
:class:`~microstream.store.lake.LakeWriter`. Used by ``microstream features``.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from microstream.bus.protocol import Row
from microstream.errors import StoreError
from microstream.features.batch import compute_bars, compute_features
from microstream.features.schema import BARS_TABLE, FEATURES_TABLE, declare_lake_columns

log = logging.getLogger(__name__)

INPUT_TABLES = ("trades", "book_top")


@dataclass(frozen=True)
class SymbolResult:
    """What was computed for one symbol."""

    exchange: str
    symbol: str
    trades: int
    book_tops: int
    features: int
    bars: int


def symbols_in_lake(lake: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Every (exchange, symbol) with a ``trades`` or ``book_top`` partition."""
    found: set[tuple[str, str]] = set()
    for table in INPUT_TABLES:
        for ex_dir in sorted((Path(lake) / table).glob("exchange=*")):
            for sym_dir in sorted(ex_dir.glob("symbol=*")):
                found.add((ex_dir.name.split("=", 1)[1], sym_dir.name.split("=", 1)[1]))
    return sorted(found)


def _read(lake: Path, table: str, exchange: str, symbol: str) -> pl.DataFrame | None:
    from microstream.store.reader import read_table

    if not (lake / table / f"exchange={exchange}" / f"symbol={symbol}").is_dir():
        return None
    return read_table(lake, table, exchange, symbol)


def load_inputs(
    lake: str | os.PathLike[str], exchange: str, symbol: str
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """``(trades, book_top, book_sync)`` of one symbol, equal times in arrival order."""
    root = Path(lake)
    trades = _read(root, "trades", exchange, symbol)
    tops = _read(root, "book_top", exchange, symbol)
    sync = _read(root, "book_sync", exchange, symbol)
    if trades is None:
        trades = pl.DataFrame(
            schema={"ts_event": pl.Int64, "ts_recv": pl.Int64, "trade_id": pl.Int64}
            | {"price": pl.Float64, "qty": pl.Float64, "side": pl.String}
        )
    if tops is None:
        tops = pl.DataFrame(schema={"ts_event": pl.Int64, "ts_recv": pl.Int64})
    trades = trades.sort(_present(trades, "ts_event", "trade_id"), maintain_order=True)
    tops = tops.sort(_present(tops, "ts_event", "update_id"), maintain_order=True)
    return trades, tops, sync


def _present(frame: pl.DataFrame, *columns: str) -> list[str]:
    return [c for c in columns if c in frame.columns]


def _simulated(*frames: pl.DataFrame | None) -> bool:
    for frame in frames:
        if frame is not None and "simulated" in frame.columns and frame["simulated"].any():
            return True
    return False


def _rows(frame: pl.DataFrame, table: str, exchange: str, symbol: str, sim: bool) -> Iterator[Row]:
    for values in frame.iter_rows(named=True):
        if sim:
            values["simulated"] = True
        yield Row(table, exchange, symbol, values)


def _clear(out: Path, exchange: str, symbol: str, overwrite: bool) -> None:
    for table in (FEATURES_TABLE, BARS_TABLE):
        target = out / table / f"exchange={exchange}" / f"symbol={symbol}"
        if not target.exists():
            continue
        if not overwrite:
            raise StoreError(
                f"{target} already exists; pass --overwrite to replace it or choose another --out"
            )
        shutil.rmtree(target)


def recompute_lake(
    lake: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    grid_ms: int = 1000,
    overwrite: bool = False,
) -> list[SymbolResult]:
    """Write ``features`` and ``bars_1m`` for every symbol of ``lake`` into ``out``.

    Raises:
        StoreError: the lake has no input tables, an output exists and
            ``overwrite`` is false, or the lake cannot be read or written.
    """
    from microstream.store.lake import LakeWriter

    declare_lake_columns()
    root = Path(lake)
    target = Path(out) if out is not None else root
    pairs = symbols_in_lake(root)
    if not pairs:
        raise StoreError(f"no trades or book_top tables under {root}")
    results: list[SymbolResult] = []
    for exchange, symbol in pairs:
        _clear(target, exchange, symbol, overwrite)
    writer = LakeWriter(target, flush_rows=200_000, flush_seconds=3600.0)
    try:
        for exchange, symbol in pairs:
            trades, tops, sync = load_inputs(root, exchange, symbol)
            features = compute_features(trades, tops, grid_ms, book_sync=sync)
            bars = compute_bars(trades)
            sim = _simulated(trades, tops)
            for row in _rows(features, FEATURES_TABLE, exchange, symbol, sim):
                writer.add(row)
            for row in _rows(bars, BARS_TABLE, exchange, symbol, sim):
                writer.add(row)
            results.append(
                SymbolResult(
                    exchange, symbol, trades.height, tops.height, features.height, bars.height
                )
            )
            log.info(
                "%s %s: %d feature rows, %d bars", exchange, symbol, features.height, bars.height
            )
    finally:
        writer.close()
    return results
