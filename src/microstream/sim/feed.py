"""The market-feed protocol served by the loopback exchange.

A :class:`MarketFeed` is the exchange's side of a market: the stream of
websocket frames it publishes and the REST answers it gives. Two
implementations exist: :class:`microstream.sim.capture_feed.CaptureFeed`
(replays a real Binance capture) and the market simulator. The loopback
exchange (:mod:`microstream.sim.exchange`) serves either one over Binance's
wire protocol, so the live client is tested exactly as it runs against Binance.

Contract, member by member:

``market``
    ``"spot"``, ``"usdm"`` or ``"coinm"``: chooses the REST paths
    (``/api/v3``, ``/fapi/v1``, ``/dapi/v1``) and the depth-chaining rule.
``symbols``
    Upper-case symbols the feed publishes, e.g. ``["BTCUSDT"]``.
``frames()``
    An async iterator of ``(stream_name, data)`` in publication order, where
    ``stream_name`` is Binance's lower-case stream name
    (``"btcusdt@depth@100ms"``, ``"btcusdt@trade"``, ...) and ``data`` the
    event object exactly as Binance puts it in the combined-stream envelope.
    The feed paces itself (sleeps between frames); the exchange only forwards.
    It is iterated once, by one pump task.
``snapshot(symbol, limit)``
    The REST depth answer ``{"lastUpdateId", "bids", "asks"}`` (futures also
    ``"E"``, ``"T"``) consistent with the frames already yielded: its
    ``lastUpdateId`` is the ``u`` of the last depth event yielded for the
    symbol, and its levels are the book after that event (best first, at most
    ``limit`` a side). It raises
    :class:`microstream.errors.SnapshotUnavailableError` while it cannot answer
    yet (the exchange turns that into a retryable HTTP 503), and ``KeyError``
    for an unknown symbol.
``kinds`` (optional)
    The stream kinds the feed publishes (``"trade"``, ``"depth@100ms"``,
    ``"depth"``, ...). A client may subscribe to a diff-depth speed the feed
    does not publish and gets one it does; a feed that declares its kinds
    makes that choice exact from the first frame (otherwise the exchange
    learns the speeds as frames arrive).
``exchange_info()``
    A Binance ``exchangeInfo`` answer for the feed's symbols (at least
    ``symbols[*].symbol``, ``status`` and the ``PRICE_FILTER``/``LOT_SIZE``
    filters).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

Frame = tuple[str, dict[str, Any]]
"""One published frame: ``(stream name, event data)``."""


@runtime_checkable
class MarketFeed(Protocol):
    """The exchange's side of one market (see the module docstring for the contract)."""

    market: str
    symbols: list[str]

    def frames(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Frames in publication order, paced by the feed itself."""
        ...

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """A REST depth answer consistent with the frames already yielded."""
        ...

    def exchange_info(self) -> dict[str, Any]:
        """A Binance ``exchangeInfo`` answer for the feed's symbols."""
        ...
