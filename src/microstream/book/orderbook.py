"""A price-level order book keyed by integer ticks.

Prices become integers on a 1e-8 grid (Binance's finest price precision), so a
level is found by integer equality, never by comparing floats. Converting back
divides by the scale, which returns exactly the float Binance's decimal string
parses to.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedDict

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


def _tick_levels(levels: Iterable[Level]) -> list[tuple[int, float]]:
    out = []
    for price, qty in levels:
        if not (0.0 < price < 1e8 and 0.0 <= qty < 1e18):
            raise InvalidEventError(f"level ({price!r}, {qty!r}) is not a valid price/quantity")
        out.append((int(price * PRICE_SCALE + 0.5), qty))
    return out


class OrderBook:
    """Bids and asks: tick → quantity, sorted by price.

    Updates are validated in full before the book changes, so a bad level never
    leaves the book half-updated.
    """

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()

    def clear(self) -> None:
        """Remove every level."""
        self._bids.clear()
        self._asks.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (from a snapshot)."""
        tb, ta = _tick_levels(bids), _tick_levels(asks)
        self._bids = SortedDict((t, q) for t, q in tb if q > 0.0)
        self._asks = SortedDict((t, q) for t, q in ta if q > 0.0)

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply absolute level quantities; 0 removes the level.

        Removing a level that is not in the book is normal on Binance and is
        not an error.
        """
        tb, ta = _tick_levels(bids), _tick_levels(asks)
        for side, levels in ((self._bids, tb), (self._asks, ta)):
            for tick, qty in levels:
                if qty == 0.0:
                    side.pop(tick, None)
                else:
                    side[tick] = qty

    @property
    def is_empty(self) -> bool:
        """True when either side has no level."""
        return not self._bids or not self._asks

    @property
    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        return bool(self._bids and self._asks and self._bids.keys()[-1] >= self._asks.keys()[0])

    def best_bid(self) -> Level | None:
        """``(price, qty)`` of the best bid, or ``None``."""
        if not self._bids:
            return None
        tick, qty = self._bids.peekitem(-1)
        return (tick / PRICE_SCALE, qty)

    def best_ask(self) -> Level | None:
        """``(price, qty)`` of the best ask, or ``None``."""
        if not self._asks:
            return None
        tick, qty = self._asks.peekitem(0)
        return (tick / PRICE_SCALE, qty)

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best first (all of them if ``depth`` is ``None``)."""
        keys = self._bids.keys()
        n = len(keys) if depth is None else min(depth, len(keys))
        side = self._bids
        return [(keys[-1 - i] / PRICE_SCALE, side[keys[-1 - i]]) for i in range(n)]

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best first (all of them if ``depth`` is ``None``)."""
        keys = self._asks.keys()
        n = len(keys) if depth is None else min(depth, len(keys))
        side = self._asks
        return [(keys[i] / PRICE_SCALE, side[keys[i]]) for i in range(n)]

    def top(self, depth: int = 5) -> tuple[list[Level], list[Level]]:
        """The first ``depth`` levels of each side, best first."""
        return self.bids(depth), self.asks(depth)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)
