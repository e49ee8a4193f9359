"""A price-level order book keyed by integer ticks.

Prices become integers on a 1e-8 grid (Binance's finest price precision), so a
level is found by integer equality, never by comparing floats. Converting back
divides by the scale, which returns exactly the float Binance's decimal string
parses to.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Iterable

from microstream.errors import InvalidEventError
from microstream.events import Level

PRICE_SCALE = 100_000_000
"""Ticks per unit of price: one tick is 1e-8, Binance's finest price step."""


def to_ticks(price: float) -> int:
    """The integer tick of a positive price (exact for Binance's decimals)."""
    return int(price * PRICE_SCALE + 0.5)


def from_ticks(ticks: int) -> float:
    """The float price of an integer tick."""
    return ticks / PRICE_SCALE


def _tick_levels(levels: Iterable[Level], sign: int) -> list[tuple[int, float]]:
    """Levels as ``(sign * tick, qty)``, validated (a snapshot, so not the hot path)."""
    out = []
    for price, qty in levels:
        if not (0.0 < price < 1e8 and 0.0 <= qty < math.inf):
            raise InvalidEventError(f"level ({price!r}, {qty!r}) is not a valid price/quantity")
        out.append((sign * int(price * PRICE_SCALE + 0.5), qty))
    return out


class BookSide:
    """One side of the book: ``key -> qty`` plus a sorted window of the best keys.

    Keys ascend from the best level (asks: the tick; bids: minus the tick).
    ``window`` holds, sorted, exactly the keys of ``levels`` that are ``<= limit``,
    so updates deep in the book cost one dict operation, while the top of the
    book is always at hand. When deletions shrink the window below
    :data:`MIN_WINDOW`, it is rebuilt from the dict (rare, O(n)).
    """

    __slots__ = ("levels", "limit", "window")

    def __init__(self) -> None:
        self.levels: dict[int, float] = {}
        self.window: list[int] = []
        self.limit = math.inf

    def load(self, keyed: list[tuple[int, float]]) -> None:
        self.levels = {k: q for k, q in keyed if q > 0.0}
        self._rebuild()

    def _rebuild(self) -> None:
        self.window = heapq.nsmallest(WINDOW, self.levels)
        self.limit = self.window[-1] if len(self.levels) > WINDOW else math.inf

    def update(self, levels: Iterable[Level], sign: int) -> None:
        """Apply ``(price, qty)`` levels; raises InvalidEventError on a bad one."""
        side, window, limit = self.levels, self.window, self.limit
        try:
            for price, qty in levels:
                key = sign * int(price * PRICE_SCALE + 0.5)
                if qty == 0.0:
                    if side.pop(key, None) is not None and key <= limit:
                        del window[bisect_left(window, key)]
                elif qty > 0.0 and price > 0.0 and qty != math.inf:
                    if key not in side and key <= limit:
                        insort(window, key)
                    side[key] = qty
                else:
                    raise InvalidEventError(f"level ({price!r}, {qty!r}) is not valid")
        except (ValueError, OverflowError) as exc:
            raise InvalidEventError(f"level price is not a finite number: {exc}") from exc
        if len(window) < MIN_WINDOW and len(side) > len(window):
            self._rebuild()
        elif len(window) > 2 * WINDOW:
            del window[WINDOW:]
            self.limit = window[-1]

    def best(self, depth: int) -> list[int]:
        """The best ``depth`` keys, best first."""
        if depth <= len(self.window):
            return self.window[:depth]
        return heapq.nsmallest(depth, self.levels)


WINDOW = 64
"""Keys kept sorted at the top of each side."""
MIN_WINDOW = 10
"""Below this many window keys (with more levels in the book) the window is rebuilt."""


class OrderBook:
    """Bids and asks keyed by integer ticks.

    Updates deep in the book cost one dict operation; the best levels are kept
    sorted (see :class:`BookSide`). A bad level raises
    :class:`~microstream.errors.InvalidEventError`; the book may then be partly
    updated, which is why the synchronizer discards it on that error.
    """

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids = BookSide()  # keys: -tick
        self._asks = BookSide()  # keys: tick

    def clear(self) -> None:
        """Remove every level."""
        self._bids, self._asks = BookSide(), BookSide()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (from a snapshot)."""
        tb, ta = _tick_levels(bids, -1), _tick_levels(asks, 1)
        self._bids.load(tb)
        self._asks.load(ta)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply absolute level quantities; 0 removes the level.

        Removing a level that is not in the book is normal on Binance and is
        not an error.
        """
        self._bids.update(bids, -1)
        self._asks.update(asks, 1)

    @property
    def is_empty(self) -> bool:
        """True when either side has no level."""
        return not self._bids.levels or not self._asks.levels

    @property
    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bw, aw = self._bids.window, self._asks.window
        return bool(bw and aw and -bw[0] >= aw[0])

    def best_bid(self) -> Level | None:
        """``(price, qty)`` of the best bid, or ``None``."""
        if not self._bids.window:
            return None
        key = self._bids.window[0]
        return (-key / PRICE_SCALE, self._bids.levels[key])

    def best_ask(self) -> Level | None:
        """``(price, qty)`` of the best ask, or ``None``."""
        if not self._asks.window:
            return None
        key = self._asks.window[0]
        return (key / PRICE_SCALE, self._asks.levels[key])

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best first (all of them if ``depth`` is ``None``)."""
        side = self._bids.levels
        keys = sorted(side) if depth is None else self._bids.best(depth)
        return [(-k / PRICE_SCALE, side[k]) for k in keys]

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best first (all of them if ``depth`` is ``None``)."""
        side = self._asks.levels
        keys = sorted(side) if depth is None else self._asks.best(depth)
        return [(k / PRICE_SCALE, side[k]) for k in keys]

    def top(self, depth: int = 5) -> tuple[list[Level], list[Level]]:
        """The first ``depth`` levels of each side, best first."""
        return self.bids(depth), self.asks(depth)

    def __len__(self) -> int:
        return len(self._bids.levels) + len(self._asks.levels)
