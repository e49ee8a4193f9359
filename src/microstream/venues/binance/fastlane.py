"""The compiled reader of Binance's high-rate frames (trades, best bid/ask, depth diffs).

:func:`scan` reads a ``<symbol>@trade``, ``<symbol>@bookTicker`` or
``<symbol>@depth`` frame in C and returns its event without the generic
decoder's intermediate objects: a :class:`~microstream.events.Trade`, a
:class:`~microstream.events.BestBidAsk`, or ``(DepthUpdate, bids, asks)`` where the
diff's levels are packed doubles that the compiled book applies directly
(:meth:`~microstream.book.orderbook.OrderBook.apply_packed`) and the event's
own ``bids``/``asks`` are empty (``microstream.book.orderbook.unpack_levels``
turns packed levels into tuples).

Every other frame, and any frame of those streams that is not in Binance's
plain layout or whose values are not valid, gives ``None``: the caller then
uses the reference parser (:func:`~microstream.venues.binance.parse.parse_frame`),
which accepts, ignores or rejects it and counts why. On every frame it accepts,
:func:`scan` gives exactly what the reference parser gives (tested frame by
frame on every capture, and on mutated frames).

:data:`scan` is ``None`` when the extension is not built (no C compiler at
install time); the pipeline then parses every frame with the reference parser.
"""

from __future__ import annotations

from collections.abc import Callable

from microstream.events import BestBidAsk, DepthUpdate, Trade

PackedLevels = bytes
"""Levels as native float64 pairs ``price, qty, price, qty, ...``."""

ScanResult = Trade | BestBidAsk | tuple[DepthUpdate, PackedLevels, PackedLevels] | None

scan: Callable[[bytes, str, int], ScanResult] | None
"""The compiled reader; ``None`` when the extension is not built."""
try:
    from microstream.venues.binance._cscan import configure as _configure
    from microstream.venues.binance._cscan import scan as _scan
except ImportError:  # not built: every frame goes through the reference parser
    scan = None
else:
    _configure(Trade, DepthUpdate, BestBidAsk, "buy", "sell")
    scan = _scan
