"""USD-M futures capture (2023, µs receive times): trades up to ~2 s late.

In this session the trade stream lags the depth stream by up to 2.05 s of
exchange time. With a lateness allowance that covers it the streaming rows equal
the batch twin exactly; with the default 250 ms the late trades are counted and
only the rows written before they arrived differ.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from microstream.bus.protocol import Row
from microstream.capture import read_captures
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import BookTop, SyncStateChange, Trade
from microstream.features.batch import compute_bars, compute_features
from microstream.features.schema import BAR_COLUMNS, FEATURE_COLUMNS
from microstream.features.streaming import FeatureEngine
from microstream.venues.binance.parse import FrameDecoder


class FanOut:
    """A feature stage feeding two engines (the pipeline has one slot)."""

    def __init__(self, *engines: FeatureEngine) -> None:
        self.engines = engines

    def on_book_top(self, top: BookTop) -> None:
        for e in self.engines:
            e.on_book_top(top)

    def on_trade(self, trade: Trade) -> None:
        for e in self.engines:
            e.on_trade(trade)

    def on_sync(self, change: SyncStateChange) -> None:
        for e in self.engines:
            e.on_sync(change)

    def finish(self) -> None:
        for e in self.engines:
            e.finish()

    def live_state(self) -> dict[str, Any]:
        return {}


@pytest.fixture(scope="module")
def run(usdm_capture: list[Path]) -> dict[str, Any]:
    inputs: list[Row] = []
    wide: list[Row] = []
    default: list[Row] = []
    engines: dict[str, FeatureEngine] = {}
    pipe: SymbolPipeline | None = None
    decoder = FrameDecoder()
    for frame in read_captures(usdm_capture):
        for event in decoder.decode(frame):
            if pipe is None:
                ex, sym = event.exchange, event.symbol
                pipe = SymbolPipeline(
                    ex, sym, inputs.append, PipelineOptions(features=False, models=False)
                )
                engines["wide"] = FeatureEngine(ex, sym, wide.append, lateness_ms=2100)
                engines["default"] = FeatureEngine(ex, sym, default.append)
                pipe.features = FanOut(engines["wide"], engines["default"])
            pipe.on_event(event)
    assert pipe is not None
    pipe.finish()

    def frame(table: str) -> pl.DataFrame:
        return pl.DataFrame(
            [r.values for r in inputs if r.table == table], infer_schema_length=None
        )

    return {
        "batch": compute_features(frame("trades"), frame("book_top"), book_sync=frame("book_sync")),
        "bars": compute_bars(frame("trades")),
        "wide": wide,
        "default": default,
        "engines": engines,
    }


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9)


def differing_rows(rows: list[Row], batch: pl.DataFrame) -> int:
    stream = [r.values for r in rows if r.table == "features"]
    assert [r["ts"] for r in stream] == batch["ts"].to_list()
    return sum(
        any(not same(s[c], b[c]) for c in FEATURE_COLUMNS)
        for s, b in zip(stream, batch.iter_rows(named=True), strict=True)
    )


def test_wide_lateness_equals_batch(run: dict[str, Any]) -> None:
    assert run["engines"]["wide"].late_events == 0
    assert run["engines"]["wide"].sync_markers == 1  # trades before the first depth event
    assert run["batch"].height == 514
    assert differing_rows(run["wide"], run["batch"]) == 0
    bars = [r.values for r in run["wide"] if r.table == "bars_1m"]
    assert run["bars"]["ts"].to_list() == [b["ts"] for b in bars]
    for s, b in zip(bars, run["bars"].iter_rows(named=True), strict=True):
        assert all(same(s[c], b[c]) for c in BAR_COLUMNS)


def test_default_lateness_counts_late_trades(run: dict[str, Any]) -> None:
    engine = run["engines"]["default"]
    assert engine.late_events == 276  # trades more than 250 ms behind the depth stream
    diff = differing_rows(run["default"], run["batch"])
    assert 0 < diff < run["batch"].height // 10
