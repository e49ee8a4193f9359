"""MicroStream's full pipeline vs cryptofeed's Binance handler, side by side.

Both consume the very same depth and trade frames of a capture, in one process,
in alternating rounds (best round of each kept, so both see the same machine):

* cryptofeed 2.4.1 (``pip install -e '.[bench]'``): ``Binance.message_handler``
  parses each frame and keeps its order book (parse + book only). The capture's
  REST snapshot is served locally by replacing its HTTP client's ``read``; the
  symbol list comes from a local exchangeInfo answer. Its Binance handler only
  understands ``aggTrade`` trade frames, so each ``trade`` frame is handed to it
  re-labelled as an ``aggTrade`` with the same price, quantity, side and id.
* MicroStream: parse + book + features + models + Parquet lake (written to a
  temporary directory by the replay's lake sink; the time ends when its last
  file is on disk), the snapshot line in-stream. Its wall time includes the
  lake sink's background thread; the CPU time (``*_per_cpu_s``) counts every
  thread of the process.

Usage::

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/compare_cryptofeed.py [CAPTURE...] [--rounds 3]

The last line printed is a JSON object with both rates and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import time
from typing import Any

from microstream.bench import run_timed
from microstream.capture import read_captures
from microstream.config import Settings
from microstream.engine import PipelineOptions
from microstream.frames import RawFrame

DEFAULT = [
    "../shared/data/binance/spot/btcusdt_20240808.gz",
    "../shared/data/binance/spot/btcusdt_20240809.gz",
]
EXCHANGE_INFO = {
    "symbols": [
        {
            "symbol": "BTCUSDT",
            "baseAsset": "BTC",
            "quoteAsset": "USDT",
            "status": "TRADING",
            "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}],
        }
    ]
}


def load(paths: list[str]) -> tuple[list[RawFrame], list[tuple[float, str]], str]:
    """MicroStream frames (depth, trade, snapshot) and cryptofeed's (depth, trade as aggTrade)."""
    ours: list[RawFrame] = []
    theirs: list[tuple[float, str]] = []
    snapshot = ""
    for frame in read_captures(paths):
        text = frame.payload.decode()
        if text.startswith('{"lastUpdateId"'):
            snapshot = text
            ours.append(frame)
            continue
        if "@depth@" in text[:40]:
            ours.append(frame)
            theirs.append((frame.ts_recv / 1e9, text))
        elif '@trade"' in text[:40]:
            ours.append(frame)
            msg = json.loads(text)
            d = msg["data"]
            agg = {
                "e": "aggTrade",
                "E": d["E"],
                "s": d["s"],
                "a": d["t"],
                "p": d["p"],
                "q": d["q"],
                "f": d["t"],
                "l": d["t"],
                "T": d["T"],
                "m": d["m"],
                "M": True,
            }
            stream = msg["stream"].replace("@trade", "@aggTrade")
            theirs.append((frame.ts_recv / 1e9, json.dumps({"stream": stream, "data": agg})))
    if not snapshot:
        raise SystemExit("the capture has no snapshot line")
    return ours, theirs, snapshot


def run_cryptofeed(
    frames: list[tuple[float, str]], snapshot: str
) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of cryptofeed's Binance handler over ``frames``, callback counts."""
    from cryptofeed.defines import L2_BOOK, TRADES
    from cryptofeed.exchanges import Binance

    Binance.http_sync.read = lambda *a, **k: EXCHANGE_INFO  # type: ignore[method-assign]
    counts = {"book": 0, "trades": 0}

    async def on_book(book: Any, ts: float) -> None:
        counts["book"] += 1

    async def on_trade(trade: Any, ts: float) -> None:
        counts["trades"] += 1

    async def main() -> float:
        feed = Binance(
            symbols=["BTC-USDT"],
            channels=[L2_BOOK, TRADES],
            callbacks={L2_BOOK: on_book, TRADES: on_trade},
        )

        async def read_snapshot(*args: Any, **kwargs: Any) -> str:
            return snapshot

        feed.http_conn.read = read_snapshot  # type: ignore[method-assign]
        handler = feed.message_handler
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        for ts, text in frames:
            await handler(text, None, ts)
        timings.append(time.process_time() - cpu)
        return time.perf_counter() - start

    timings: list[float] = []
    wall = asyncio.run(main())
    return wall, timings[0], counts


def run_microstream(frames: list[RawFrame], full: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds of MicroStream over ``frames``.

    ``full``: parse + book + features + models + lake; else parse + book only.
    """
    settings = Settings.from_env()
    options = PipelineOptions(features=full, grid_ms=settings.grid_ms, settings=settings)
    seconds, cpu, _ = run_timed(frames, options, lake=full)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="*", default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ours, theirs, snapshot = load(args.captures)
    events = len(theirs)  # depth + trade frames, the same for both
    best_cf = best_ms = cpu_cf = cpu_ms = best_bb = cpu_bb = float("inf")
    counts: dict[str, int] = {}
    for r in range(args.rounds):
        cf, cf_cpu, counts = run_cryptofeed(theirs, snapshot)
        ms, ms_cpu = run_microstream(ours)
        bb, bb_cpu = run_microstream(ours, full=False)
        best_bb, cpu_bb = min(best_bb, bb), min(cpu_bb, bb_cpu)
        best_cf, best_ms = min(best_cf, cf), min(best_ms, ms)
        cpu_cf, cpu_ms = min(cpu_cf, cf_cpu), min(cpu_ms, ms_cpu)
        print(
            f"round {r + 1}: cryptofeed {events / cf:,.0f} ev/s, "
            f"microstream {events / ms:,.0f} ev/s (wall)"
        )
    result = {
        "events": events,
        "cryptofeed_events_per_s": round(events / best_cf, 1),
        "cryptofeed_callbacks": counts,
        "microstream_events_per_s": round(events / best_ms, 1),
        "ratio": round(best_cf / best_ms, 3),
        "cryptofeed_events_per_cpu_s": round(events / cpu_cf, 1),
        "microstream_events_per_cpu_s": round(events / cpu_ms, 1),
        "cpu_ratio": round(cpu_cf / cpu_ms, 3),
        "microstream_does": "parse + book + features + models + lake",
        "microstream_parse_book_events_per_s": round(events / best_bb, 1),
        "microstream_parse_book_events_per_cpu_s": round(events / cpu_bb, 1),
        "parse_book_ratio": round(best_cf / best_bb, 3),
        "cryptofeed_does": "parse + book",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
