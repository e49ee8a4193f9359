"""Parse functions against real recorded frames and against bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from microstream.errors import InvalidEventError, ParseError, UnknownEventError
from microstream.events import BestBidAsk, BookSnapshot, DepthUpdate, Trade
from microstream.frames import RawFrame
from microstream.venues.binance.parse import FrameDecoder, parse_frame, stream_kind


def first_line(path: Path, needle: bytes) -> tuple[int, bytes]:
    with gzip.open(path, "rb") as fh:
        for line in fh:
            if needle in line:
                stamp, _, payload = line.rstrip(b"\n").partition(b" ")
                return int(stamp), payload
    raise AssertionError(f"{needle!r} not in {path}")


def test_spot_trade_frame(spot_capture: list[Path]) -> None:
    ts, payload = first_line(spot_capture[0], b"@trade")
    [trade] = parse_frame(RawFrame(ts, payload, "spot"))
    assert isinstance(trade, Trade)
    # {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
    #  "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    assert trade.exchange == "binance" and trade.symbol == "BTCUSDT"
    assert trade.trade_id == 3735683259
    assert trade.price == 61837.63 and trade.qty == 0.02
    assert trade.ts_event == 1723161255342 * 1_000_000  # trade time T, in ns
    assert trade.ts_recv == ts
    assert trade.side == "sell"  # m true: the buyer was the maker, the seller hit the bid


def test_spot_depth_frame(spot_capture: list[Path]) -> None:
    ts, payload = first_line(spot_capture[0], b"@depth@100ms")
    [depth] = parse_frame(RawFrame(ts, payload, "spot"))
    assert isinstance(depth, DepthUpdate)
    assert (depth.first_update_id, depth.last_update_id) == (50093239189, 50093239202)
    assert depth.prev_update_id is None
    assert depth.ts_event == 1723161255208 * 1_000_000
    assert depth.bids[0] == (61737.63, 0.0)
    assert depth.asks[0] == (61837.64, 1.54698)
    assert len(depth.bids) == 3 and len(depth.asks) == 9


def test_spot_book_ticker_has_no_event_time(spot_capture: list[Path]) -> None:
    ts, payload = first_line(spot_capture[0], b"@bookTicker")
    [bbo] = parse_frame(RawFrame(ts, payload, "spot"))
    assert isinstance(bbo, BestBidAsk)
    assert bbo.ts_event is None  # spot bookTicker carries no E: unknown, not guessed
    assert (bbo.bid_px, bbo.bid_qty, bbo.ask_px, bbo.ask_qty) == (
        61837.63,
        3.78826,
        61837.64,
        1.54698,
    )
    assert bbo.update_id == 50093239212


def test_bare_snapshot_line_needs_and_uses_the_symbol(spot_capture: list[Path]) -> None:
    ts, payload = first_line(spot_capture[0], b'{"lastUpdateId"')
    with pytest.raises(ParseError):
        parse_frame(RawFrame(ts, payload, "spot"))
    [snap] = parse_frame(RawFrame(ts, payload, "spot", "BTCUSDT"))
    assert isinstance(snap, BookSnapshot)
    assert snap.last_update_id == 50093239218
    assert len(snap.bids) == 1000 and len(snap.asks) == 1000
    assert snap.bids[0] == (61837.63, 3.78826)


def test_usdm_depth_carries_pu(shared_data: Path) -> None:
    ts, payload = first_line(shared_data / "binance/usdm/btcusdt_20240718.gz", b"@depth@0ms")
    [depth] = parse_frame(RawFrame(ts, payload, "usdm"))
    assert isinstance(depth, DepthUpdate)
    assert depth.exchange == "binance-futures"
    assert depth.prev_update_id == 4984028367494
    assert depth.first_update_id == 4984028367545 and depth.last_update_id == 4984028370730


def test_usdm_2023_microsecond_snapshot_with_spaces(usdm_capture: list[Path]) -> None:
    ts, payload = first_line(usdm_capture[0], b'{"lastUpdateId"')
    [snap] = parse_frame(RawFrame(ts * 1000, payload, "usdm", "BTCUSDT"))
    assert isinstance(snap, BookSnapshot)
    assert snap.last_update_id == 2710246765483
    assert snap.ts_event == 1680652700590 * 1_000_000


def test_coinm_trade_and_ticker(coinm_capture: list[Path]) -> None:
    ts, payload = first_line(coinm_capture[0], b"@trade")
    [trade] = parse_frame(RawFrame(ts, payload, "coinm"))
    assert isinstance(trade, Trade)
    assert trade.exchange == "binance-coinm" and trade.symbol == "BTCUSD_PERP"
    assert trade.side == "buy" and trade.qty == 4.0  # contracts
    ts, payload = first_line(coinm_capture[0], b"@bookTicker")
    [bbo] = parse_frame(RawFrame(ts, payload, "coinm"))
    assert isinstance(bbo, BestBidAsk) and bbo.ts_event == 1723161257476 * 1_000_000


def test_mark_price_stream_is_ignored_not_rejected(usdm_capture: list[Path]) -> None:
    ts, payload = first_line(usdm_capture[0], b"markPrice")
    assert parse_frame(RawFrame(ts, payload, "usdm")) == []


def test_futures_off_book_fill_is_not_a_trade() -> None:
    payload = (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":5,'
        b'"p":"100.0","q":"1","X":"INSURANCE_FUND","m":false}}'
    )
    assert parse_frame(RawFrame(1, payload, "usdm")) == []


def test_wrapped_snapshot_from_recorder() -> None:
    payload = b'{"stream":"ethusdt@depthSnapshot","data":{"lastUpdateId":7,"bids":[["1.5","2"]],"asks":[["1.6","3"]]}}'
    [snap] = parse_frame(RawFrame(1, payload, "spot"))
    assert isinstance(snap, BookSnapshot) and snap.symbol == "ETHUSDT" and snap.last_update_id == 7


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"not json at all", ParseError),
        (b'{"stream":"btcusdt@trade","data":{"e":"trade"', ParseError),
        (
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
            b'"p":"NaN","q":"1","m":true}}',
            InvalidEventError,
        ),
        (
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
            b'"p":"-5","q":"1","m":true}}',
            InvalidEventError,
        ),
        (
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
            b'"p":"5","q":"abc","m":true}}',
            ParseError,
        ),
        (
            b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
            b'"U":1,"u":2,"b":[["100","-1"]],"a":[]}}',
            InvalidEventError,
        ),
        (
            b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
            b'"U":5,"u":2,"b":[],"a":[]}}',
            InvalidEventError,
        ),
        (
            b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"101","B":"1",'
            b'"a":"100","A":"1"}}',
            InvalidEventError,
        ),
        (b'{"stream":"btcusdt@weird","data":{"e":"weird"}}', UnknownEventError),
    ],
)
def test_bad_frames_raise_parse_errors(payload: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_frame(RawFrame(1, payload, "spot"))


def test_decoder_counts_and_skips_bad_frames() -> None:
    decoder = FrameDecoder()
    good = (
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,'
        b'"p":"5","q":"1","m":false}}'
    )
    frames = [
        good,
        b"{",
        b'{"stream":"x@nope","data":{"e":"nope"}}',
        good.replace(b'"5"', b'"inf"'),
    ]
    results = [decoder.decode(RawFrame(1, p, "spot")) for p in frames]
    assert [len(r) for r in results] == [1, 0, 0, 0]
    assert decoder.counts["ok"] == 1
    assert decoder.counts["malformed"] == 1
    assert decoder.counts["unknown"] == 1
    assert decoder.counts["invalid"] == 1
    assert decoder.rejected == 3


def test_subscription_reply_and_server_shutdown_are_not_errors() -> None:
    assert parse_frame(RawFrame(1, b'{"result":null,"id":1}', "spot")) == []
    payload = b'{"stream":"btcusdt@trade","data":{"e":"serverShutdown","E":1}}'
    with pytest.raises(ParseError):  # a shutdown event on a trade stream is not a trade
        parse_frame(RawFrame(1, payload, "spot"))
    assert parse_frame(RawFrame(1, b'{"e":"serverShutdown","E":1}', "spot")) == []


def test_stream_kinds() -> None:
    assert stream_kind("btcusdt@depth@100ms") == "depth"
    assert stream_kind("btcusdt@depth") == "depth"
    assert stream_kind("btcusdt@depth20@100ms") == "partial"
    assert stream_kind("btcusdt@depth5") == "partial"
    assert stream_kind("btcusdt@aggTrade") == "aggTrade"
    assert stream_kind("btcusdt@markPrice@1s") == "ignored"
