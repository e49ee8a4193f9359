"""Parser and sync rules on the other real Binance captures: many symbols, aggTrade, REST snapshots.

``../shared/data/multi-exchange/BINANCE*.jsonl.zst`` were recorded by another
client (cryptofeed) on one combined-stream connection per market: four symbols
each, ``depth@100ms``, ``bookTicker``, ``aggTrade`` and ``kline_1m`` streams, plus
the REST depth snapshot of every symbol. Unlike ``../shared/data/binance`` they
hold real ``aggTrade`` frames.
"""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from typing import Any

import pytest
import zstandard

from conftest import require_shared
from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.events import BookSnapshot, DepthUpdate, MarketEvent, Trade
from microstream.frames import RawFrame
from microstream.venues.binance.parse import FrameDecoder, exchange_of, parse_frame

CAPTURES = {"spot": "BINANCE.jsonl.zst", "usdm": "BINANCE_FUTURES.jsonl.zst"}
SYMBOLS = {
    "spot": {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"},
    "usdm": {"SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"},
}


def frames(market: str) -> list[RawFrame]:
    """Received frames and REST depth snapshots, in recording order."""
    path = require_shared(f"multi-exchange/{CAPTURES[market]}")
    with path.open("rb") as fh:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(fh), encoding="utf-8")
        records: list[dict[str, Any]] = [json.loads(line) for line in text]
    out = []
    for rec in records:
        ts = round(rec.get("ts", 0) * 1e9)
        if rec["t"] == "recv":
            out.append(RawFrame(ts, rec["data"].encode(), market))
        elif rec["t"] == "http" and (m := re.search(r"/depth\?symbol=(\w+)", rec["url"])):
            out.append(RawFrame(ts, rec["data"].encode(), market, m.group(1)))
    return out


@pytest.mark.parametrize("market", list(CAPTURES))
def test_every_frame_parses_and_only_klines_are_unknown(market: str) -> None:
    decoder = FrameDecoder()
    kinds: Counter[str] = Counter()
    for frame in frames(market):
        kinds.update(type(e).__name__ for e in decoder.decode(frame))
    assert decoder.counts["malformed"] == 0 and decoder.counts["invalid"] == 0
    klines = sum(b"@kline_1m" in f.payload for f in frames(market))
    assert decoder.counts["unknown"] == klines > 0  # counted and skipped, not a crash
    assert kinds["BookSnapshot"] == 4
    assert kinds["Trade"] > 0 and kinds["DepthUpdate"] > 0 and kinds["BestBidAsk"] > 0


def test_real_aggtrade_frames() -> None:
    spot = [f for f in frames("spot") if b"@aggTrade" in f.payload]
    # {"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",
    #  "q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}
    [trade] = parse_frame(spot[0])
    assert isinstance(trade, Trade)
    assert (trade.exchange, trade.symbol) == ("binance", "NKNUSDT")
    assert trade.trade_id == 15683430 and trade.is_aggregate
    assert (trade.first_trade_id, trade.last_trade_id) == (19862790, 19862790)
    assert trade.price == 0.3528 and trade.qty == 58.0
    assert trade.ts_event == 1633998523963 * 1_000_000 and trade.ts_recv == spot[0].ts_recv
    assert trade.side == "buy"  # m false: the buyer was the taker

    agg_frames = [f for f in frames("usdm") if b"@aggTrade" in f.payload]
    assert len(agg_frames) > 50
    for frame in agg_frames:
        [event] = parse_frame(frame)
        assert isinstance(event, Trade) and event.exchange == "binance-futures"
        data = json.loads(frame.payload)["data"]
        assert event.trade_id == data["a"] and event.ts_event == data["T"] * 1_000_000
        assert event.side == ("sell" if data["m"] else "buy")


@pytest.mark.parametrize("market", list(CAPTURES))
def test_four_symbols_on_one_connection_all_sync_without_gaps(market: str) -> None:
    states: dict[str, list[str]] = {}
    books: dict[str, BookSynchronizer] = {}

    def book(symbol: str) -> BookSynchronizer:
        if symbol not in books:
            books[symbol] = BookSynchronizer(
                exchange_of(market),
                symbol,
                ContinuityRule.for_market(market),
                on_state=lambda c: states.setdefault(c.symbol, []).append(c.state),
            )
        return books[symbol]

    decoder = FrameDecoder()
    for frame in frames(market):
        events: list[MarketEvent] = decoder.decode(frame)
        for event in events:
            if isinstance(event, DepthUpdate):
                book(event.symbol).on_depth(event)
            elif isinstance(event, BookSnapshot):
                book(event.symbol).on_snapshot(event)
    assert set(books) == SYMBOLS[market]
    for symbol, sync in books.items():
        assert states[symbol] == ["buffering", "synced"], symbol
        assert sync.applied > 0 and sync.dropped_stale > 0 and sync.gaps == 0
        assert not sync.book.is_crossed
