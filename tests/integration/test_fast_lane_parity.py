"""The compiled fast lane changes nothing: every lake table equals the reference path's.

Each capture session is replayed twice through the whole pipeline (book,
features, models, lake): once with plain trade and depth frames read by the
compiled reader and applied packed (the default), once with every frame read
by the reference parser and published on the bus one row at a time. Every
table the runs write must hold the very same rows, and the run summaries the
same counts.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from conftest import require_shared
from microstream.engine import PipelineOptions
from microstream.replay import replay
from microstream.store.reader import read_table

SESSIONS = {
    "spot": ["binance/spot/btcusdt_20240808.gz", "binance/spot/btcusdt_20240809.gz"],
    "usdm-2023": ["binance/usdm/btcusdt_20230404.dat.gz", "binance/usdm/btcusdt_20230405.dat.gz"],
    "coinm": ["binance/cm/btcusd_perp_20240808.gz", "binance/cm/btcusd_perp_20240809.gz"],
}


def _tables(root: Path) -> dict[str, pl.DataFrame]:
    tables = {}
    for table_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        frame = read_table(root, table_dir.name)
        tables[table_dir.name] = frame.sort(frame.columns)  # a total order, ties included
    return tables


@pytest.mark.parametrize("session", sorted(SESSIONS))
def test_fast_lane_writes_the_same_lake_as_the_reference_path(session: str, tmp_path: Path) -> None:
    files = [require_shared(relative) for relative in SESSIONS[session]]
    results = {}
    for lane in (True, False):
        out = tmp_path / ("fast" if lane else "reference")
        results[lane] = replay(files, out, options=PipelineOptions(), fast_lane=lane)
    fast, reference = _tables(tmp_path / "fast"), _tables(tmp_path / "reference")
    assert sorted(fast) == sorted(reference)
    assert {"trades", "book_top", "book_sync", "features", "bars_1m"} <= set(fast)
    for table, frame in reference.items():
        assert frame.height > 0, table
        assert fast[table].equals(frame), table
    assert results[True].events == results[False].events
    assert results[True].rejected == results[False].rejected
    assert results[True].symbols == results[False].symbols
    assert results[True].rows == results[False].rows
    # the lane really read the trade, best bid/ask and depth frames; the reference run none
    events = results[True].events
    lane_events = events["Trade"] + events["DepthUpdate"] + events["BestBidAsk"]
    assert results[True].fast_frames == lane_events
    assert results[False].fast_frames == 0
