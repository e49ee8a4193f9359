"""MicroStream's full pipeline vs cryptofeed's Binance handler, side by side.

Both consume the very same depth and trade frames of a capture, in one process,
in alternating rounds (best round of each kept, so both see the same machine):

* cryptofeed 2.4.1 (``pip install -e '.[bench]'``): ``Binance.message_handler``
  parses each frame and keeps its order book (parse + book only). The capture's
  REST snapshot is served locally by replacing its HTTP client's ``read``; the
  symbol list comes from a local exchangeInfo answer. Its Binance handler only
  understands ``aggTrade`` trade frames, so each ``trade`` frame is handed to it
  re-labelled as an ``aggTrade`` with the same price, quantity, side and id.
* MicroStream, three ways, each through the pipeline ``replay`` runs (the
  compiled fast lane included), the snapshot line in-stream:

  - ``microstream_*``: parse + book + streaming features + Parquet lake, the
    issue's definition of the full pipeline to compare (written to a temporary
    directory by the replay's lake sink; the time ends when its last file is
    fsynced). This is ``ratio``.
  - ``with_models_*``: the same plus the models (regime, HMM, anomaly, the
    forecast and its scorecard), as ``microstream run`` does by default:
    ``ratio_with_models``.
  - ``parse_book_*``: parse + book only, cryptofeed's own scope.

  Wall times include the lake sink's background thread; the CPU times
  (``*_per_cpu_s``) count every thread of the process.

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


SCOPES = {
    "microstream": ("parse + book + features + lake", True, False, True),
    "with_models": ("parse + book + features + models + lake", True, True, True),
    "parse_book": ("parse + book", False, False, False),
}
"""Name → (what it does, features, models, lake)."""


def run_microstream(frames: list[RawFrame], scope: str) -> tuple[float, float]:
    """Wall and CPU seconds of MicroStream over ``frames`` in one of :data:`SCOPES`."""
    _, features, models, lake = SCOPES[scope]
    settings = Settings.from_env()
    options = PipelineOptions(
        features=features, models=models, grid_ms=settings.grid_ms, settings=settings
    )
    seconds, cpu, _ = run_timed(frames, options, lake=lake)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("captures", nargs="*", default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ours, theirs, snapshot = load(args.captures)
    events = len(theirs)  # depth + trade frames, the same for both
    run_microstream(ours[:3000], "with_models")  # one-time costs: imports, model files
    wall = dict.fromkeys(["cryptofeed", *SCOPES], float("inf"))
    cpu = dict(wall)
    counts: dict[str, int] = {}
    for r in range(args.rounds):
        cf, cf_cpu, counts = run_cryptofeed(theirs, snapshot)
        wall["cryptofeed"], cpu["cryptofeed"] = (
            min(wall["cryptofeed"], cf),
            min(cpu["cryptofeed"], cf_cpu),
        )
        line = [f"round {r + 1}: cryptofeed {events / cf:,.0f} ev/s"]
        for scope in SCOPES:
            seconds, cpu_seconds = run_microstream(ours, scope)
            wall[scope], cpu[scope] = min(wall[scope], seconds), min(cpu[scope], cpu_seconds)
            line.append(f"{scope} {events / seconds:,.0f}")
        print(", ".join(line) + " (wall)")
    result: dict[str, object] = {
        "events": events,
        "cryptofeed_events_per_s": round(events / wall["cryptofeed"], 1),
        "cryptofeed_events_per_cpu_s": round(events / cpu["cryptofeed"], 1),
        "cryptofeed_callbacks": counts,
        "cryptofeed_does": "parse + book",
    }
    for scope, (does, *_) in SCOPES.items():
        result[f"{scope}_events_per_s"] = round(events / wall[scope], 1)
        result[f"{scope}_events_per_cpu_s"] = round(events / cpu[scope], 1)
        result[f"{scope}_does"] = does
    result["ratio"] = round(wall["cryptofeed"] / wall["microstream"], 3)
    result["cpu_ratio"] = round(cpu["cryptofeed"] / cpu["microstream"], 3)
    result["ratio_with_models"] = round(wall["cryptofeed"] / wall["with_models"], 3)
    result["parse_book_ratio"] = round(wall["cryptofeed"] / wall["parse_book"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
