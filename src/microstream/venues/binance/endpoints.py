"""Binance endpoints as data: URLs, REST paths, stream names and request weights.

One :class:`MarketEndpoints` per market (``"spot"``, ``"usdm"``, ``"coinm"``).
``BINANCE_WS_URL`` / ``BINANCE_REST_URL`` (:class:`microstream.config.Settings`)
override the base URLs, which is how the live client is pointed at the
loopback exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from microstream.config import (
    DEFAULT_COINM_REST_URL,
    DEFAULT_COINM_WS_URL,
    DEFAULT_SPOT_REST_URL,
    DEFAULT_SPOT_WS_URL,
    DEFAULT_USDM_REST_URL,
    DEFAULT_USDM_WS_URL,
    Settings,
)
from microstream.errors import ConfigError
from microstream.events import BINANCE_COINM, BINANCE_SPOT, BINANCE_USDM

MARKETS = ("spot", "usdm", "coinm")


@dataclass(frozen=True)
class MarketEndpoints:
    """Where and how to reach one Binance market.

    Attributes:
        market: ``"spot"``, ``"usdm"`` or ``"coinm"``.
        exchange: the exchange name used in events (``"binance"``, ...).
        ws_url: websocket base URL (the client appends ``/stream?streams=...``).
        rest_url: REST base URL.
        api_prefix: REST path prefix (``/api/v3``, ``/fapi/v1``, ``/dapi/v1``).
        depth_stream: default diff-depth stream suffix (``depth@100ms``).
        weight_limit: request-weight budget per minute (``REQUEST_WEIGHT``).
    """

    market: str
    exchange: str
    ws_url: str
    rest_url: str
    api_prefix: str
    depth_stream: str
    weight_limit: int

    @property
    def depth_path(self) -> str:
        """REST path of the order-book snapshot."""
        return f"{self.api_prefix}/depth"

    @property
    def exchange_info_path(self) -> str:
        """REST path of ``exchangeInfo``."""
        return f"{self.api_prefix}/exchangeInfo"

    @property
    def ping_path(self) -> str:
        """REST path of ``ping``."""
        return f"{self.api_prefix}/ping"

    @property
    def time_path(self) -> str:
        """REST path of the server time."""
        return f"{self.api_prefix}/time"

    def combined_url(self, streams: list[str] | None = None) -> str:
        """The combined-stream URL, with ``streams`` in the query when given."""
        base = self.ws_url.rstrip("/") + "/stream"
        return f"{base}?streams={'/'.join(streams)}" if streams else base


_DEFAULTS = {
    "spot": MarketEndpoints(
        "spot",
        BINANCE_SPOT,
        DEFAULT_SPOT_WS_URL,
        DEFAULT_SPOT_REST_URL,
        "/api/v3",
        "depth@100ms",
        6000,
    ),
    "usdm": MarketEndpoints(
        "usdm",
        BINANCE_USDM,
        DEFAULT_USDM_WS_URL,
        DEFAULT_USDM_REST_URL,
        "/fapi/v1",
        "depth@100ms",
        2400,
    ),
    "coinm": MarketEndpoints(
        "coinm",
        BINANCE_COINM,
        DEFAULT_COINM_WS_URL,
        DEFAULT_COINM_REST_URL,
        "/dapi/v1",
        "depth@100ms",
        2400,
    ),
}


def endpoints(
    market: str,
    ws_url: str | None = None,
    rest_url: str | None = None,
    settings: Settings | None = None,
) -> MarketEndpoints:
    """The endpoints of ``market``; explicit URLs win over ``settings``, then defaults."""
    if market not in _DEFAULTS:
        raise ConfigError(f"unknown market {market!r} (expected one of {', '.join(MARKETS)})")
    base = _DEFAULTS[market]
    ws = ws_url or (settings.binance_ws_url if settings else None) or base.ws_url
    rest = rest_url or (settings.binance_rest_url if settings else None) or base.rest_url
    return replace(base, ws_url=ws.rstrip("/"), rest_url=rest.rstrip("/"))


def market_of_exchange(exchange: str) -> str:
    """``"binance"`` -> ``"spot"``, ``"binance-futures"`` -> ``"usdm"``, ..."""
    for market, value in _DEFAULTS.items():
        if value.exchange == exchange:
            return market
    raise ConfigError(f"unknown Binance exchange {exchange!r}")


def stream_name(symbol: str, kind: str) -> str:
    """Binance's stream name, e.g. ``stream_name("BTCUSDT", "depth@100ms")``."""
    return f"{symbol.lower()}@{kind}"


def default_streams(symbol: str, market: str, depth: str | None = None) -> list[str]:
    """The streams MicroStream needs for one symbol: diff depth, trades, best bid/ask."""
    kind = depth or _DEFAULTS[market].depth_stream
    return [
        stream_name(symbol, kind),
        stream_name(symbol, "trade"),
        stream_name(symbol, "bookTicker"),
    ]


def symbol_of_stream(stream: str) -> str:
    """The upper-case symbol of a stream name (``"btcusdt@trade"`` -> ``"BTCUSDT"``)."""
    return stream.partition("@")[0].upper()


SPOT_DEPTH_LIMITS = (1, 5000)
FUTURES_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def depth_weight(market: str, limit: int) -> int:
    """Request weight of a depth snapshot of ``limit`` levels (Binance's tables)."""
    if market == "spot":
        if limit <= 100:
            return 5
        if limit <= 500:
            return 25
        if limit <= 1000:
            return 50
        return 250
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def valid_depth_limit(market: str, limit: int) -> bool:
    """Whether Binance accepts ``limit`` for the market's depth endpoint."""
    if market == "spot":
        return SPOT_DEPTH_LIMITS[0] <= limit <= SPOT_DEPTH_LIMITS[1]
    return limit in FUTURES_DEPTH_LIMITS


EXCHANGE_INFO_WEIGHT = {"spot": 20, "usdm": 1, "coinm": 1}
