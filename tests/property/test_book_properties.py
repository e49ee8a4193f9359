"""The order book and the sync state machine against trivial reference models."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from microstream.book.orderbook import OrderBook
from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.events import BookSnapshot, DepthUpdate, SyncStateChange

# Prices on a 0.01 grid, written as Binance would (two decimals), as floats.
prices = st.integers(min_value=1, max_value=400).map(lambda c: float(f"{60000 + c / 100:.2f}"))
quantities = st.one_of(
    st.just(0.0), st.integers(min_value=1, max_value=10**6).map(lambda n: n / 1000)
)
levels = st.lists(st.tuples(prices, quantities), max_size=12)


class ReferenceBook:
    """A dict keyed by the price's decimal string: obviously right, slow."""

    def __init__(self) -> None:
        self.bids: dict[str, float] = {}
        self.asks: dict[str, float] = {}

    def apply(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        for side, lv in ((self.bids, bids), (self.asks, asks)):
            for price, qty in lv:
                key = f"{price:.2f}"
                if qty == 0.0:
                    side.pop(key, None)
                else:
                    side[key] = qty

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        bids = sorted(((float(k), q) for k, q in self.bids.items()), reverse=True)[:depth]
        asks = sorted((float(k), q) for k, q in self.asks.items())[:depth]
        return bids, asks


@given(st.lists(st.tuples(levels, levels), max_size=40))
@settings(max_examples=300, deadline=None)
def test_book_equals_reference(updates: list[tuple[list, list]]) -> None:
    book, ref = OrderBook(), ReferenceBook()
    for bids, asks in updates:
        book.apply(bids, asks)
        ref.apply(bids, asks)
        assert book.top(10) == ref.top(10)
    assert book.bids() == ref.top(10**6)[0]
    assert book.asks() == ref.top(10**6)[1]


def _diffs(rule: ContinuityRule, start: int, sizes: list[int]) -> list[DepthUpdate]:
    out, prev = [], start
    for i, size in enumerate(sizes):
        first, last = prev + 1, prev + size
        out.append(
            DepthUpdate(
                "binance",
                "X",
                i,
                i,
                first,
                last,
                prev if rule is ContinuityRule.FUTURES else None,
                ((100.0, float(i + 1)),),
                ((101.0, float(i + 1)),),
            )
        )
        prev = last
    return out


@given(
    rule=st.sampled_from(list(ContinuityRule)),
    sizes=st.lists(st.integers(min_value=1, max_value=5), min_size=2, max_size=60),
    snap_at=st.integers(min_value=0, max_value=59),
    drop=st.sets(st.integers(min_value=0, max_value=59), max_size=3),
    duplicate=st.sets(st.integers(min_value=0, max_value=59), max_size=3),
)
@settings(max_examples=400, deadline=None)
def test_sync_applies_exactly_the_continuous_suffix(
    rule: ContinuityRule, sizes: list[int], snap_at: int, drop: set[int], duplicate: set[int]
) -> None:
    """Reference: with a snapshot taken at diff k, a diff is applied iff every
    diff from the bridging one up to it arrived (duplicates are ignored); a
    missing diff is a gap, after which nothing is applied again (no new snapshot
    arrives). Spot bridges with diff k+1 (``U <= id+1 <= u``), futures with diff k
    itself (``U <= id <= u``), as Binance documents."""
    diffs = _diffs(rule, 1000, sizes)
    snap_at = min(snap_at, len(diffs) - 1)
    states: list[SyncStateChange] = []
    applied: list[int] = []
    sync = BookSynchronizer(
        "binance", "X", rule, states.append, on_applied=lambda ev: applied.append(ev.last_update_id)
    )
    snap_id = diffs[snap_at].last_update_id
    snapshot = BookSnapshot("binance", "X", None, 0, snap_id, ((100.0, 1.0),), ((101.0, 1.0),))
    # The snapshot arrives after the first diff of the stream (as in the captures).
    stream = []
    for i, ev in enumerate(diffs):
        if i not in drop:
            stream.append(ev)
            if i in duplicate:
                stream.append(ev)
        if i == 0:
            stream.append(snapshot)
    for item in stream:
        if isinstance(item, BookSnapshot):
            sync.on_snapshot(item)
        else:
            sync.on_depth(item)

    start = snap_at + 1 if rule is ContinuityRule.SPOT else snap_at
    expected: list[int] = []
    for i in range(start, len(diffs)):
        if i in drop:
            break
        expected.append(diffs[i].last_update_id)
    assert applied == expected
    gap_seen = any(s.state in ("gap", "stale_snapshot") for s in states)
    n = len(diffs)
    # A missing diff is detectable once a later diff arrives.
    missing_after_snapshot = any(
        start <= i < n and any(j not in drop for j in range(i + 1, n)) for i in drop
    )
    assert gap_seen == missing_after_snapshot
    if expected and not missing_after_snapshot:
        assert sync.is_synced and sync.last_update_id == expected[-1]
        last_index = next(i for i, d in enumerate(diffs) if d.last_update_id == expected[-1])
        assert sync.book.best_bid() == (100.0, float(last_index + 1))
    if missing_after_snapshot:
        assert not sync.is_synced and sync.book.best_bid() is None


def test_crossed_book_is_discarded_and_resynced() -> None:
    states: list[SyncStateChange] = []
    asked: list[str] = []
    sync = BookSynchronizer("binance", "X", ContinuityRule.SPOT, states.append, asked.append)
    sync.on_snapshot(BookSnapshot("binance", "X", None, 0, 10, ((100.0, 1.0),), ((101.0, 1.0),)))
    ok = DepthUpdate("binance", "X", 1, 1, 10, 11, None, ((100.5, 1.0),), ())
    crossing = DepthUpdate("binance", "X", 2, 2, 12, 12, None, ((102.0, 1.0),), ())
    assert sync.on_depth(ok)
    assert not sync.on_depth(crossing)
    assert [s.state for s in states] == ["buffering", "synced", "crossed", "resync"]
    assert not sync.is_synced and sync.book.best_bid() is None
    assert asked == ["X", "X"]  # initial snapshot, then the resync


def test_snapshot_older_than_buffer_is_refetched() -> None:
    states: list[SyncStateChange] = []
    asked: list[str] = []
    sync = BookSynchronizer("binance", "X", ContinuityRule.SPOT, states.append, asked.append)
    sync.on_depth(DepthUpdate("binance", "X", 1, 1, 50, 60, None, (), ()))
    assert sync.on_snapshot(BookSnapshot("binance", "X", None, 0, 10, (), ())) == []
    assert states[-1].state == "stale_snapshot" and len(asked) == 2
    applied = sync.on_snapshot(
        BookSnapshot("binance", "X", None, 0, 55, ((1.0, 1.0),), ((2.0, 1.0),))
    )
    assert [ev.last_update_id for ev in applied] == [60] and sync.is_synced
