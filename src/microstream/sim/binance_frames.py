"""Binance spot wire data built from the simulator's book activity.

Everything here produces the ``data`` objects of Binance's combined streams and
REST answers, with the field names, order and formatting of the real spot feed
(prices and quantities as strings with 8 decimals):

- ``trade``: ``e, E, s, t, p, q, T, m, M`` (``m`` is true when the buyer is the
  maker, i.e. the aggressor sold);
- ``aggTrade``: ``e, E, s, a, p, q, f, l, T, m, M`` (one per aggressor and level);
- ``depthUpdate``: ``e, E, s, U, u, b, a``; every book change consumes one update
  id, so ``U`` of an update is the previous ``u`` + 1;
- ``bookTicker``: ``u, s, b, B, a, A`` (spot carries no ``E``);
- partial books ``{lastUpdateId, bids, asks}`` (``depth5/10/20``) and the REST
  depth snapshot of the same shape;
- ``exchangeInfo`` with ``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from microstream.sim.market import BookChange, SimTrade, SymbolSpec, TopChange

WIRE_DECIMALS = 8
"""Binance spot formats every price and quantity with 8 decimals."""

EVENT_LATENCY_MS = 1
"""Event time ``E`` of a trade is its trade time ``T`` plus this."""


def fixed(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` as Binance's 8-decimal string, without floats."""
    scaled = units * 10 ** (WIRE_DECIMALS - decimals)
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**WIRE_DECIMALS)
    return f"{sign}{whole}.{frac:0{WIRE_DECIMALS}d}"


class FrameBuilder:
    """Formats one symbol's simulated activity as Binance spot data objects."""

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.stream_prefix = spec.symbol.lower()

    def price(self, tick: int) -> str:
        """A price in ticks as a wire string."""
        return fixed(tick, self.spec.price_decimals)

    def qty(self, lots: int) -> str:
        """A quantity in lots as a wire string."""
        return fixed(lots, self.spec.lot_decimals)

    def trade(self, fill: SimTrade) -> dict[str, Any]:
        """The ``trade`` event of one fill."""
        return {
            "e": "trade",
            "E": fill.ts_ms + EVENT_LATENCY_MS,
            "s": self.symbol,
            "t": fill.trade_id,
            "p": self.price(fill.tick),
            "q": self.qty(fill.lots),
            "T": fill.ts_ms,
            "m": fill.buyer_is_maker,
            "M": True,
        }

    def agg_trades(self, fills: Sequence[SimTrade]) -> list[tuple[int, dict[str, Any]]]:
        """``(ts_ms, aggTrade)`` per run of fills sharing an aggregate id."""
        out: list[tuple[int, dict[str, Any]]] = []
        start = 0
        for i in range(1, len(fills) + 1):
            if i < len(fills) and fills[i].agg_id == fills[start].agg_id:
                continue
            group = fills[start:i]
            first = group[0]
            out.append((first.ts_ms, self._agg_trade(group)))
            start = i
        return out

    def _agg_trade(self, group: Sequence[SimTrade]) -> dict[str, Any]:
        first, last = group[0], group[-1]
        return {
            "e": "aggTrade",
            "E": first.ts_ms + EVENT_LATENCY_MS,
            "s": self.symbol,
            "a": first.agg_id,
            "p": self.price(first.tick),
            "q": self.qty(sum(f.lots for f in group)),
            "f": first.trade_id,
            "l": last.trade_id,
            "T": first.ts_ms,
            "m": first.buyer_is_maker,
            "M": True,
        }

    def book_ticker(self, top: TopChange) -> dict[str, Any]:
        """The ``bookTicker`` event of a top-of-book change (no ``E`` on spot)."""
        return {
            "u": top.update_id,
            "s": self.symbol,
            "b": self.price(top.bid_tick),
            "B": self.qty(top.bid_lots),
            "a": self.price(top.ask_tick),
            "A": self.qty(top.ask_lots),
        }

    def depth_update(self, event_ms: int, changes: Sequence[BookChange]) -> dict[str, Any]:
        """The ``depthUpdate`` diff of ``changes`` (non-empty, in update-id order).

        Each level appears once with its final quantity; bids best first
        (descending), asks best first (ascending).
        """
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for change in changes:
            (bids if change.is_bid else asks)[change.tick] = change.lots
        return {
            "e": "depthUpdate",
            "E": event_ms,
            "s": self.symbol,
            "U": changes[0].update_id,
            "u": changes[-1].update_id,
            "b": self.levels(sorted(bids.items(), reverse=True)),
            "a": self.levels(sorted(asks.items())),
        }

    def levels(self, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
        """``[[price, qty], ...]`` wire pairs of ``(tick, lots)`` levels."""
        return [[self.price(t), self.qty(n)] for t, n in levels]

    def book(
        self,
        last_update_id: int,
        bids: Sequence[tuple[int, int]],
        asks: Sequence[tuple[int, int]],
    ) -> dict[str, Any]:
        """A partial book or REST snapshot ``{lastUpdateId, bids, asks}`` (levels best first)."""
        return {
            "lastUpdateId": last_update_id,
            "bids": self.levels(bids),
            "asks": self.levels(asks),
        }

    def symbol_info(self) -> dict[str, Any]:
        """This symbol's entry of ``exchangeInfo``."""
        spec = self.spec
        base = spec.symbol[:-4] if spec.symbol.endswith("USDT") else spec.symbol[:-3]
        quote = spec.symbol[len(base) :]
        return {
            "symbol": spec.symbol,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": WIRE_DECIMALS,
            "quoteAsset": quote,
            "quotePrecision": WIRE_DECIMALS,
            "quoteAssetPrecision": WIRE_DECIMALS,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fixed(1, spec.price_decimals),
                    "maxPrice": "1000000.00000000",
                    "tickSize": fixed(1, spec.price_decimals),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fixed(1, spec.lot_decimals),
                    "maxQty": "9000.00000000",
                    "stepSize": fixed(1, spec.lot_decimals),
                },
            ],
            "permissions": ["SPOT"],
        }


def exchange_info(builders: Iterable[FrameBuilder], server_time_ms: int) -> dict[str, Any]:
    """A Binance spot ``exchangeInfo`` answer for the given symbols."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 61000,
            },
        ],
        "exchangeFilters": [],
        "symbols": [b.symbol_info() for b in builders],
    }
