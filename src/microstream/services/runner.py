"""Process entry points of the distributed services (``microstream ingest|engine``).

Each builds its service from the command-line arguments and the environment
(:class:`~microstream.config.Settings`, :class:`~microstream.bus.kafka.KafkaSettings`),
installs SIGINT/SIGTERM handlers that stop it cleanly, runs it and prints a
one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import types
from dataclasses import replace
from typing import Any

from microstream.bus.kafka import KafkaBus, KafkaSettings
from microstream.bus.protocol import Topics
from microstream.config import Settings
from microstream.errors import ConfigError
from microstream.replay import parse_speed
from microstream.services.ingest import FrameRecorder, IngestService
from microstream.services.status import FEED_QUIET_S, ingest_status
from microstream.venues.binance.parse import EXCHANGE_BY_MARKET

log = logging.getLogger(__name__)

MARKET_OF_SOURCE = {"binance": "spot", "binance-futures": "usdm", "sim": "spot"}


def _on_signals(stop: threading.Event, extra: Any = None) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: types.FrameType | None) -> None:
        log.warning("signal %d: stopping", signum)
        stop.set()
        if extra is not None:
            extra()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)


def _env_flag(name: str) -> bool:
    return (os.environ.get(name) or "").strip().lower() in ("1", "true", "yes", "on")


def _symbols(raw: str | None, settings: Settings) -> list[str]:
    text = raw or settings.symbol
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise ConfigError("no symbols given (--symbols or SYMBOL)")
    return symbols


def _recorder(directory: str | None, market: str) -> FrameRecorder | None:
    if directory is None:
        return None
    from microstream.venues.binance.recorder import CaptureWriter

    return CaptureWriter(directory, market, rotate_seconds=3600.0)


def ingest_health(
    service: IngestService, bus: KafkaBus, source: str, feed_done: threading.Event
) -> dict[str, Any]:
    """The ``/health`` document of ``microstream ingest`` (status: :func:`ingest_status`)."""
    age = service.frame_age_s()
    broker_down_s = bus.broker_down_s()
    status, reasons = ingest_status(
        frame_age_s=age,
        feed_done=feed_done.is_set(),
        broker_down_s=broker_down_s,
        down_after_s=bus.settings.down_after_s,
    )
    stats = bus.stats
    return {
        "status": status,
        "status_reasons": reasons,
        "service": "ingest",
        "source": source,
        "simulated": bus.settings.simulated,
        "feed_connected": feed_done.is_set() or age <= FEED_QUIET_S,
        "feed_done": feed_done.is_set(),
        "last_frame_age_s": age,
        "broker_down_s": broker_down_s,
        "down_after_s": bus.settings.down_after_s,
        "frames": service.ingestor.stats.frames,
        "published": stats.published,
        "delivered": stats.delivered,
        "delivery_errors": stats.delivery_errors,
        "queue_depth": bus.queue_depth,
        "snapshot_requests": service.stats.snapshot_requests,
        "snapshots_answered": service.stats.snapshots_answered,
        "snapshots_pending": len(service.stats.pending),
    }


def _health_api(
    args: argparse.Namespace, service: IngestService, bus: KafkaBus, source: str
) -> tuple[Any, threading.Event]:
    """``--health-port``: the ingest's ``/health`` and ``/metrics``, or ``None``."""
    feed_done = threading.Event()
    if args.health_port is None:
        return None, feed_done
    from microstream.api import EngineApi
    from microstream.live_state import LiveStateStore

    store = LiveStateStore(source=source, simulated=bus.settings.simulated)
    store.set_health_provider(lambda: ingest_health(service, bus, source, feed_done))
    api = EngineApi(store, args.health_host, args.health_port)
    api.start()
    log.info("ingest health on %s/health", api.url)
    return api, feed_done


def run_ingest(args: argparse.Namespace) -> int:
    """``microstream ingest``: build the ingest service and run its source."""
    from microstream.services.sources import run_live, run_replay

    settings = Settings.from_env()
    source = args.source or ("replay" if args.captures else "auto")
    if source == "auto":
        from microstream.run import binance_or_simulator

        source = binance_or_simulator(settings)
    if source == "replay" and not args.captures:
        raise ConfigError("--source replay needs --captures FILE...")
    symbols = _symbols(args.symbols, settings) if source != "replay" or args.symbols else None
    market = args.market or MARKET_OF_SOURCE.get(source, "usdm")
    # the simulator's messages say so on the wire: engines mark their outputs simulated
    kafka = KafkaSettings.from_env(
        mode="direct", client_id="microstream-ingest", simulated=source == "sim"
    )
    # its own group: the CONTROL offsets of ingest must not mix with the engines' group
    bus = KafkaBus(replace(kafka, group_id=f"{kafka.group_id}-ingest"))
    service = IngestService(
        bus,
        symbols=set(symbols) if symbols else None,
        exchange=None if source == "replay" else EXCHANGE_BY_MARKET.get(market),
        snapshot_every_s=args.snapshot_every,
        recorder=_recorder(args.record, market),
    )
    stop = threading.Event()
    _on_signals(stop)
    api, feed_done = _health_api(args, service, bus, source)
    bus.start()  # CONTROL topic: snapshot requests
    frames = None
    try:
        if source == "replay":
            frames = run_replay(
                service,
                args.captures,
                speed=parse_speed(args.speed),
                market=args.market,
                stop=stop,
                duration=args.duration,
                linger=not args.exit_at_end,
                done=feed_done,
            )
        else:
            assert symbols is not None
            run_live(
                service,
                market,
                symbols,
                simulated=source == "sim",
                seed=args.seed,
                stop=stop,
                duration=args.duration,
            )
    finally:
        bus.stop()
        service.close()
        if api is not None:
            api.stop()
    summary = {
        "source": source,
        "exchange": EXCHANGE_BY_MARKET.get(market),
        "frames": service.ingestor.stats.frames if frames is None else frames,
        "events": dict(service.ingestor.stats.events),
        "skipped_other_symbols": service.skipped,
        "published": bus.stats.published,
        "delivered": bus.stats.delivered,
        "delivery_errors": bus.stats.delivery_errors,
        "snapshot_requests": service.stats.snapshot_requests,
        "snapshots_answered": service.stats.snapshots_answered,
        "snapshots_periodic": service.stats.snapshots_periodic,
    }
    print(json.dumps(summary), flush=True)
    return 0


def _preload(options: Any) -> None:
    """Import the feature and model stages now, not when the first message arrives.

    Their imports (scikit-learn, hmmlearn, ...) take seconds; paid at start-up
    they do not stall the first symbol's events.
    """
    if not options.features:
        return
    from microstream.engine import SymbolPipeline

    try:  # a throw-away pipeline loads the stages (and the model files) once
        SymbolPipeline("warmup", "WARMUP", lambda row: None, options)
    except Exception:
        log.exception("warm-up of the pipeline failed (the first symbol will load it)")


def run_engine(args: argparse.Namespace) -> int:
    """``microstream engine``: one member of the engine group, until stopped."""
    from microstream.api import EngineApi
    from microstream.engine import PipelineOptions
    from microstream.live_state import LiveStateStore
    from microstream.services.engine import EngineService
    from microstream.store.lake import LakeWriter
    from microstream.store.sink import LakeSink

    settings = Settings.from_env()
    simulated = args.simulated or _env_flag("MICROSTREAM_SIMULATED")
    overrides: dict[str, Any] = {"mode": "direct" if args.direct else "group"}
    if args.group:
        overrides["group_id"] = args.group
    options = PipelineOptions(
        features=not args.no_features,
        models=not (args.no_models or args.no_features),
        grid_ms=args.grid_ms or settings.grid_ms,
        simulated=simulated,
        settings=settings,
    )
    # offsets are committed (and the lake flushed) every MICROSTREAM_FLUSH_SECONDS
    overrides["commit_interval_s"] = settings.flush_seconds
    service = EngineService(KafkaSettings.from_env(**overrides), options, name=args.name)
    _preload(options)  # after connecting: a broker that is down fails fast
    store = LiveStateStore(source="kafka", simulated=simulated)
    store.set_health_provider(service.health)
    # data that arrives marked simulated (ingest --source sim) turns the banner on
    service.on_simulated = lambda _key: store.set_source("kafka", True)
    service.attach(Topics.ROWS, store.on_message)
    sink = None
    if not args.no_lake:
        writer = LakeWriter(
            args.data_dir or settings.data_dir,
            flush_rows=max(settings.flush_rows, 1_000_000),
            flush_seconds=settings.flush_seconds * 20,  # a safety net; commits flush
        )
        sink = LakeSink(writer)
        service.attach_lake(sink)
    api = None
    if not args.no_api:
        api = EngineApi(
            store, args.api_host or settings.api_host, args.api_port or settings.api_port
        )
        api.start()
        log.info("engine API on %s", api.url)
    stop = threading.Event()
    _on_signals(stop, service.request_stop)
    timer = None
    if args.duration is not None:
        timer = threading.Timer(args.duration, service.request_stop)
        timer.daemon = True
        timer.start()
    try:
        service.run()
    finally:
        if timer is not None:
            timer.cancel()
        service.close()
        if sink is not None:
            sink.close()
        if api is not None:
            api.stop()
    print(json.dumps({"engine": service.name, **service.health()}, default=str), flush=True)
    return 0
