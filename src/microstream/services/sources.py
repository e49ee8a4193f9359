"""Drive an :class:`~microstream.services.ingest.IngestService` from a source.

* :func:`run_replay` — capture files, at their recorded pace or as fast as
  possible, then keeps answering snapshot requests until stopped;
* :func:`run_live` — the live Binance feed (spot or USD-M futures), or the
  market simulator (``simulated=True``), until stopped.

Every runner returns when ``stop`` is set or ``duration`` seconds passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from microstream.bus.protocol import Row, Topics, symbol_key
from microstream.capture import read_captures
from microstream.frames import RawFrame
from microstream.replay import paced
from microstream.services.ingest import IngestService

log = logging.getLogger(__name__)

IDLE_TICK_S = 0.1


def _deadline(duration: float | None) -> float:
    return float("inf") if duration is None else time.monotonic() + duration


def run_replay(
    service: IngestService,
    captures: Iterable[str | Path],
    *,
    speed: float | None = None,
    market: str | None = None,
    stop: threading.Event | None = None,
    duration: float | None = None,
    linger: bool = True,
    done: threading.Event | None = None,
) -> int:
    """Publish the frames of ``captures``; returns the number of frames.

    With ``linger`` the service keeps answering snapshot requests after the
    last frame, until ``stop`` or ``duration``; ``done`` is set once the last
    frame is delivered to the bus.
    """
    stop = stop or threading.Event()
    deadline = _deadline(duration)
    frames = 0
    for frame in paced(read_captures(captures, market), speed):
        service.on_frame(frame)
        frames += 1
        if stop.is_set() or time.monotonic() >= deadline:
            break
    service.bus.flush(60.0)
    log.info("replay published %d frames", frames)
    if done is not None:
        done.set()
    while linger and not stop.is_set() and time.monotonic() < deadline:
        service.service()
        stop.wait(IDLE_TICK_S)
    return frames


def run_live(
    service: IngestService,
    market: str,
    symbols: list[str],
    *,
    simulated: bool = False,
    seed: int = 7,
    stop: threading.Event | None = None,
    duration: float | None = None,
) -> None:
    """Publish the live feed (or the simulator's) until ``stop`` or ``duration``."""
    asyncio.run(_live(service, market, symbols, simulated, seed, stop, duration))


async def _live(
    service: IngestService,
    market: str,
    symbols: list[str],
    simulated: bool,
    seed: int,
    stop: threading.Event | None,
    duration: float | None,
) -> None:
    stop = stop or threading.Event()
    if simulated:
        task = asyncio.create_task(_pump_sim(service, symbols, seed))
    else:
        task = asyncio.create_task(_pump_binance(service, market, symbols))
    deadline = _deadline(duration)
    try:
        while not stop.is_set() and time.monotonic() < deadline and not task.done():
            service.service()
            await asyncio.sleep(IDLE_TICK_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pump_binance(service: IngestService, market: str, symbols: list[str]) -> None:
    from microstream.config import Settings
    from microstream.venues.binance.live import BinanceLiveFeed

    feed = BinanceLiveFeed(market, symbols, service.on_frame, settings=Settings.from_env())
    service.source_snapshot = lambda _exchange, symbol: _fetch(feed, symbol)
    async with feed:
        await asyncio.Event().wait()  # runs until cancelled


def _fetch(feed: object, symbol: str) -> None:
    request = getattr(feed, "request_snapshot", None)
    if request is not None:
        request(symbol)


async def _pump_sim(service: IngestService, symbols: list[str], seed: int) -> None:
    from microstream.sim.sim_feed import SimFeed

    def truth(row: Row) -> None:
        service.bus.publish(Topics.ROWS, symbol_key(row.exchange, row.symbol), row)

    feed = SimFeed(symbols, seed=seed, speed=1.0, on_truth=truth)
    frame: RawFrame
    async for frame in feed.raw_frames():
        service.on_frame(frame)
