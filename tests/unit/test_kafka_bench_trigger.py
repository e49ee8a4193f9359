"""The ingest-to-signal latency of ``benchmarks/kafka_e2e.py`` pins each grid row on the right event.

The benchmark times a ``regimes``/``predictions`` row from the publish time of
the event that made the feature grid emit it (the watermark ``max exchange
time - lateness`` passes ``b`` and a held event, so the engine drains). Here
the real pipeline (book and features) runs a real USD-M capture, and for every
``features`` row past the benchmark's warm-up the event being processed when
the row came out must be the one the benchmark's :class:`GridClock` picks.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

from conftest import REPO_ROOT, require_shared
from microstream.bus.protocol import Row
from microstream.capture import read_captures
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import DepthUpdate, Trade
from microstream.features.schema import DEFAULT_LATENESS_MS
from microstream.venues.binance.parse import FrameDecoder


def bench_module() -> ModuleType:
    path = REPO_ROOT / "benchmarks" / "kafka_e2e.py"
    spec = importlib.util.spec_from_file_location("kafka_e2e_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_each_grid_row_is_pinned_on_the_event_that_emitted_it() -> None:
    bench = bench_module()
    capture: Path = require_shared("binance/usdm/btcusdt_20240718.gz")
    emitted: list[tuple[int, int]] = []  # (grid ts, index of the event being processed)
    current = -1

    def emit(row: Row) -> None:
        if row.table == "features":
            emitted.append((row.values["ts"], current))

    pipe = SymbolPipeline("binance-futures", "BTCUSDT", emit, PipelineOptions(models=False))
    clock = bench.GridClock(DEFAULT_LATENESS_MS)
    decoder = FrameDecoder()
    index = 0
    for frame in itertools.islice(read_captures([capture]), 12_000):
        for event in decoder.decode(frame):
            if event.symbol != "BTCUSDT":
                continue
            current = index
            if isinstance(event, Trade | DepthUpdate):  # what the benchmark notes
                clock.note(event.symbol, event.ts_event, index)
            pipe.on_event(event)
            index += 1
    first = clock.first("BTCUSDT")
    checked = [(ts, at) for ts, at in emitted if ts >= first + bench.WARMUP_S * 1e9]
    assert len(checked) > 30, f"only {len(checked)} grid rows past the warm-up"
    for ts, at in checked:
        assert clock.trigger_wall("BTCUSDT", ts) == at, ts
