"""The compiled frame reader gives exactly what the reference parser gives, or defers.

``scan`` may return ``None`` for any frame (the reference parser then decides),
but whatever it does return must equal ``parse_frame``'s event for that frame:
checked on every trade and depth frame of every Binance capture, and on frames
mutated to be invalid, oddly shaped or unusual.
"""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from conftest import require_shared
from microstream.book.orderbook import unpack_levels
from microstream.capture import read_captures
from microstream.errors import ParseError
from microstream.events import BestBidAsk, DepthUpdate, Trade
from microstream.frames import RawFrame
from microstream.venues.binance import fastlane
from microstream.venues.binance.parse import EXCHANGE_BY_MARKET, parse_frame

CAPTURES = [
    "binance/spot/btcusdt_20240808.gz",
    "binance/spot/btcusdt_20240809.gz",
    "binance/usdm/btcusdt_20230404.dat.gz",
    "binance/usdm/btcusdt_20240718.gz",
    "binance/usdm/ethusdt_20240719.gz",
    "binance/cm/btcusd_perp_20240808.gz",
]


def test_the_extension_is_built() -> None:
    assert fastlane.scan is not None, "run `make install` (needs a C compiler) to build _cscan"


def _reference(frame: RawFrame) -> list[object] | None:
    try:
        return list(parse_frame(frame))
    except ParseError:  # InvalidEventError and UnknownEventError are ParseErrors too
        return None


def _check(frame: RawFrame) -> str:
    """'fast' if scan accepted the frame (and agreed), 'deferred' if it gave None."""
    assert fastlane.scan is not None
    got = fastlane.scan(frame.payload, EXCHANGE_BY_MARKET[frame.market], frame.ts_recv)
    if got is None:
        return "deferred"
    expected = _reference(frame)
    if isinstance(got, tuple):
        event, bids, asks = got
        assert event.bids == () and event.asks == ()
        got_event: object = msgspec.structs.replace(
            event, bids=unpack_levels(bids), asks=unpack_levels(asks)
        )
    else:
        got_event = got
    assert expected == [got_event], frame.payload[:200]
    return "fast"


@pytest.mark.parametrize("relative", CAPTURES)
def test_scan_equals_the_reference_parser_on_every_capture_frame(relative: str) -> None:
    path: Path = require_shared(relative)
    outcomes = {"fast": 0, "deferred": 0}
    kinds = {"trade": 0, "depth": 0, "ticker": 0}
    for frame in read_captures([path]):
        head = frame.payload[:60]
        if b"@trade" in head or b"@depth@" in head or b'@depth"' in head or b"@bookT" in head:
            outcome = _check(frame)
            outcomes[outcome] += 1
            if outcome == "fast":
                kind = "trade" if b"@trade" in head else "ticker" if b"@bookT" in head else "depth"
                kinds[kind] += 1
    # the lane must actually take the common frames, not defer everything
    assert outcomes["fast"] > 0.99 * (outcomes["fast"] + outcomes["deferred"]), outcomes
    assert min(kinds.values()) > 500, kinds


SPOT_TRADE = (
    b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723075200012,"s":"BTCUSDT",'
    b'"t":3723733432,"p":"61737.63000000","q":"0.00012000","T":1723075200011,"m":true,"M":true}}'
)
SPOT_DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723075200012,'
    b'"s":"BTCUSDT","U":100,"u":102,"b":[["61737.63000000","0.00012000"],'
    b'["61737.62000000","0.00000000"]],"a":[["61737.64000000","1.50000000"]]}}'
)
SPOT_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT",'
    b'"b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
FUT_TICKER = (
    b'{"stream":"btcusd_perp@bookTicker","data":{"u":1007198632021,"e":"bookTicker",'
    b'"s":"BTCUSD_PERP","ps":"BTCUSD","b":"61804.7","B":"35","a":"61804.8","A":"1645",'
    b'"T":1723161257465,"E":1723161257476}}'
)
FUT_DEPTH = (
    b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723075200012,'
    b'"T":1723075200010,"s":"BTCUSDT","U":100,"u":102,"pu":99,"b":[["61737.6","1.234"]],"a":[]}}'
)

MUTATIONS: list[tuple[bytes, bytes]] = [
    (b'"p":"61737.63000000"', b'"p":"-61737.63"'),
    (b'"p":"61737.63000000"', b'"p":"0.00000000"'),
    (b'"p":"61737.63000000"', b'"p":"NaN"'),
    (b'"p":"61737.63000000"', b'"p":"1e5"'),
    (b'"p":"61737.63000000"', b'"p":"061737.63"'),
    (b'"p":"61737.63000000"', b'"p":"61737.6300000000000000000001"'),
    (b'"p":"61737.63000000"', b'"p":61737.63'),
    (b'"p":"61737.63000000"', b'"p":"1."'),
    (b'"q":"0.00012000"', b'"q":"0"'),
    (b'"q":"0.00012000"', b'"q":"abc"'),
    (b'"m":true', b'"m":"true"'),
    (b'"m":true', b'"m":1'),
    (b'"t":3723733432', b'"t":"3723733432"'),
    (b'"t":3723733432', b'"t":-1'),
    (b'"t":3723733432', b'"t":3723733432,"t":5'),
    (b'"T":1723075200011', b'"T":1723075200011.5'),
    (b'"T":1723075200011', b""),
    (b',"M":true', b',"X":"INSURANCE_FUND"'),
    (b',"M":true', b',"X":"MARKET"'),
    (b',"M":true', b',"X":null'),
    (b'"s":"BTCUSDT"', b'"s":"BTC\\u0055SDT"'),
    (b"@trade", b"@aggTrade"),
    (b"@trade", b"@trades"),
    (b"}}", b"}} "),
    (b"}}", b'},"x":1}'),
    (b"}}", b"}"),
    (b'{"stream"', b' {"stream"'),
    (b'"U":100', b'"U":103'),
    (b'"u":102', b'"u":99'),
    (b'"pu":99', b'"pu":null'),
    (b'"pu":99', b'"pu":-1'),
    (b'["61737.62000000","0.00000000"]', b'["61737.62000000","-1"]'),
    (b'["61737.62000000","0.00000000"]', b'["61737.62000000"]'),
    (b'["61737.62000000","0.00000000"]', b'["99999999999","1"]'),
    (b'"a":[["61737.64000000","1.50000000"]]', b'"a":[]'),
    (b'"a":[["61737.64000000","1.50000000"]]', b'"a":null'),
    (b'"b":[["61737.6","1.234"]]', b'"b":[[61737.6,1.234]]'),
    (b"@depth@100ms", b"@depth"),
    (b"@depth@100ms", b"@depth5@100ms"),
    (b"@depth@100ms", b"@depthx"),
    (b'"e":"depthUpdate",', b""),
    (b'"E":1723075200012', b'"E":99999999999999999'),
    (b'"b":"61837.63000000"', b'"b":"61837.64000000"'),
    (b'"b":"61837.63000000"', b'"b":"61837.65000000"'),
    (b'"B":"3.78826000"', b'"B":"0"'),
    (b'"B":"3.78826000"', b'"B":"-3"'),
    (b'"A":"1.54698000"', b""),
    (b'"a":"61804.8"', b'"a":"61804.7"'),
    (b'"A":"1645"', b'"A":null'),
    (b'"E":1723161257476', b'"E":null'),
    (b',"E":1723161257476', b""),
    (b'"ps":"BTCUSD",', b'"ps":{"x":1},'),
    (b'"u":50093239212', b'"u":"50093239212"'),
    (b"@bookTicker", b"@bookTickers"),
]


@pytest.mark.parametrize(
    "base",
    [SPOT_TRADE, SPOT_DEPTH, FUT_DEPTH, SPOT_TICKER, FUT_TICKER],
    ids=["spot-trade", "spot-depth", "usdm-depth", "spot-ticker", "coinm-ticker"],
)
@pytest.mark.parametrize("old,new", MUTATIONS)
def test_mutated_frames_are_read_exactly_or_deferred(base: bytes, old: bytes, new: bytes) -> None:
    payload = base.replace(old, new, 1)
    for market in ("spot", "usdm"):
        _check(RawFrame(7, payload, market))


def test_the_plain_frames_are_taken_by_the_lane() -> None:
    for payload in (SPOT_TRADE, SPOT_DEPTH, FUT_DEPTH, SPOT_TICKER, FUT_TICKER):
        assert _check(RawFrame(7, payload, "spot")) == "fast"
    assert fastlane.scan is not None
    ticker = fastlane.scan(SPOT_TICKER, "binance", 7)
    assert isinstance(ticker, BestBidAsk) and ticker.ts_event is None and ticker.bid_qty == 3.78826
    got = fastlane.scan(FUT_DEPTH, "binance-futures", 7)
    assert isinstance(got, tuple)
    assert isinstance(got[0], DepthUpdate) and got[0].prev_update_id == 99
    trade = fastlane.scan(SPOT_TRADE, "binance", 7)
    assert isinstance(trade, Trade) and trade.side == "sell" and trade.qty == 0.00012


def test_random_byte_damage_never_gives_a_different_event() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        base = rng.choice([SPOT_TRADE, SPOT_DEPTH, FUT_DEPTH, SPOT_TICKER, FUT_TICKER])
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.choice(b'0123456789.,:"[]{}-e ')
        _check(RawFrame(7, bytes(data), "spot"))


def test_random_decimals_round_exactly_like_the_reference() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        whole = str(rng.randint(1, 10 ** rng.randint(1, 9)))
        frac = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 12)))
        text = f"{whole}.{frac}" if frac else whole
        payload = SPOT_TRADE.replace(b"61737.63000000", text.encode())
        assert _check(RawFrame(7, payload, "spot")) in ("fast", "deferred")
