"""``microstream run``: the whole product in one process.

Threads:

* the **feed thread** runs an asyncio loop with the source: the live Binance
  client (for ``binance``/``binance-futures``, and for ``sim``, where the same
  client talks to a loopback exchange fed by the simulator), or a capture
  replay. Every frame goes into a bounded queue;
* the **engine thread** (the caller's) drains the queue through the
  :class:`~microstream.engine.LocalPipeline` (ingest and engine in one) and
  refreshes the live state a few times a second;
* the lake sink and the engine API each run in their own thread, and the
  dashboard is a separate Streamlit process.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Bus, Row, Topics, symbol_key
from microstream.config import Settings
from microstream.engine import Engine, Ingestor, LocalPipeline, PipelineOptions
from microstream.errors import ConfigError, FeedError
from microstream.frames import RawFrame
from microstream.venues.binance.parse import exchange_of

log = logging.getLogger(__name__)

SOURCES = ("auto", "binance", "binance-futures", "sim", "replay")
MARKET_OF_SOURCE = {"binance": "spot", "binance-futures": "usdm", "sim": "spot"}
REFRESH_S = 0.5
LIVE_FLUSH_S = 0.2
"""Longest wait of a live run's gathered ``trades``/``book_top`` rows before they are published."""
PROBE_TIMEOUT_S = 5.0
DEFAULT_CAPTURE = Path("../shared/data/binance/spot")


@dataclass
class RunOptions:
    """What ``microstream run`` was asked to do."""

    source: str = "auto"
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])
    bus: str = "memory"
    data_dir: Path = Path("data")
    dashboard: bool = True
    duration: float | None = None
    captures: list[str] = field(default_factory=list)
    speed: float | None = 1.0
    seed: int = 7
    api_port: int | None = None
    dashboard_port: int | None = None


@dataclass(frozen=True)
class Reconnected:
    """Queue marker: the feed reconnected and may have lost frames of ``symbols``."""

    symbols: tuple[str, ...]


class FrameQueue:
    """The bounded hand-over between the feed thread and the engine thread.

    A full queue drops the frame and counts it: the book then sees a gap and
    resyncs, which is correct, while blocking would stall the websocket.
    """

    def __init__(self, maxsize: int = 200_000) -> None:
        self._queue: queue.Queue[RawFrame | Row | Reconnected] = queue.Queue(maxsize=maxsize)
        self.dropped = 0

    def put(self, item: RawFrame | Row | Reconnected) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("engine is behind: %d frames dropped (queue full)", self.dropped)

    def get(self, timeout: float) -> RawFrame | Row | Reconnected | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def get_nowait(self) -> RawFrame | Row | Reconnected | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def qsize(self) -> int:
        return self._queue.qsize()


def binance_or_simulator(settings: Settings) -> str:
    """``--source auto``: ``"binance"`` if Binance answers within a few seconds, else ``"sim"``.

    Falling back is said loudly on stderr: everything that follows is simulated.
    """
    reason = asyncio.run(probe_binance(settings, "spot", PROBE_TIMEOUT_S))
    if reason is None:
        log.info("Binance is reachable: running on live data")
        return "binance"
    banner = (
        f"Binance is not reachable ({reason}).\n"
        "Running on the MARKET SIMULATOR instead: every output is marked SIMULATED DATA."
    )
    print("\n" + "=" * 72 + "\n" + banner + "\n" + "=" * 72, file=sys.stderr)
    return "sim"


async def probe_binance(settings: Settings, market: str, timeout: float) -> str | None:
    """None if Binance answers REST and websocket within ``timeout``; else why not."""
    import aiohttp

    from microstream.venues.binance.endpoints import endpoints

    ep = endpoints(market, None, None, settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(f"{ep.rest_url}{ep.api_prefix}/ping") as resp:
                if resp.status != 200:
                    return f"REST ping answered HTTP {resp.status}"
            async with s.ws_connect(ep.ws_url + "/stream?streams=btcusdt@trade"):
                return None
    except Exception as exc:  # any failure means "not reachable": report it
        return f"{type(exc).__name__}: {exc}"


class FeedThread:
    """Runs the source's asyncio loop in a daemon thread."""

    def __init__(
        self, options: RunOptions, settings: Settings, frames: FrameQueue, market: str
    ) -> None:
        self.options = options
        self.settings = settings
        self.frames = frames
        self.market = market
        self.loop = asyncio.new_event_loop()
        self.feed: Any = None
        self.exchange_server: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="feed", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_snapshot(self, exchange: str, symbol: str) -> None:
        """Thread-safe: ask the live feed for a REST snapshot of ``symbol``."""
        feed = self.feed
        if feed is not None and hasattr(feed, "request_snapshot"):
            self.loop.call_soon_threadsafe(feed.request_snapshot, symbol)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def health(self) -> dict[str, Any]:
        feed = self.feed
        if feed is not None and hasattr(feed, "health"):
            info: dict[str, Any] = feed.health()
            return info
        return {}

    def _main(self) -> None:
        try:
            self.loop.run_until_complete(self._run())
        except BaseException as exc:  # reported to the engine thread
            self.error = exc
            log.error("feed stopped: %s", exc)
        finally:
            self.finished.set()
            self.ready.set()
            self.loop.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        if self.options.source == "replay":
            await self._run_replay()
            return
        await self._run_live()

    async def _run_live(self) -> None:
        from microstream.venues.binance.live import BinanceLiveFeed

        assert self._stop is not None
        ws_url = rest_url = None
        if self.options.source == "sim":
            from microstream.sim.exchange import LoopbackExchange
            from microstream.sim.sim_feed import SimFeed

            sim = SimFeed(self.options.symbols, seed=self.options.seed, on_truth=self.frames.put)
            self.exchange_server = LoopbackExchange(sim)
            await self.exchange_server.start()
            ws_url, rest_url = self.exchange_server.ws_url, self.exchange_server.rest_url
            log.info("simulated exchange on %s", rest_url)
        self.feed = BinanceLiveFeed(
            self.market,
            self.options.symbols,
            self.frames.put,
            ws_url=ws_url,
            rest_url=rest_url,
            on_reconnect=lambda symbols: self.frames.put(Reconnected(tuple(symbols))),
            settings=self.settings,
        )
        try:
            await self.feed.start()
            self.ready.set()
            await self._stop.wait()
        finally:
            await self.feed.stop()
            if self.exchange_server is not None:
                await self.exchange_server.stop()

    async def _run_replay(self) -> None:
        from microstream.capture import read_captures

        assert self._stop is not None
        self.ready.set()
        start_wall, start_ts = time.monotonic(), None
        for frame in read_captures(self.options.captures):
            if self._stop.is_set():
                return
            if self.options.speed is not None:
                if start_ts is None:
                    start_ts = frame.ts_recv
                due = start_wall + (frame.ts_recv - start_ts) / 1e9 / self.options.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.frames.put(frame)
        log.info("replay source: end of captures")


class LiveRun:
    """One run of the product; :meth:`run` blocks until stopped."""

    def __init__(self, options: RunOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.simulated = options.source == "sim"
        self.frames = FrameQueue()
        self._stop = threading.Event()
        self._stop_reason = ""

    # ------------------------------------------------------------- set-up
    def resolve_source(self) -> None:
        """``auto``: Binance if reachable within a few seconds, else the simulator."""
        opts = self.options
        if opts.source not in SOURCES:
            raise ConfigError(f"unknown source {opts.source!r}; choose from {', '.join(SOURCES)}")
        if opts.source == "replay" and not opts.captures:
            default = sorted(DEFAULT_CAPTURE.glob("btcusdt_*.gz"))
            if not default:
                raise ConfigError("--source replay needs --captures FILE...")
            opts.captures = [str(p) for p in default]
        if opts.source != "auto":
            return
        opts.source = binance_or_simulator(self.settings)
        self.simulated = opts.source == "sim"

    def market(self) -> str:
        if self.options.source == "replay":
            from microstream.capture import describe

            return describe(self.options.captures[0]).market
        return MARKET_OF_SOURCE[self.options.source]

    def _make_bus(self) -> Bus:
        if self.options.bus == "memory":
            return MemoryBus()
        raise ConfigError(f"unknown bus {self.options.bus!r} (memory or kafka)")

    def service_commands(self) -> list[list[str]]:
        """``--bus kafka``: the ingest and engine services this run starts."""
        opts = self.options
        base = [sys.executable, "-m", "microstream.cli"]
        ingest = [*base, "ingest", "--source", opts.source, "--symbols", ",".join(opts.symbols)]
        if opts.source == "replay":
            ingest += ["--captures", *opts.captures]
            ingest += ["--speed", "max" if opts.speed is None else str(opts.speed)]
        if opts.source == "sim":
            ingest += ["--seed", str(opts.seed)]
        port = opts.api_port or self.settings.api_port
        # one engine reads every partition directly: no group join to wait for
        engine = [
            *base,
            "engine",
            "--direct",
            "--data-dir",
            str(opts.data_dir),
            "--api-port",
            str(port),
        ]
        if self.simulated:
            engine.append("--simulated")
        return [ingest, engine]

    def run_services(self) -> int:
        """``--bus kafka``: ingest and one engine as child processes over the brokers."""
        import subprocess

        procs = [subprocess.Popen(cmd) for cmd in self.service_commands()]
        port = self.options.api_port or self.settings.api_port
        dashboard = self._start_dashboard(f"http://127.0.0.1:{port}")
        if dashboard is not None:
            procs.append(dashboard)
        restore = self._install_signals()
        deadline = (
            float("inf")
            if self.options.duration is None
            else time.monotonic() + self.options.duration
        )
        code = 0
        try:
            while not self._stop.wait(0.5):
                failed = [p for p in procs if p.poll() not in (None, 0)]
                if failed:
                    code = failed[0].returncode or 1
                    self.stop(f"a service exited with code {code}")
                if time.monotonic() >= deadline:
                    self.stop("duration reached")
        finally:
            restore()
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log.info("stopped: %s", self._stop_reason or "done")
        return code

    # ---------------------------------------------------------------- run
    def run(self) -> int:
        """Run until the duration ends, SIGINT/SIGTERM, or the feed fails."""
        from microstream.api import EngineApi
        from microstream.live_state import LiveStateStore
        from microstream.store.lake import LakeWriter
        from microstream.store.sink import LakeSink

        self.resolve_source()
        market = self.market()
        exchange_of(market)  # fails early on an unknown market
        if self.options.bus == "kafka":
            return self.run_services()
        bus = self._make_bus()
        options = PipelineOptions(
            grid_ms=self.settings.grid_ms, simulated=self.simulated, settings=self.settings
        )
        feed = FeedThread(self.options, self.settings, self.frames, market)
        local = LocalPipeline(
            bus, options, request_snapshot=feed.request_snapshot, flush_every_s=LIVE_FLUSH_S
        )
        ingest, engine = local.ingest, local.engine
        sink = LakeSink(
            LakeWriter(
                self.options.data_dir,
                flush_rows=self.settings.flush_rows,
                flush_seconds=self.settings.flush_seconds,
            )
        )
        sink.attach(bus)
        store = LiveStateStore()
        store.attach(bus)
        store.set_source(self.options.source, self.simulated)
        health = HealthReport(self, feed, ingest, engine, sink)
        store.set_health_provider(health.snapshot)
        api = EngineApi(
            store, host=self.settings.api_host, port=self.options.api_port or self.settings.api_port
        )
        api.start()
        log.info("engine API on %s", api.url)
        dashboard = self._start_dashboard(api.url)
        restore = self._install_signals()
        feed.start()
        try:
            self._loop(local, store, feed, bus)
        finally:
            restore()
            feed.stop()
            local.finish()
            sink.close()
            api.stop()
            if dashboard is not None:
                dashboard.terminate()
                try:
                    dashboard.wait(10)
                except Exception:
                    dashboard.kill()
        log.info("stopped: %s", self._stop_reason or "done")
        if feed.error is not None and not isinstance(feed.error, asyncio.CancelledError):
            raise FeedError(f"the feed failed: {feed.error}") from feed.error
        return 0

    def _start_dashboard(self, api_url: str) -> Any:
        if not self.options.dashboard:
            return None
        from microstream.commands.dashboard import start_dashboard_process

        port = self.options.dashboard_port or self.settings.dashboard_port
        proc = start_dashboard_process(port, api_url)
        print(f"dashboard: http://localhost:{port}  (engine API: {api_url})", file=sys.stderr)
        return proc

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: types.FrameType | None) -> None:
            self.stop(f"signal {signum}")

        for sig in previous:
            signal.signal(sig, handle)

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore

    def stop(self, reason: str) -> None:
        """Ask the run to stop (thread-safe)."""
        self._stop_reason = self._stop_reason or reason
        self._stop.set()

    def _loop(self, local: LocalPipeline, store: Any, feed: FeedThread, bus: Bus) -> None:
        deadline = (
            float("inf")
            if self.options.duration is None
            else time.monotonic() + self.options.duration
        )
        next_refresh = 0.0
        publish = bus.publish
        while not self._stop.is_set():
            item = self.frames.get(timeout=0.1)
            while item is not None:
                if isinstance(item, RawFrame):
                    local.on_frame(item)
                elif isinstance(item, Row):  # the simulator's hidden truth
                    row = Row(
                        item.table, item.exchange, item.symbol, {**item.values, "simulated": True}
                    )
                    publish(Topics.ROWS, symbol_key(row.exchange, row.symbol), row)
                else:
                    self._resync(local.engine, item)
                item = self.frames.get_nowait() if not self._stop.is_set() else None
            local.tick()  # the queue is empty: gathered trades and book rows go out when due
            now = time.monotonic()
            if now >= next_refresh:
                store.update_from_engine(local.engine.live_state())
                next_refresh = now + REFRESH_S
            if now >= deadline:
                self.stop("duration reached")
            if feed.finished.is_set() and feed.error is not None:
                self.stop("feed failed")

    @staticmethod
    def _resync(engine: Engine, marker: Reconnected) -> None:
        """After a reconnect, resync the books at once instead of at the next gap."""
        now = time.time_ns()
        for pipe in engine.pipelines.values():
            if pipe.symbol in marker.symbols:
                pipe.resync(now, "feed reconnected: frames may be missing")


class HealthReport:
    """Builds the ``/health`` document from the run's parts."""

    def __init__(self, run: LiveRun, feed: FeedThread, ingest: Ingestor, engine: Engine, sink: Any):
        self.run = run
        self.feed = feed
        self.ingest = ingest
        self.engine = engine
        self.sink = sink
        self._last = (time.monotonic(), 0)
        self._rate = 0.0

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        frames = self.ingest.stats.frames
        t0, f0 = self._last
        if now - t0 >= 1.0:
            self._rate = (frames - f0) / (now - t0)
            self._last = (now, frames)
        feed = self.feed.health()
        symbols = {}
        for key, pipe in list(self.engine.pipelines.items()):
            s = pipe.stats
            symbols[key] = {
                **pipe.book_health(),
                "trades": s.trades,
                "depth_events": s.depth_events,
                "latency_ms": None if s.last_latency_ns is None else s.last_latency_ns / 1e6,
                "negative_latency_events": s.negative_latency,
            }
        sink = self.sink.stats
        connected = bool(feed.get("connections")) or self.run.options.source == "replay"
        all_valid = all(v["book_valid"] for v in symbols.values()) and bool(symbols)
        status = "ok" if connected and all_valid else ("degraded" if connected else "down")
        return {
            "status": status,
            "source": self.run.options.source,
            "simulated": self.run.simulated,
            "feed": {"connected": connected, **feed},
            "last_message_age_s": feed.get("last_message_age_s"),
            "symbols": symbols,
            "messages_per_s": round(self._rate, 1),
            "frames": frames,
            "reconnects": feed.get("reconnects", 0),
            "resyncs": sum(v["resyncs"] for v in symbols.values()),
            "queue_depth": self.run.frames.qsize(),
            "lake_queue_depth": sink.queue_depth,
            "dropped": self.run.frames.dropped + sink.dropped,
            "rejected": dict(self.ingest.decoder.counts),
            "rows_written": sink.writer.rows_written,
        }
