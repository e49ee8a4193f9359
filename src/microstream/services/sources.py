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
from typing import TYPE_CHECKING

from microstream.bus.protocol import Row, Topics, symbol_key
from microstream.capture import read_captures
from microstream.frames import RawFrame
from microstream.replay import paced
from microstream.services.ingest import IngestService

if TYPE_CHECKING:
    from microstream.venues.binance.live import LiveFeedConfig

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
    asyncio.run(
        live(
            service,
            market,
            symbols,
            simulated=simulated,
            seed=seed,
            stop=stop,
            duration=duration,
        )
    )


async def live(
    service: IngestService,
    market: str,
    symbols: list[str],
    *,
    simulated: bool = False,
    seed: int = 7,
    stop: threading.Event | None = None,
    duration: float | None = None,
    ws_url: str | None = None,
    rest_url: str | None = None,
    feed_config: LiveFeedConfig | None = None,
) -> None:
    """The coroutine behind :func:`run_live`; URLs and timings default to Binance's."""
    stop = stop or threading.Event()
    if simulated:
        task = asyncio.create_task(_pump_sim(service, symbols, seed))
    else:
        urls = (ws_url, rest_url)
        task = asyncio.create_task(_pump_binance(service, market, symbols, urls, feed_config))
    deadline = _deadline(duration)
    try:
        while not stop.is_set() and time.monotonic() < deadline and not task.done():
            service.service()
            await asyncio.sleep(IDLE_TICK_S)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _pump_binance(
    service: IngestService,
    market: str,
    symbols: list[str],
    urls: tuple[str | None, str | None],
    config: LiveFeedConfig | None,
) -> None:
    from microstream.config import Settings
    from microstream.venues.binance.live import BinanceLiveFeed

    feed = BinanceLiveFeed(
        market,
        symbols,
        service.on_frame,
        ws_url=urls[0],
        rest_url=urls[1],
        config=config,
        settings=Settings.from_env(),
    )

    def fetch(_exchange: str, symbol: str) -> None:
        feed.request_snapshot(symbol)

    service.source_snapshot = fetch
    async with feed:
        await asyncio.Event().wait()  # runs until cancelled


async def _pump_sim(service: IngestService, symbols: list[str], seed: int) -> None:
    from microstream.sim.sim_feed import SimFeed
    from microstream.venues.binance.endpoints import default_streams

    def truth(row: Row) -> None:
        service.bus.publish(Topics.ROWS, symbol_key(row.exchange, row.symbol), row)

    # the streams a live client subscribes to on Binance, nothing more: the
    # simulator also serves aggTrade and 1 s diffs, which would reach the engines
    # as second copies of the same trades and book changes
    kinds = [stream.partition("@")[2] for stream in default_streams(symbols[0], "spot")]
    feed = SimFeed(symbols, seed=seed, speed=1.0, on_truth=truth, streams=kinds)
    frame: RawFrame
    async for frame in feed.raw_frames():
        service.on_frame(frame)
