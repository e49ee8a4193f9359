"""A diff with packed levels (the fast lane's form) is processed exactly as with tuples."""

from __future__ import annotations

import struct

from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.events import BookSnapshot, DepthUpdate, Level, SyncStateChange


def _diff(first: int, last: int, bids: tuple[Level, ...], asks: tuple[Level, ...]) -> DepthUpdate:
    return DepthUpdate("binance", "BTCUSDT", first, first, first, last, None, bids, asks)


def _pack(levels: tuple[Level, ...]) -> bytes:
    return b"".join(struct.pack("=dd", p, q) for p, q in levels)


def _run(packed: bool) -> tuple[BookSynchronizer, list[str]]:
    states: list[SyncStateChange] = []
    sync = BookSynchronizer("binance", "BTCUSDT", ContinuityRule.SPOT, states.append)
    diffs = [
        _diff(10, 11, ((100.0, 1.0),), ((101.0, 2.0),)),  # buffered before the snapshot
        _diff(12, 13, ((99.5, 3.0),), ()),
        _diff(15, 16, ((100.0, 0.0),), ((101.5, 1.0),)),  # a gap: kept for the resync
        _diff(17, 18, ((99.0, 4.0),), ((101.0, 0.0),)),
    ]
    snapshots = {
        0: BookSnapshot("binance", "BTCUSDT", None, 0, 10, ((99.9, 1.0),), ((101.2, 1.0),))
    }
    snapshots[3] = BookSnapshot("binance", "BTCUSDT", None, 0, 15, ((99.8, 2.0),), ((101.3, 1.0),))
    for i, diff in enumerate(diffs):
        if packed:
            empty = DepthUpdate(*(getattr(diff, f) for f in diff.__struct_fields__[:7]), (), ())
            sync.on_depth(empty, (_pack(diff.bids), _pack(diff.asks)))
        else:
            sync.on_depth(diff)
        if i in snapshots:
            sync.on_snapshot(snapshots[i])
    return sync, [s.state for s in states]


def test_packed_diffs_give_the_same_states_and_book_as_tuples() -> None:
    reference, reference_states = _run(packed=False)
    fast, fast_states = _run(packed=True)
    assert "gap" in reference_states and reference.is_synced
    assert fast_states == reference_states
    assert fast.book.bids() == reference.book.bids()
    assert fast.book.asks() == reference.book.asks()
    assert (fast.gaps, fast.applied, fast.last_update_id) == (
        reference.gaps,
        reference.applied,
        reference.last_update_id,
    )
