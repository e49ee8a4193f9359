"""Micro benchmark of the streaming feature engine's hot path.

Replays the spot capture through the real parser and book (the lead's
:class:`~microstream.engine.SymbolPipeline`) once, records the exact
``BookTop``/``Trade``/``SyncStateChange`` sequence the feature stage receives,
then times :class:`~microstream.features.streaming.FeatureEngine` alone on that
sequence (best of ``--repeat`` runs), plus trades only and book tops only.

Usage::

    .venv/bin/python benchmarks/bench_features.py [--repeat 5] [CAPTURE ...]

Prints one JSON object on its last line (microseconds per event).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microstream.capture import read_captures
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import BookTop, SyncStateChange, Trade
from microstream.features.streaming import FeatureEngine
from microstream.venues.binance.parse import FrameDecoder

ROOT = Path(__file__).resolve().parents[1]
SPOT = [
    ROOT.parent / "shared/data/binance/spot/btcusdt_20240808.gz",
    ROOT.parent / "shared/data/binance/spot/btcusdt_20240809.gz",
]


class Recorder:
    """A feature stage that only records what it receives."""

    def __init__(self) -> None:
        self.events: list[Trade | BookTop | SyncStateChange] = []

    def on_book_top(self, top: BookTop) -> None:
        self.events.append(top)

    def on_trade(self, trade: Trade) -> None:
        self.events.append(trade)

    def on_sync(self, change: SyncStateChange) -> None:
        self.events.append(change)

    def finish(self) -> None:
        pass

    def live_state(self) -> dict[str, Any]:
        return {}


def feature_inputs(paths: list[Path]) -> list[Trade | BookTop | SyncStateChange]:
    """The feature-stage input sequence of a capture, through parser and book."""
    decoder = FrameDecoder()
    recorder = Recorder()
    pipes: dict[tuple[str, str], SymbolPipeline] = {}
    options = PipelineOptions(features=False, models=False)
    for frame in read_captures(paths):
        for event in decoder.decode(frame):
            key = (event.exchange, event.symbol)
            pipe = pipes.get(key)
            if pipe is None:
                pipe = pipes[key] = SymbolPipeline(event.exchange, event.symbol, _drop, options)
                pipe.features = recorder
            pipe.on_event(event)
    return recorder.events


def _drop(_row: Any) -> None:
    return None


def run(events: list[Trade | BookTop | SyncStateChange], lateness_ms: int) -> float:
    """Seconds to push ``events`` through a fresh engine (plus ``finish``)."""
    rows: list[Any] = []
    engine = FeatureEngine("binance", "BTCUSDT", rows.append, lateness_ms=lateness_ms)
    handlers: dict[type, Callable[[Any], None]] = {
        Trade: engine.on_trade,
        BookTop: engine.on_book_top,
        SyncStateChange: engine.on_sync,
    }
    calls = [(handlers[type(e)], e) for e in events]
    start = time.process_time()
    for handler, event in calls:
        handler(event)
    engine.finish()
    return time.process_time() - start


def best(events: list[Any], repeat: int, lateness_ms: int) -> float:
    """Best per-event microseconds over ``repeat`` runs."""
    if not events:
        return float("nan")
    return min(run(events, lateness_ms) for _ in range(repeat)) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", nargs="*", type=Path, default=SPOT)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    events = feature_inputs(args.captures)
    trades = [e for e in events if isinstance(e, Trade)]
    tops = [e for e in events if isinstance(e, BookTop)]
    result = {
        "events": len(events),
        "trades": len(trades),
        "book_tops": len(tops),
        "us_per_event": round(best(events, args.repeat, 250), 3),
        "us_per_event_lateness0": round(best(events, args.repeat, 0), 3),
        "us_per_trade_only": round(best(trades, args.repeat, 250), 3),
        "us_per_book_top_only": round(best(tops, args.repeat, 250), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
