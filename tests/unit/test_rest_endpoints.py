"""Binance endpoints as data: URLs, overrides, stream names, request weights."""

from __future__ import annotations

import pytest

from microstream.config import Settings
from microstream.errors import ConfigError
from microstream.venues.binance.endpoints import (
    default_streams,
    depth_weight,
    endpoints,
    market_of_exchange,
    symbol_of_stream,
    valid_depth_limit,
)


def test_defaults_per_market() -> None:
    spot, usdm, coinm = endpoints("spot"), endpoints("usdm"), endpoints("coinm")
    assert spot.depth_path == "/api/v3/depth" and spot.rest_url == "https://api.binance.com"
    assert usdm.depth_path == "/fapi/v1/depth" and usdm.ws_url == "wss://fstream.binance.com"
    assert coinm.exchange_info_path == "/dapi/v1/exchangeInfo"
    assert (spot.weight_limit, usdm.weight_limit) == (6000, 2400)
    assert [market_of_exchange(e.exchange) for e in (spot, usdm, coinm)] == [
        "spot",
        "usdm",
        "coinm",
    ]


def test_overrides_settings_then_arguments() -> None:
    settings = Settings(binance_ws_url="ws://127.0.0.1:1/", binance_rest_url="http://127.0.0.1:1")
    from_settings = endpoints("spot", settings=settings)
    assert from_settings.ws_url == "ws://127.0.0.1:1"
    assert (
        from_settings.combined_url(["a@trade", "b@trade"])
        == "ws://127.0.0.1:1/stream?streams=a@trade/b@trade"
    )
    explicit = endpoints("spot", ws_url="ws://h:2", settings=settings)
    assert explicit.ws_url == "ws://h:2" and explicit.rest_url == "http://127.0.0.1:1"
    with pytest.raises(ConfigError):
        endpoints("options")


def test_stream_names() -> None:
    assert default_streams("BTCUSDT", "spot") == [
        "btcusdt@depth@100ms",
        "btcusdt@trade",
        "btcusdt@bookTicker",
    ]
    assert default_streams("BTCUSDT", "usdm", depth="depth@0ms")[0] == "btcusdt@depth@0ms"
    assert symbol_of_stream("btcusd_perp@depth@0ms") == "BTCUSD_PERP"


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250)],
)
def test_spot_depth_weights(limit: int, weight: int) -> None:
    assert depth_weight("spot", limit) == weight


def test_futures_depth_weights_and_limits() -> None:
    assert [depth_weight("usdm", n) for n in (5, 50, 100, 500, 1000)] == [2, 2, 5, 10, 20]
    assert valid_depth_limit("usdm", 1000) and not valid_depth_limit("usdm", 999)
    assert valid_depth_limit("spot", 5000) and not valid_depth_limit("spot", 5001)
