"""The market simulator as a :class:`~microstream.sim.feed.MarketFeed`.

:class:`SimFeed` runs one :class:`~microstream.sim.market.Market` per symbol on
a shared exchange clock, cuts time into 100 ms windows and publishes, per
window, the Binance spot frames of what happened (see
:mod:`microstream.sim.binance_frames`). It keeps the book as published (after
the last yielded ``depth@100ms`` diff) to answer REST snapshots consistently,
and exposes the hidden regime as ``sim_truth`` rows on a 1-second grid.

Three ways to consume it:

- ``async for stream, data in feed.frames()``: paced (``speed=1.0`` is real
  time, ``None`` as fast as possible); what the loopback exchange pumps.
- ``for stream, data in feed.generate(seconds)``: synchronous, unpaced, for
  offline statistics and fast tests.
- ``feed.raw_frames()`` / ``feed.iter_raw_frames(seconds)``: the same as
  :class:`~microstream.frames.RawFrame` (a snapshot frame per symbol first), to
  plug the simulator straight into the pipeline without a websocket.

Same ``seed`` and ``start_ms`` give the same frames, byte for byte.
"""

from __future__ import annotations

import asyncio
import heapq
import time
import zlib
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from typing import Any

import msgspec
import numpy as np

from microstream.bus.protocol import Row
from microstream.frames import RawFrame
from microstream.sim.binance_frames import FrameBuilder, exchange_info
from microstream.sim.market import BookChange, Market, MarketParams, spec_for

Frame = tuple[str, dict[str, Any]]

ALL_STREAMS: tuple[str, ...] = (
    "trade",
    "aggTrade",
    "bookTicker",
    "depth@100ms",
    "depth",
    "depth5@100ms",
    "depth10@100ms",
    "depth20@100ms",
)
"""Stream kinds the simulator publishes per symbol (``<symbol>@<kind>``)."""

WINDOW_MS = 100
_WALL_LEAD_MS = 2  # wall-clock pacing: a frame goes out 2 ms after its exchange time
TRUTH_TABLE = "sim_truth"
EXCHANGE = "binance"


class _SymbolSim:
    """One symbol: its market, frame builder and published (mirror) book."""

    def __init__(
        self,
        symbol: str,
        seed: int,
        start_ms: int,
        params: MarketParams | None,
        kinds: frozenset[str],
    ) -> None:
        spec = spec_for(symbol)
        rng = np.random.default_rng(
            np.random.SeedSequence([seed, zlib.crc32(spec.symbol.encode())])
        )
        self.market = Market(spec, rng, start_ms, params)
        self.builder = FrameBuilder(spec)
        self.kinds = kinds
        self.prefix = spec.symbol.lower()
        bids, asks = self.market.book()
        self.bids, self.asks = bids, asks  # the book as published
        self.last_update_id = self.market.update_id
        self._second: list[BookChange] = []

    def window(self, end_ms: int) -> list[tuple[int, int, float, str, dict[str, Any]]]:
        """Simulate up to ``end_ms``; ``(ts, uid, rank, stream, data)`` of the window."""
        market = self.market
        market.run_until(float(end_ms))
        changes, trades, tops = market.drain()
        out: list[tuple[int, int, float, str, dict[str, Any]]] = []
        p, kinds, b = self.prefix, self.kinds, self.builder
        if "trade" in kinds:
            out.extend((t.ts_ms, t.update_id, 0.0, f"{p}@trade", b.trade(t)) for t in trades)
        if "aggTrade" in kinds:
            last_uid = {t.agg_id: t.update_id for t in trades}
            for ts, agg in b.agg_trades(trades):
                out.append((ts, last_uid[agg["a"]], 0.5, f"{p}@aggTrade", agg))
        if "bookTicker" in kinds:
            out.extend(
                (t.ts_ms, t.update_id, 1.0, f"{p}@bookTicker", b.book_ticker(t)) for t in tops
            )
        if changes:
            diff = b.depth_update(end_ms, changes)
            if "depth@100ms" in kinds:  # published when yielded (see SimFeed._window)
                out.append((end_ms, changes[-1].update_id, 2.0, f"{p}@depth@100ms", diff))
            else:
                self.publish(diff)  # not on the wire: REST snapshots still follow the book
            self._second.extend(changes)
        sizes = [n for n in (5, 10, 20) if f"depth{n}@100ms" in kinds]
        if sizes:
            deepest = max(sizes)
            bids, asks = market.levels(True, deepest), market.levels(False, deepest)
            for n in sizes:
                book = b.book(market.update_id, bids[:n], asks[:n])
                out.append((end_ms, market.update_id, 3.0 + n / 100, f"{p}@depth{n}@100ms", book))
        if end_ms % 1000 < WINDOW_MS and self._second:
            if "depth" in kinds:
                diff = b.depth_update(end_ms, self._second)
                out.append((end_ms, self._second[-1].update_id, 2.5, f"{p}@depth", diff))
            self._second = []
        return out

    def publish(self, data: dict[str, Any]) -> None:
        """Apply a yielded ``depth@100ms`` diff to the published book."""
        for side, book in (("b", self.bids), ("a", self.asks)):
            for price, qty in data[side]:
                tick = _units(price, self.builder.spec.price_decimals)
                lots = _units(qty, self.builder.spec.lot_decimals)
                if lots:
                    book[tick] = lots
                else:
                    book.pop(tick, None)
        self.last_update_id = int(data["u"])

    def snapshot(self, limit: int) -> dict[str, Any]:
        """The published book, ``limit`` levels a side."""
        bids = heapq.nlargest(limit, self.bids.items())
        asks = heapq.nsmallest(limit, self.asks.items())
        return self.builder.book(self.last_update_id, bids, asks)


def _units(text: str, decimals: int) -> int:
    whole, _, frac = text.partition(".")
    frac = (frac + "0" * decimals)[:decimals]
    value: int = int(whole) * 10**decimals + int(frac or "0")
    return value


class SimFeed:
    """Simulated Binance spot market for the given symbols (a ``MarketFeed``).

    Args:
        symbols: upper-case symbols (known ones get realistic price/tick/lot,
            see :data:`microstream.sim.market.SYMBOL_SPECS`).
        seed: the seed of everything random; each symbol derives its own stream.
        speed: pacing of :meth:`frames` (1.0 = real time, 2.0 twice as fast,
            ``None`` = as fast as possible).
        start_ms: exchange time (Unix ms) of the first window; ``None`` = the
            wall clock (rounded up to the 100 ms window) when the simulation is
            first used. With a wall-clock start and ``speed=1.0``, :meth:`frames`
            publishes each frame when the wall clock reaches its exchange time
            (frames due during the warm-up go out at once), so exchange and
            receive times agree within the scheduling delay.
        streams: stream kinds to publish (default :data:`ALL_STREAMS`).
        on_truth: called with a ``sim_truth`` :class:`Row` per symbol at every
            whole second of exchange time, once that second's frames are out.
        params: order-flow parameters (default :class:`MarketParams`).
    """

    market = "spot"

    def __init__(
        self,
        symbols: Collection[str] = ("BTCUSDT",),
        seed: int = 7,
        speed: float | None = 1.0,
        start_ms: int | None = None,
        streams: Collection[str] | None = None,
        on_truth: Callable[[Row], None] | None = None,
        params: MarketParams | None = None,
    ) -> None:
        self.symbols: list[str] = [s.upper() for s in symbols]
        self.seed = seed
        self.speed = speed
        self.start_ms = start_ms
        self.kinds = frozenset(streams or ALL_STREAMS)
        self.on_truth = on_truth
        self.params = params
        self.frames_yielded = 0
        self._wall_clock = start_ms is None
        self._sims: dict[str, _SymbolSim] = {}
        self._window_end = 0

    # ------------------------------------------------------------ lifecycle

    def prepare(self) -> None:
        """Build the markets now (a seeded book plus a warm-up of simulated flow).

        Otherwise this happens on first use; call it before serving so the
        first client does not wait for the warm-up.
        """
        self._ensure()

    def _ensure(self) -> dict[str, _SymbolSim]:
        if not self._sims:
            if self.start_ms is None:
                now_ms = time.time_ns() // 1_000_000
                self.start_ms = -(-now_ms // WINDOW_MS) * WINDOW_MS
            start = self.start_ms = self.start_ms // WINDOW_MS * WINDOW_MS
            for symbol in self.symbols:
                self._sims[symbol] = _SymbolSim(symbol, self.seed, start, self.params, self.kinds)
            self._window_end = start
        return self._sims

    @property
    def now_ms(self) -> int:
        """Exchange time (ms) up to which frames have been produced."""
        return self._window_end

    # ----------------------------------------------------------- sync API

    def iter_frames(self) -> Iterator[Frame]:
        """Every frame in publication order, unpaced, forever."""
        for _, stream, data in self._timed():
            yield stream, data

    def generate(self, seconds: float) -> Iterator[Frame]:
        """The frames of the next ``seconds`` of exchange time, unpaced."""
        self._ensure()
        end = self._window_end + int(seconds * 1000)
        while self._window_end < end:
            for _, stream, data in self._window():
                yield stream, data

    def iter_raw_frames(self, seconds: float) -> Iterator[RawFrame]:
        """Snapshots then frames of ``seconds`` as :class:`RawFrame` with simulated receive times.

        The receive time is the exchange time plus 5 ms, so the output is
        deterministic (for replay-style tests and the stats report).
        """
        encode = msgspec.json.encode
        sims = self._ensure()
        recv0 = self._window_end * 1_000_000
        for symbol, sim in sims.items():
            yield RawFrame(recv0, encode(sim.snapshot(5000)), self.market, symbol)
        end = self._window_end + int(seconds * 1000)
        while self._window_end < end:
            for ts, stream, data in self._window():
                envelope = encode({"stream": stream, "data": data})
                yield RawFrame((ts + 5) * 1_000_000, envelope, self.market)

    # ---------------------------------------------------------- async API

    async def frames(self) -> AsyncIterator[Frame]:
        """Frames paced by :attr:`speed` on the running event loop.

        Pacing is anchored on the first frame, except for a wall-clock start at
        ``speed=1.0``: then a frame goes out when the wall clock reaches its
        exchange time (its ``E``), so the receive-minus-exchange latency a
        client measures is the real delivery delay, not the warm-up.
        """
        loop = asyncio.get_running_loop()
        anchor: tuple[float, int] | None = None
        for count, (ts, stream, data) in enumerate(self._timed(), start=1):
            delay = 0.0
            if self.speed:
                if anchor is None:
                    anchor = (loop.time(), ts)
                    if self._wall_clock and self.speed == 1.0:
                        # the loop time at which the wall clock reads ``ts`` + 2 ms:
                        # a trade's ``E`` is ``T + 1`` and a frame may go out up
                        # to 1 ms early, so no frame is received before its ``E``
                        due = (ts + _WALL_LEAD_MS) / 1000.0 - time.time()
                        anchor = (loop.time() + due, ts)
                delay = anchor[0] + (ts - anchor[1]) / 1000.0 / self.speed - loop.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            elif count % 128 == 0:
                await asyncio.sleep(0)  # behind schedule or unpaced: still let others run
            yield stream, data

    async def raw_frames(self) -> AsyncIterator[RawFrame]:
        """Snapshots then paced frames as :class:`RawFrame` stamped with the wall clock."""
        encode = msgspec.json.encode
        for symbol, sim in self._ensure().items():
            yield RawFrame(time.time_ns(), encode(sim.snapshot(5000)), self.market, symbol)
        async for stream, data in self.frames():
            envelope = encode({"stream": stream, "data": data})
            yield RawFrame(time.time_ns(), envelope, self.market)

    # ----------------------------------------------------------- REST side

    def snapshot(self, symbol: str, limit: int) -> dict[str, Any]:
        """The book after the last yielded depth diff of ``symbol`` (KeyError if unknown)."""
        symbol = symbol.upper()
        if symbol not in self.symbols:
            raise KeyError(symbol)
        return self._ensure()[symbol].snapshot(limit)

    def exchange_info(self) -> dict[str, Any]:
        """Binance spot ``exchangeInfo`` for the simulated symbols."""
        builders = [FrameBuilder(spec_for(s)) for s in self.symbols]
        return exchange_info(builders, self._window_end or time.time_ns() // 1_000_000)

    # ------------------------------------------------------------- truth

    def truth_at(self, ts_ns: int, symbol: str | None = None) -> str | None:
        """The hidden regime at exchange time ``ts_ns`` (None outside the simulated span)."""
        sim = self._ensure()[(symbol or self.symbols[0]).upper()]
        if ts_ns // 1_000_000 < (self.start_ms or 0):
            return None
        return sim.market.regimes.history_at(ts_ns // 1_000_000)

    def truth_row(self, ts_ms: int, symbol: str) -> Row:
        """The ``sim_truth`` row of ``symbol`` at a simulated grid time ``ts_ms``."""
        chain = self._ensure()[symbol].market.regimes
        chain.regime_at(self._window_end)
        regime = chain.history_at(ts_ms) or chain.current
        return Row(TRUTH_TABLE, EXCHANGE, symbol, {"ts": ts_ms * 1_000_000, "regime": regime})

    def regime_switches(self, symbol: str | None = None) -> list[tuple[int, str]]:
        """Every ``(start_ms, regime)`` of ``symbol``'s chain so far (warm-up included)."""
        return self._ensure()[(symbol or self.symbols[0]).upper()].market.regimes.switches()

    # ------------------------------------------------------------ windows

    def _timed(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        self._ensure()
        while True:
            yield from self._window()

    def _window(self) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """Simulate the next 100 ms window and yield its frames in order.

        The published book follows the ``depth@100ms`` diffs as they are
        yielded; the truth rows of a whole second go out after its frames.
        """
        sims = self._sims
        end = self._window_end + WINDOW_MS
        batch: list[tuple[int, int, float, str, dict[str, Any]]] = []
        for sim in sims.values():
            batch.extend(sim.window(end))
        batch.sort(key=lambda f: (f[0], f[1], f[2]))
        self._window_end = end
        for ts, _, rank, stream, data in batch:
            if rank == 2.0:
                sims[data["s"]].publish(data)
            self.frames_yielded += 1
            yield ts, stream, data
        if end % 1000 < WINDOW_MS and self.on_truth is not None:
            for symbol in self.symbols:
                self.on_truth(self.truth_row(end - end % 1000, symbol))
