"""The pipeline: normalized events → book → features → models → output rows.

Two halves meet on the bus, so the same code runs in one process (memory bus)
and as services (Kafka):

* :class:`Ingestor` turns :class:`~microstream.frames.RawFrame` objects into
  events and publishes them on the market-data topics;
* :class:`Engine` subscribes to those topics and runs one
  :class:`SymbolPipeline` per (exchange, symbol), which publishes its output
  :class:`~microstream.bus.Row` objects on ``Topics.ROWS`` for the lake, the live
  state and any other subscriber.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from microstream.book.sync import BookSynchronizer, ContinuityRule, Packed
from microstream.bus.protocol import Bus, Row, RowBatch, Topics, symbol_key
from microstream.counted import should_log
from microstream.events import (
    BestBidAsk,
    BookSnapshot,
    BookTop,
    DepthUpdate,
    MarketEvent,
    PartialBook,
    SyncStateChange,
    Trade,
)
from microstream.frames import RawFrame
from microstream.store.columns import book_top_batch, trades_batch
from microstream.store.rows import book_sync_row, book_top_row, trade_row
from microstream.venues.binance import fastlane
from microstream.venues.binance.parse import EXCHANGE_BY_MARKET, MARKET_BY_EXCHANGE, FrameDecoder

log = logging.getLogger(__name__)

Emit = Callable[[Row], None]
EmitAny = Callable[[Row | RowBatch], None]

BATCH_ROWS = 4096
"""Rows of ``trades`` or ``book_top`` gathered into one batch (when batching)."""


class FeatureStage(Protocol):
    """What the pipeline needs from the streaming feature engine."""

    def on_book_top(self, top: BookTop) -> None: ...
    def on_trade(self, trade: Trade) -> None: ...
    def on_sync(self, change: SyncStateChange) -> None: ...
    def finish(self) -> None: ...
    def live_state(self) -> dict[str, Any]: ...


class ModelStage(Protocol):
    """What the pipeline needs from the per-symbol model engine."""

    def on_row(self, row: Row) -> None: ...
    def live_state(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PipelineOptions:
    """Which stages run, and how.

    Attributes:
        features: run the streaming features and 1-minute bars.
        models: run the regime detector, HMM, anomaly detector and forecast.
        grid_ms: feature grid step in exchange-time milliseconds.
        simulated: mark every output row ``simulated=True``.
        settings: the run's :class:`~microstream.config.Settings` (models read it).
        batch_rows: publish ``trades`` and ``book_top`` rows as
            :class:`~microstream.bus.protocol.RowBatch` messages of up to
            :data:`BATCH_ROWS` rows (in-process runs, whose consumers take
            batches) instead of one :class:`Row` each.
    """

    features: bool = True
    models: bool = True
    grid_ms: int = 1000
    simulated: bool = False
    settings: Any = None
    batch_rows: bool = False


@dataclass
class SymbolStats:
    """Counters of one symbol's pipeline."""

    trades: int = 0
    duplicate_trades: int = 0
    aggregate_trades_skipped: int = 0
    depth_events: int = 0
    book_rows: int = 0
    tickers: int = 0
    partial_books: int = 0
    snapshots: int = 0
    negative_latency: int = 0
    last_latency_ns: int | None = None
    last_event_ns: int | None = None
    last_recv_ns: int | None = None


class SymbolPipeline:
    """Book, features and models of one symbol.

    Consumes the symbol's normalized events in arrival order and emits rows
    for the ``trades``, ``book_top`` and ``book_sync`` tables, plus whatever the
    feature and model stages emit.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: EmitAny,
        options: PipelineOptions | None = None,
        request_snapshot: Callable[[str], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.options = options or PipelineOptions()
        self.stats = SymbolStats()
        self._emit_out = emit
        self._batched = self.options.batch_rows
        self._trades_out: list[Trade] = []
        self._tops_out: list[BookTop] = []
        self._extra: dict[str, Any] = {"simulated": True} if self.options.simulated else {}
        self.last_ticker: BestBidAsk | None = None
        self._last_trade_id = -1
        self._last_trade_ts = -1
        self._raw_trades = False  # a raw `trade` seen: aggregates are then skipped
        self._aggregated_up_to = -1  # last raw trade id inside an accepted aggregate
        market = MARKET_BY_EXCHANGE.get(exchange, "spot")
        self.sync = BookSynchronizer(
            exchange,
            symbol,
            ContinuityRule.for_market(market),
            on_state=self._on_sync,
            request_snapshot=request_snapshot,
            on_applied=self._on_applied,
        )
        self.models: ModelStage | None = self._build_models()
        self.features: FeatureStage | None = self._build_features()

    # ----------------------------------------------------------------- stages
    def _build_features(self) -> FeatureStage | None:
        if not self.options.features:
            return None
        from microstream.features.streaming import FeatureEngine

        engine: FeatureStage = FeatureEngine(
            self.exchange, self.symbol, self._emit_derived, grid_ms=self.options.grid_ms
        )
        return engine

    def _build_models(self) -> ModelStage | None:
        if not (self.options.features and self.options.models):
            return None
        from microstream.config import Settings
        from microstream.models.engine import ModelEngine

        settings = self.options.settings or Settings.from_env()
        stage: ModelStage = ModelEngine(self.exchange, self.symbol, self._emit, settings)
        return stage

    @property
    def simulated(self) -> bool:
        """Whether this symbol's rows are marked ``simulated=True``."""
        return bool(self._extra.get("simulated"))

    def mark_simulated(self) -> None:
        """Mark every row emitted from now on ``simulated=True`` (the source says so)."""
        self.flush_rows()
        self._extra = {**self._extra, "simulated": True}

    def flush_rows(self) -> None:
        """Publish the ``trades`` and ``book_top`` rows gathered for a batch (if batching)."""
        if self._trades_out:
            trades, self._trades_out = self._trades_out, []
            self._emit_out(trades_batch(self.exchange, self.symbol, trades, self.simulated))
        if self._tops_out:
            tops, self._tops_out = self._tops_out, []
            self._emit_out(book_top_batch(self.exchange, self.symbol, tops, self.simulated))

    def _emit(self, row: Row) -> None:
        if self._extra:
            row = Row(row.table, row.exchange, row.symbol, {**row.values, **self._extra})
        self._emit_out(row)

    def _emit_derived(self, row: Row) -> None:
        """Rows from the feature stage go out and on to the models."""
        self._emit(row)
        if self.models is not None:
            self.models.on_row(row)

    # ----------------------------------------------------------------- events
    def on_event(self, event: MarketEvent, packed: Packed | None = None) -> None:
        """Process one event of this symbol.

        ``packed``: a :class:`DepthUpdate`'s levels as packed doubles, when the
        compiled frame reader read it (its ``bids``/``asks`` are then empty).
        """
        stats = self.stats
        stats.last_recv_ns = event.ts_recv
        if event.ts_event is not None:
            latency = event.ts_recv - event.ts_event
            stats.last_latency_ns = latency
            stats.last_event_ns = event.ts_event
            if latency < 0:
                stats.negative_latency += 1
        kind = type(event)
        if kind is BestBidAsk:
            stats.tickers += 1
            self.last_ticker = event  # type: ignore[assignment]
        elif kind is Trade:
            self._on_trade(event)  # type: ignore[arg-type]
        elif kind is DepthUpdate:
            stats.depth_events += 1
            self.sync.on_depth(event, packed)  # type: ignore[arg-type]
        elif kind is BookSnapshot:
            stats.snapshots += 1
            self.sync.on_snapshot(event)  # type: ignore[arg-type]
        elif kind is PartialBook:
            stats.partial_books += 1

    def _on_trade(self, trade: Trade) -> None:
        if trade.is_aggregate:
            if self._raw_trades:
                self._skip_aggregate(trade)
                return
        elif not self._raw_trades:
            self._start_raw_trades()
        # Trade ids increase per symbol: a repeated id at an exchange time already
        # seen is a duplicate (e.g. the overlap of two connections in a roll-over).
        # An id that goes back while exchange time moves on is a restarted source.
        if trade.trade_id <= self._last_trade_id and trade.ts_event <= self._last_trade_ts:
            self._duplicate_trade(trade)
            return
        self._last_trade_id = trade.trade_id
        self._last_trade_ts = trade.ts_event
        if trade.is_aggregate and trade.last_trade_id is not None:
            self._aggregated_up_to = trade.last_trade_id
        self.stats.trades += 1
        if self._batched:
            out = self._trades_out
            out.append(trade)
            if len(out) >= BATCH_ROWS:
                self.flush_rows()
        else:
            self._emit(trade_row(trade))
        if self.features is not None:
            self.features.on_trade(trade)

    def _start_raw_trades(self) -> None:
        """The first raw trade: from now on raw trades are the record, aggregates are skipped.

        Aggregate ids are another sequence, so the duplicate check restarts at
        the last raw trade id the accepted aggregates covered (those raw trades
        are already in the table).
        """
        self._raw_trades = True
        if self.stats.trades:  # aggregates were kept until now
            self._last_trade_id = self._aggregated_up_to  # -1 if they named no trade ids
            log.info(
                "%s %s: raw trades arrive beside aggregate trades; raw trades kept from id %d",
                self.exchange,
                self.symbol,
                self._aggregated_up_to + 1,
            )

    def _skip_aggregate(self, trade: Trade) -> None:
        self.stats.aggregate_trades_skipped += 1
        if self.stats.aggregate_trades_skipped == 1:
            log.info(
                "%s %s: aggregate trades skipped: the raw trades of the same symbol are kept "
                "(counted in aggregate_trades_skipped)",
                self.exchange,
                self.symbol,
            )

    def _duplicate_trade(self, trade: Trade) -> None:
        self.stats.duplicate_trades += 1
        if should_log(self.stats.duplicate_trades):
            log.warning(
                "%s %s: trade %d already seen (last id %d) skipped; %d so far",
                self.exchange,
                self.symbol,
                trade.trade_id,
                self._last_trade_id,
                self.stats.duplicate_trades,
            )

    def _on_applied(self, ev: DepthUpdate) -> None:
        bid_px, bid_qty, ask_px, ask_qty = self.sync.book.top_padded(5)
        self.stats.book_rows += 1
        top = BookTop(
            self.exchange,
            self.symbol,
            ev.ts_event,
            ev.ts_recv,
            ev.last_update_id,
            bid_px,
            bid_qty,
            ask_px,
            ask_qty,
            True,
            self.sync.sync_epoch,
        )
        if self._batched:
            tops = self._tops_out
            tops.append(top)
            if len(tops) >= BATCH_ROWS:
                self.flush_rows()
        else:
            self._emit(book_top_row(top))
        if self.features is not None:
            self.features.on_book_top(top)

    def _on_sync(self, change: SyncStateChange) -> None:
        self._emit(book_sync_row(change))
        if self.features is not None:
            self.features.on_sync(change)

    def finish(self) -> None:
        """End of stream: let the stages emit what they still hold."""
        if self.features is not None:
            self.features.finish()
        self.flush_rows()

    def resync(self, ts_recv: int, reason: str) -> None:
        """Discard the book and request a snapshot (after a reconnect or a rebalance)."""
        self.sync.reset(ts_recv, reason)

    def book_health(self) -> dict[str, Any]:
        """The book's state and the counts of what the symbol's input got wrong (``/health``)."""
        sync = self.sync
        return {
            "book_state": str(sync.state),
            "book_valid": sync.is_synced,
            "gaps": sync.gaps,
            "resyncs": sync.resyncs,
            "duplicate_depth_updates": sync.duplicates,
            "stale_depth_updates": sync.dropped_stale,
            "duplicate_trades": self.stats.duplicate_trades,
        }

    def live_state(self) -> dict[str, Any]:
        """The symbol's current state, for the API and the dashboard."""
        book = self.sync.book
        state: dict[str, Any] = {
            **self.book_health(),
            "sync_epoch": self.sync.sync_epoch,
            "stats": self.stats.__dict__.copy(),
        }
        if self.sync.is_synced:
            state["bids"] = book.bids(100)
            state["asks"] = book.asks(100)
        if self.features is not None:
            state["features"] = self.features.live_state()
        if self.models is not None:
            state["models"] = self.models.live_state()
        return state


@dataclass
class IngestStats:
    """Counters of the ingest half."""

    frames: int = 0
    events: Counter[str] = field(default_factory=Counter)


_TOPIC_BY_TYPE: dict[type, str] = {
    Trade: Topics.TRADES,
    DepthUpdate: Topics.DEPTH,
    BookSnapshot: Topics.SNAPSHOTS,
    BestBidAsk: Topics.TICKERS,
    PartialBook: Topics.TICKERS,
}


class Ingestor:
    """Raw frames → events → market-data topics of the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.decoder = FrameDecoder()
        self.stats = IngestStats()

    def on_frame(self, frame: RawFrame) -> None:
        """Parse one frame and publish its events (bad frames are counted)."""
        self.stats.frames += 1
        publish = self.bus.publish
        for event in self.decoder.decode(frame):
            kind = type(event)
            self.stats.events[kind.__name__] += 1
            publish(_TOPIC_BY_TYPE[kind], symbol_key(event.exchange, event.symbol), event)


MARKET_TOPICS = (Topics.TRADES, Topics.DEPTH, Topics.SNAPSHOTS, Topics.TICKERS)


class Engine:
    """Runs one :class:`SymbolPipeline` per symbol over the bus's market-data topics."""

    def __init__(
        self,
        bus: Bus,
        options: PipelineOptions | None = None,
        request_snapshot: Callable[[str, str], None] | None = None,
        subscribe: bool = True,
    ) -> None:
        self.bus = bus
        self.options = options or PipelineOptions()
        self.pipelines: dict[str, SymbolPipeline] = {}
        self._request_snapshot = request_snapshot
        if subscribe:
            for topic in MARKET_TOPICS:
                bus.subscribe(topic, self.on_message)

    def _emitter(self, key: str) -> EmitAny:
        publish, topic = self.bus.publish, Topics.ROWS

        def emit(row: Row | RowBatch) -> None:
            publish(topic, key, row)

        return emit

    def pipeline(self, exchange: str, symbol: str) -> SymbolPipeline:
        """The pipeline of a symbol, created on first use."""
        key = symbol_key(exchange, symbol)
        pipe = self.pipelines.get(key)
        if pipe is None:
            request = None
            if self._request_snapshot is not None:
                requester = self._request_snapshot

                def request(sym: str, _exchange: str = exchange) -> None:
                    requester(_exchange, sym)

            pipe = SymbolPipeline(exchange, symbol, self._emitter(key), self.options, request)
            self.pipelines[key] = pipe
        return pipe

    def on_message(self, key: str, event: Any) -> None:
        """Bus handler: route a market event to its symbol's pipeline."""
        pipe = self.pipelines.get(key)
        if pipe is None:
            pipe = self.pipeline(event.exchange, event.symbol)
        pipe.on_event(event)

    def release(self, key: str) -> SymbolPipeline | None:
        """Forget a symbol's pipeline (its partition moved to another engine)."""
        pipe = self.pipelines.pop(key, None)
        if pipe is not None:
            pipe.flush_rows()
        return pipe

    def flush_rows(self) -> None:
        """Publish every symbol's gathered ``trades`` and ``book_top`` rows (if batching)."""
        for pipe in self.pipelines.values():
            pipe.flush_rows()

    def finish(self) -> None:
        """End of stream for every symbol."""
        for pipe in self.pipelines.values():
            pipe.finish()

    def live_state(self) -> dict[str, dict[str, Any]]:
        """Per-symbol live state, keyed ``exchange:SYMBOL``."""
        return {key: pipe.live_state() for key, pipe in self.pipelines.items()}


FLUSH_EVERY_S = 0.5
"""Gathered ``trades``/``book_top`` rows wait at most about this long (wall time) while frames flow."""
_CLOCK_EVERY = 256  # frames between looks at the clock


class LocalPipeline:
    """Ingest and engine in one process, on a memory bus: ``replay``, ``run`` and ``bench``.

    Frames take the compiled fast lane where it applies: a plain Binance trade,
    best bid/ask or depth frame is read in C (:mod:`microstream.venues.binance.fastlane`)
    and handed straight to its symbol's pipeline, with the depth levels packed
    for the compiled book; every other frame goes through the
    :class:`Ingestor` and the bus as usual. Both routes give the same events,
    counters and rows. The lane is used only when the engine is the only
    subscriber of the market-data topics (a recorder or mirror on the bus
    needs the published events) and when the extension is built.

    Output rows are batched (:attr:`PipelineOptions.batch_rows`); gathered rows
    are published every :data:`BATCH_ROWS` rows, about every ``flush_every_s``
    seconds (default :data:`FLUSH_EVERY_S`) while frames flow or :meth:`tick`
    is called, on :meth:`flush_rows` and at :meth:`finish`.
    """

    def __init__(
        self,
        bus: Bus,
        options: PipelineOptions | None = None,
        request_snapshot: Callable[[str, str], None] | None = None,
        *,
        fast_lane: bool = True,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self.options = dataclasses.replace(options or PipelineOptions(), batch_rows=True)
        self.bus = bus
        self.ingest = Ingestor(bus)
        self.engine = Engine(bus, self.options, request_snapshot)
        # the ingest half's counters, which the fast lane keeps too
        self._ingest_stats = self.ingest.stats
        self._event_counts = self.ingest.stats.events
        self._outcomes = self.ingest.decoder.counts
        self._want_lane = fast_lane
        self.scan: Callable[[bytes, str, int], Any] | None = None
        """The fast lane's frame reader, once decided (``None``: every frame is ingested)."""
        self._checked = False
        self._last: tuple[str, str, SymbolPipeline] | None = None
        self._frames = 0
        self.fast_frames = 0
        """Frames the fast lane read (the rest went through the ingest half)."""
        self._flush_every = flush_every_s
        self._next_flush = time.monotonic() + flush_every_s

    @property
    def fast_lane(self) -> bool:
        """Whether frames take the compiled fast lane (decided at the first frame or here)."""
        if not self._checked:
            self._decide_lane()
        return self.scan is not None

    def _decide_lane(self) -> None:
        self._checked = True
        if not self._want_lane or fastlane.scan is None:
            return
        subscribers = getattr(self.bus, "subscribers", None)  # a MemoryBus tells them
        alone = subscribers is not None and all(
            subscribers(topic) == (self.engine.on_message,) for topic in MARKET_TOPICS
        )
        if alone:
            self.scan = fastlane.scan
        else:
            log.info("fast lane off: the market-data topics have other subscribers than the engine")

    def on_frame(self, frame: RawFrame) -> None:
        """Process one raw frame (bad frames are counted by the ingest half)."""
        self._frames += 1
        if not self._frames % _CLOCK_EVERY:
            self._maybe_flush()
        scan = self.scan
        if scan is None:
            if not self._checked:
                self._decide_lane()
                scan = self.scan
            if scan is None:
                self.ingest.on_frame(frame)
                return
        exchange = EXCHANGE_BY_MARKET.get(frame.market)
        event = None if exchange is None else scan(frame.payload, exchange, frame.ts_recv)
        if event is None:
            self.ingest.on_frame(frame)
            return
        self.fast_frames += 1
        self._ingest_stats.frames += 1
        self._outcomes["ok"] += 1
        packed: Packed | None = None
        kind = type(event)
        if kind is tuple:
            event, bids, asks = event
            packed = (bids, asks)
            self._event_counts["DepthUpdate"] += 1
        elif kind is Trade:
            self._event_counts["Trade"] += 1
        else:
            self._event_counts["BestBidAsk"] += 1
        last = self._last
        if last is not None and last[0] is event.symbol and last[1] is exchange:
            pipe = last[2]
        else:
            pipe = self._pipeline_of(event.exchange, event.symbol)
            self._last = (event.symbol, event.exchange, pipe)
        pipe.on_event(event, packed)

    def _pipeline_of(self, exchange: str, symbol: str) -> SymbolPipeline:
        pipe = self.engine.pipelines.get(symbol_key(exchange, symbol))
        return pipe if pipe is not None else self.engine.pipeline(exchange, symbol)

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if now >= self._next_flush:
            self._next_flush = now + self._flush_every
            self.engine.flush_rows()

    def tick(self) -> None:
        """Publish the gathered rows if ``flush_every_s`` has passed (a live run's idle tick)."""
        self._maybe_flush()

    def flush_rows(self) -> None:
        """Publish every gathered row now."""
        self._next_flush = time.monotonic() + self._flush_every
        self.engine.flush_rows()

    def finish(self) -> None:
        """End of stream: every stage emits what it holds, every gathered row is published."""
        self.engine.finish()
