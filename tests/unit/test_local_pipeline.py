"""LocalPipeline: ingest and engine in one process, with the compiled fast lane."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from conftest import require_shared
from microstream import engine as engine_module
from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Row, RowBatch, Topics
from microstream.capture import read_captures
from microstream.engine import LocalPipeline, PipelineOptions
from microstream.frames import RawFrame

FRAMES = 4000


def _frames() -> list[RawFrame]:
    path = require_shared("binance/spot/btcusdt_20240808.gz")
    return list(itertools.islice(read_captures([path]), FRAMES))


def _run(frames: list[RawFrame], **kwargs: Any) -> tuple[LocalPipeline, list[Any]]:
    bus = MemoryBus()
    out: list[Any] = []
    bus.subscribe(Topics.ROWS, lambda key, message: out.append(message))
    local = LocalPipeline(bus, PipelineOptions(models=False), **kwargs)
    for frame in frames:
        local.on_frame(frame)
    local.finish()
    return local, out


def _rows(messages: list[Any], table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, RowBatch) and message.table == table:
            rows.extend(row.values for row in message.rows())
        elif isinstance(message, Row) and message.table == table:
            rows.append(message.values)
    return rows


def test_lane_and_reference_path_publish_the_same_rows_and_counters() -> None:
    frames = _frames()
    fast, fast_out = _run(frames)
    slow, slow_out = _run(frames, fast_lane=False)
    assert fast.fast_lane and not slow.fast_lane
    assert fast.fast_frames > 0.2 * FRAMES and slow.fast_frames == 0
    for table in ("trades", "book_top", "book_sync", "features"):
        assert _rows(fast_out, table) == _rows(slow_out, table), table
    assert _rows(fast_out, "trades") and _rows(fast_out, "book_top")
    assert fast.ingest.stats.events == slow.ingest.stats.events
    assert fast.ingest.stats.frames == slow.ingest.stats.frames == FRAMES
    assert fast.ingest.decoder.counts == slow.ingest.decoder.counts
    (key,) = fast.engine.pipelines
    assert fast.engine.pipelines[key].stats == slow.engine.pipelines[key].stats


def test_trades_and_book_rows_travel_in_batches() -> None:
    _, out = _run(_frames())
    kinds = {(type(m).__name__, m.table) for m in out}
    assert ("RowBatch", "trades") in kinds and ("RowBatch", "book_top") in kinds
    assert ("Row", "trades") not in kinds and ("Row", "book_top") not in kinds
    assert ("Row", "book_sync") in kinds  # the other tables stay one row per message


def test_a_batch_goes_out_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "BATCH_ROWS", 100)
    _, out = _run(_frames())
    sizes = [m.num_rows for m in out if isinstance(m, RowBatch) and m.table == "trades"]
    assert max(sizes) == 100 and len(sizes) > 2


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_gathered_rows_go_out_on_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(engine_module, "time", clock)
    frames = _frames()
    bus = MemoryBus()
    out: list[Any] = []
    bus.subscribe(Topics.ROWS, lambda key, message: out.append(message))
    local = LocalPipeline(bus, PipelineOptions(features=False), flush_every_s=0.5)
    for frame in frames[:600]:
        local.on_frame(frame)
    local.tick()
    assert not any(isinstance(m, RowBatch) for m in out)  # not due: the clock stood still
    clock.now += 0.6
    for frame in frames[600:1000]:  # while frames flow, the clock is read every 256 frames
        local.on_frame(frame)
    assert any(isinstance(m, RowBatch) and m.table == "trades" for m in out)
    out.clear()
    for frame in frames[1000:1100]:
        local.on_frame(frame)
    local.tick()
    assert not out  # just flushed
    clock.now += 0.6
    local.tick()  # idle: the tick publishes what was gathered
    assert [m.table for m in out if isinstance(m, RowBatch)]


def test_another_market_data_subscriber_turns_the_lane_off() -> None:
    frames = _frames()
    bus = MemoryBus()
    seen: list[Any] = []
    local = LocalPipeline(bus, PipelineOptions(features=False))
    bus.subscribe(Topics.TRADES, lambda key, event: seen.append(event))
    for frame in frames:
        local.on_frame(frame)
    local.finish()
    assert not local.fast_lane and local.fast_frames == 0
    assert len(seen) == local.ingest.stats.events["Trade"] > 0


def test_a_bus_that_does_not_list_its_subscribers_gets_no_lane() -> None:
    class OtherBus(MemoryBus):
        subscribers = None  # type: ignore[assignment]

    local = LocalPipeline(OtherBus(), PipelineOptions(features=False))
    for frame in _frames()[:500]:
        local.on_frame(frame)
    assert not local.fast_lane and local.fast_frames == 0
    assert local.ingest.stats.frames == 500


def test_without_the_extension_every_frame_is_ingested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module.fastlane, "scan", None)
    frames = _frames()
    local, out = _run(frames)
    _, reference_out = _run(frames, fast_lane=False)
    assert not local.fast_lane and local.fast_frames == 0
    assert _rows(out, "book_top") == _rows(reference_out, "book_top")


def test_simulated_marks_batches_from_then_on() -> None:
    frames = _frames()
    bus = MemoryBus()
    out: list[Any] = []
    bus.subscribe(Topics.ROWS, lambda key, message: out.append(message))
    local = LocalPipeline(bus, PipelineOptions(features=False))
    half = len(frames) // 2
    for frame in frames[:half]:
        local.on_frame(frame)
    for pipe in local.engine.pipelines.values():
        pipe.mark_simulated()
    for frame in frames[half:]:
        local.on_frame(frame)
    local.finish()
    trades = _rows(out, "trades")
    flags = [row.get("simulated") for row in trades]
    first_marked = flags.index(True)
    assert first_marked > 0 and all(f is None for f in flags[:first_marked])
    assert all(flags[first_marked:])
