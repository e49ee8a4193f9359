"""A price-level order book keyed by integer ticks.

Prices become integers on a 1e-8 grid (Binance's finest price precision), so a
level is found by integer equality, never by comparing floats. Converting back
divides by the scale, which returns exactly the float Binance's decimal string
parses to.

Each side's hot path is compiled (``_cside.c``, built by ``make install``);
:class:`PySide` is its pure-Python reference and fallback.
"""

from __future__ import annotations

import heapq
import logging
import math
import struct
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Sequence

from microstream.errors import InvalidEventError
from microstream.events import Level

log = logging.getLogger(__name__)

PRICE_SCALE = 100_000_000
"""Ticks per unit of price: one tick is 1e-8, Binance's finest price step."""


def to_ticks(price: float) -> int:
    """The integer tick of a positive price (exact for Binance's decimals)."""
    return int(price * PRICE_SCALE + 0.5)


MAX_PRICE = 1e10
"""Prices must be below this: ``price * PRICE_SCALE`` then fits a 64-bit integer."""


class PySide:
    """One side of the book in pure Python: ``key -> qty`` plus a sorted window.

    This is the reference for the compiled :class:`Side` (``_cside.c``) and
    the fallback when the extension is not built; both have this interface and
    the property tests hold them to the same results.

    Keys ascend from the best level: ``sign * tick`` (asks: ``sign = 1``, bids:
    ``-1``). ``window`` holds, sorted, exactly the keys of ``levels_by_key`` that are
    ``<= limit``, so updates deep in the book cost one dict operation while
    the top of the book is always at hand. When deletions shrink the window
    below :data:`MIN_WINDOW`, it is rebuilt from the dict (rare, O(n)).
    Invalid levels raise ``ValueError`` (the side may be partly updated).
    """

    __slots__ = ("levels_by_key", "limit", "sign", "window")

    def __init__(self, sign: int) -> None:
        if sign not in (1, -1):
            raise ValueError("sign must be 1 (asks) or -1 (bids)")
        self.sign = sign
        self.levels_by_key: dict[int, float] = {}
        self.window: list[int] = []
        self.limit = math.inf

    def load(self, levels: Iterable[Level]) -> None:
        """Replace every level (a snapshot); zero quantities are skipped."""
        keyed = {}
        for price, qty in levels:
            if not (0.0 < price < MAX_PRICE and 0.0 <= qty < math.inf):
                raise ValueError(f"level ({price!r}, {qty!r}) is not valid")
            keyed[self.sign * to_ticks(price)] = qty
        self.levels_by_key = {k: q for k, q in keyed.items() if q > 0.0}
        self._rebuild()

    def clear(self) -> None:
        """Remove every level."""
        self.levels_by_key = {}
        self._rebuild()

    def _rebuild(self) -> None:
        self.window = heapq.nsmallest(WINDOW, self.levels_by_key)
        self.limit = float(self.window[-1]) if len(self.levels_by_key) > WINDOW else math.inf

    def update_packed(self, packed: bytes) -> None:
        """:meth:`update` for levels packed as native ``(price, qty)`` doubles."""
        self.update(unpack_levels(packed))

    def update(self, levels: Iterable[Level]) -> None:
        """Apply absolute ``(price, qty)`` levels; 0 removes the level."""
        side, window, limit, sign = self.levels_by_key, self.window, self.limit, self.sign
        for price, qty in levels:
            if not (0.0 < price < MAX_PRICE and 0.0 <= qty < math.inf):
                raise ValueError(f"level ({price!r}, {qty!r}) is not valid")
            key = sign * to_ticks(price)
            if qty == 0.0:
                if side.pop(key, None) is not None and key <= limit:
                    del window[bisect_left(window, key)]
            else:
                if key not in side and key <= limit:
                    insort(window, key)
                side[key] = qty
        if len(window) < MIN_WINDOW and len(side) > len(window):
            self._rebuild()
        elif len(window) > 2 * WINDOW:
            del window[WINDOW:]
            self.limit = float(window[-1])

    def _keys(self, depth: int | None) -> list[int]:
        if depth is None:
            return sorted(self.levels_by_key)
        if depth <= len(self.window):
            return self.window[:depth]
        return heapq.nsmallest(depth, self.levels_by_key)

    def levels(self, depth: int | None = None) -> list[Level]:
        """``[(price, qty)]`` best first (every level when ``depth`` is None)."""
        side, sign = self.levels_by_key, self.sign
        return [
            (sign * k / PRICE_SCALE, side[k])
            for k in self._keys(max(depth, 0) if depth is not None else None)
        ]

    def top(self, depth: int) -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
        """(prices, quantities) of exactly ``depth`` levels, padded with None."""
        levels = self.levels(depth)
        fill = (None,) * (depth - len(levels))
        return tuple(p for p, _ in levels) + fill, tuple(q for _, q in levels) + fill

    def best(self) -> Level | None:
        """``(price, qty)`` of the best level, or None."""
        if not self.window:
            return None
        key = self.window[0]
        return (self.sign * key / PRICE_SCALE, self.levels_by_key[key])

    def best_tick(self) -> int | None:
        """The integer tick of the best level, or None."""
        return self.sign * self.window[0] if self.window else None

    def __len__(self) -> int:
        return len(self.levels_by_key)


WINDOW = 64
"""Keys kept sorted at the top of each side (pure-Python side)."""
MIN_WINDOW = 10
"""Below this many window keys (with more levels in the book) the window is rebuilt."""


def unpack_levels(packed: bytes) -> tuple[Level, ...]:
    """Levels packed as native float64 ``price, qty, price, qty, ...`` as ``(price, qty)`` tuples."""
    if len(packed) % 16:
        raise ValueError("packed levels must be bytes of (price, qty) doubles")
    return tuple(struct.iter_unpack("=dd", packed))  # type: ignore[misc]


def py_first_bad_level(levels: Sequence[Level], allow_zero: bool) -> int:
    """Index of the first invalid ``(price, qty)`` level, or -1 (pure-Python reference).

    Valid: a tuple of two floats, ``0 < price < inf``, ``0 <= qty < inf``, and
    ``qty > 0`` unless ``allow_zero``. NaN fails every check.
    """
    for i, level in enumerate(levels):
        if type(level) is not tuple or len(level) != 2:
            return i
        price, qty = level
        if type(price) is not float or type(qty) is not float:
            return i
        if not (0.0 < price < math.inf and 0.0 <= qty < math.inf) or (
            not allow_zero and qty == 0.0
        ):
            return i
    return -1


SideType = type[PySide]
FirstBadLevel = Callable[[Sequence[Level], bool], int]

try:
    from microstream.book._cside import Side as _CompiledSide
    from microstream.book._cside import first_bad_level as _compiled_first_bad_level
except ImportError:  # not built: the pure-Python side, with a warning
    COMPILED = False
    Side: SideType = PySide
    first_bad_level: FirstBadLevel = py_first_bad_level
    log.warning(
        "the compiled order book (microstream.book._cside) is not built; using the slower "
        "pure-Python one. Run `make install` (needs a C compiler) to build it."
    )
else:
    COMPILED = True
    Side = _CompiledSide  # type: ignore[assignment]
    first_bad_level = _compiled_first_bad_level


class OrderBook:
    """Bids and asks keyed by integer ticks.

    Each side is a :data:`Side` (compiled when built, else :class:`PySide`).
    A bad level raises :class:`~microstream.errors.InvalidEventError`; the book
    may then be partly updated, which is why the synchronizer discards it on
    that error.
    """

    __slots__ = ("_asks", "_bids")

    def __init__(self) -> None:
        self._bids = Side(-1)
        self._asks = Side(1)

    def clear(self) -> None:
        """Remove every level."""
        self._bids.clear()
        self._asks.clear()

    def load(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Replace the whole book (from a snapshot)."""
        try:
            self._bids.load(bids)
            self._asks.load(asks)
        except (ValueError, TypeError) as exc:
            self.clear()
            raise InvalidEventError(f"snapshot {exc}") from exc

    def apply(self, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        """Apply absolute level quantities; 0 removes the level.

        Removing a level that is not in the book is normal on Binance and is
        not an error.
        """
        try:
            self._bids.update(bids)
            self._asks.update(asks)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidEventError(str(exc)) from exc

    def apply_packed(self, bids: bytes, asks: bytes) -> None:
        """:meth:`apply` for levels packed as native ``(price, qty)`` doubles (the fast lane)."""
        try:
            self._bids.update_packed(bids)
            self._asks.update_packed(asks)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidEventError(str(exc)) from exc

    @property
    def is_empty(self) -> bool:
        """True when either side has no level."""
        return not len(self._bids) or not len(self._asks)

    @property
    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bid, ask = self._bids.best_tick(), self._asks.best_tick()
        return bid is not None and ask is not None and bid >= ask

    def best_bid(self) -> Level | None:
        """``(price, qty)`` of the best bid, or ``None``."""
        return self._bids.best()

    def best_ask(self) -> Level | None:
        """``(price, qty)`` of the best ask, or ``None``."""
        return self._asks.best()

    def bids(self, depth: int | None = None) -> list[Level]:
        """Bid levels, best first (all of them if ``depth`` is ``None``)."""
        return self._bids.levels(depth)

    def asks(self, depth: int | None = None) -> list[Level]:
        """Ask levels, best first (all of them if ``depth`` is ``None``)."""
        return self._asks.levels(depth)

    def top(self, depth: int = 5) -> tuple[list[Level], list[Level]]:
        """The first ``depth`` levels of each side, best first."""
        return self._bids.levels(depth), self._asks.levels(depth)

    def top_padded(self, depth: int = 5) -> tuple[tuple[float | None, ...], ...]:
        """``(bid_px, bid_qty, ask_px, ask_qty)``, each exactly ``depth`` long, None-padded."""
        bid_px, bid_qty = self._bids.top(depth)
        ask_px, ask_qty = self._asks.top(depth)
        return bid_px, bid_qty, ask_px, ask_qty

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)
