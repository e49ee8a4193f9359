"""Time-rolling windows as differences of running totals.

A rolling sum over ``(t − W, t]`` is ``C(t) − C(t − W)`` where ``C(x)`` is the
running total of every input with time ``<= x``. The streaming engine keeps the
running totals as plain floats (one addition per event, no allocation) and
records them at every grid boundary in a fixed-size ring; a window query reads
two entries. Evaluation happens only at boundaries, and every window length is
a whole number of boundary steps, so ``t − W`` is always a recorded boundary.

Why not a deque with update/revert? Subtracting each leaving value from a
running sum makes the result depend on the history of additions and
subtractions; the difference of two prefix totals is the same float whether it
is computed by the engine event by event or by the batch twin with a cumulative
sum over the same sorted inputs, so streaming and batch agree bit for bit (the
only cost is the usual prefix-sum rounding, relative to the running total).
"""

from __future__ import annotations

from typing import Generic, TypeVar

S = TypeVar("S")


class SnapshotRing(Generic[S]):
    """The last ``capacity`` boundary snapshots, addressed by boundary index.

    ``record(k, snap)`` stores the snapshot of boundary ``k`` (indices increase by
    one per boundary); ``at(k)`` returns it, or ``empty`` when ``k`` lies before the
    first recorded boundary. Querying an index that was overwritten is a bug.

    Args:
        capacity: snapshots kept (the longest window in steps, plus one).
        empty: the snapshot before the first boundary (all totals zero).
    """

    __slots__ = ("_first", "_items", "_last", "capacity", "empty")

    def __init__(self, capacity: int, empty: S) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.empty = empty
        self._items: list[S] = [empty] * capacity
        self._first: int | None = None
        self._last: int | None = None

    def record(self, k: int, snap: S) -> None:
        """Store the snapshot of boundary ``k``."""
        if self._first is None:
            self._first = k
        self._last = k
        self._items[k % self.capacity] = snap

    def at(self, k: int) -> S:
        """The snapshot of boundary ``k`` (``empty`` before the first one)."""
        first = self._first
        if first is None or k < first:
            return self.empty
        last = self._last
        assert last is not None
        if k > last or k <= last - self.capacity:
            raise IndexError(f"boundary {k} is not in the ring ({last - self.capacity}, {last}]")
        return self._items[k % self.capacity]
