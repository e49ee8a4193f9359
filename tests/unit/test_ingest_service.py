"""Ingest service: snapshots from its own book, on request and periodically."""

from __future__ import annotations

import itertools
from typing import Any

from conftest import require_shared
from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.bus.codec import SnapshotRequest
from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Topics
from microstream.capture import read_captures
from microstream.events import BookSnapshot, DepthUpdate
from microstream.frames import RawFrame
from microstream.services.ingest import IngestService

EX = "binance-futures"
KEY = f"{EX}:BTCUSDT"


def frames(count: int) -> list[RawFrame]:
    path = require_shared("binance/usdm/btcusdt_20240718.gz")
    return list(itertools.islice(read_captures([path]), count))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(**kwargs: Any) -> tuple[MemoryBus, IngestService, list[BookSnapshot], list[DepthUpdate]]:
    bus = MemoryBus()
    service = IngestService(bus, **kwargs)
    snapshots: list[BookSnapshot] = []
    diffs: list[DepthUpdate] = []
    bus.subscribe(Topics.SNAPSHOTS, lambda key, m: snapshots.append(m))
    bus.subscribe(Topics.DEPTH, lambda key, m: diffs.append(m))
    return bus, service, snapshots, diffs


def test_request_is_answered_with_a_snapshot_that_resyncs_a_late_engine() -> None:
    bus, service, snapshots, diffs = make(snapshot_every_s=0)
    data = frames(3000)
    for frame in data[:1500]:
        service.on_frame(frame)
    from_capture = len(snapshots)
    assert from_capture == 1  # the capture's own snapshot line
    joined_at = len(diffs)
    bus.publish(Topics.CONTROL, KEY, SnapshotRequest(EX, "BTCUSDT", "rebalance", "e2"))
    for frame in data[1500:]:
        service.on_frame(frame)
    assert service.stats.snapshots_answered == 1
    answer = snapshots[from_capture]
    # the answer follows the last published diff: its id is that diff's u
    assert answer.last_update_id == diffs[joined_at - 1].last_update_id

    # an engine that saw only the diffs from the join on, plus the answer, has the right book
    reference = BookSynchronizer(EX, "BTCUSDT", ContinuityRule.FUTURES, on_state=lambda c: None)
    late = BookSynchronizer(EX, "BTCUSDT", ContinuityRule.FUTURES, on_state=lambda c: None)
    reference.on_snapshot(snapshots[0])
    for diff in diffs:
        reference.on_depth(diff)
    for diff in diffs[joined_at - 5 : joined_at]:
        late.on_depth(diff)
    late.on_snapshot(answer)
    for diff in diffs[joined_at:]:
        late.on_depth(diff)
    assert late.is_synced and reference.is_synced
    assert late.book.bids(20) == reference.book.bids(20)
    assert late.book.asks(20) == reference.book.asks(20)


def test_request_before_the_book_is_synced_waits_and_is_answered_later() -> None:
    bus, service, snapshots, _ = make(snapshot_every_s=0, symbols={"BTCUSDT"}, exchange=EX)
    asked: list[tuple[str, str]] = []
    service.source_snapshot = lambda exchange, symbol: asked.append((exchange, symbol))
    data = frames(400)
    bus.publish(Topics.CONTROL, KEY, SnapshotRequest(EX, "BTCUSDT", "start"))
    service.service()
    assert service.stats.pending == {KEY}
    assert (EX, "BTCUSDT") in asked  # the source is asked (live: REST)
    for frame in data:
        service.on_frame(frame)
    assert service.stats.pending == set()
    assert service.stats.snapshots_answered == 1
    assert len(snapshots) == 2  # capture's + the answer


def test_requests_for_other_symbols_are_ignored_and_snapshots_repeat_periodically() -> None:
    clock = Clock()
    bus, service, snapshots, _ = make(snapshot_every_s=30.0, symbols={"BTCUSDT"}, clock=clock)
    data = frames(1200)
    for frame in data[:600]:
        service.on_frame(frame)
    bus.publish(Topics.CONTROL, f"{EX}:ETHUSDT", SnapshotRequest(EX, "ETHUSDT", "x"))
    clock.now = 31.0
    for frame in data[600:]:
        service.on_frame(frame)
    assert service.stats.requests_ignored == 1
    assert service.stats.snapshots_periodic == 1
    assert len(snapshots) == 2


class ListRecorder:
    def __init__(self) -> None:
        self.frames: list[RawFrame] = []
        self.closed = False

    def write(self, frame: RawFrame) -> None:
        self.frames.append(frame)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def test_every_frame_is_recorded() -> None:
    recorder = ListRecorder()
    _, service, _, _ = make(snapshot_every_s=0, recorder=recorder)
    data = frames(50)
    for frame in data:
        service.on_frame(frame)
    service.close()
    assert recorder.frames == data and recorder.closed


def test_a_replay_ingest_answers_only_for_symbols_it_has_seen() -> None:
    bus, service, snapshots, _ = make(snapshot_every_s=0)
    for frame in frames(1000):
        service.on_frame(frame)
    bus.publish(Topics.CONTROL, "binance:BTCUSDT", SnapshotRequest("binance", "BTCUSDT", "x"))
    bus.publish(Topics.CONTROL, KEY, SnapshotRequest(EX, "BTCUSDT", "x"))
    service.service()
    assert service.stats.requests_ignored == 1  # spot BTCUSDT: not this ingest's
    assert service.stats.snapshots_answered == 1
    assert service.stats.pending == set()
    assert len(snapshots) == 2  # the capture's and the answer


def test_only_the_served_symbols_are_published() -> None:
    paths = [require_shared(f"binance/usdm/{s}_20240718.gz") for s in ("btcusdt", "ethusdt")]
    data = list(itertools.islice(read_captures(paths), 2000))
    bus = MemoryBus()
    service = IngestService(bus, symbols={"ETHUSDT"}, snapshot_every_s=0)
    published: list[Any] = []
    for topic in (Topics.TRADES, Topics.DEPTH, Topics.SNAPSHOTS, Topics.TICKERS):
        bus.subscribe(topic, lambda key, m: published.append(m))
    for frame in data:
        service.on_frame(frame)
    assert published and {m.symbol for m in published} == {"ETHUSDT"}
    assert service.skipped > 0
