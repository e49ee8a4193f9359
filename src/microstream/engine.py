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

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from microstream.book.sync import BookSynchronizer, ContinuityRule
from microstream.bus.protocol import Bus, Row, Topics, symbol_key
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
from microstream.store.rows import BOOK_TOP_COLUMNS, book_sync_row, trade_row
from microstream.venues.binance.parse import MARKET_BY_EXCHANGE, FrameDecoder

log = logging.getLogger(__name__)

Emit = Callable[[Row], None]


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
    """

    features: bool = True
    models: bool = True
    grid_ms: int = 1000
    simulated: bool = False
    settings: Any = None


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
        emit: Emit,
        options: PipelineOptions | None = None,
        request_snapshot: Callable[[str], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.options = options or PipelineOptions()
        self.stats = SymbolStats()
        self._emit_out = emit
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
        self._extra = {**self._extra, "simulated": True}

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
    def on_event(self, event: MarketEvent) -> None:
        """Process one event of this symbol."""
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
            self.sync.on_depth(event)  # type: ignore[arg-type]
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
        epoch = self.sync.sync_epoch
        self.stats.book_rows += 1
        values = dict(
            zip(
                BOOK_TOP_COLUMNS,
                (
                    ev.ts_event,
                    ev.ts_recv,
                    ev.last_update_id,
                    True,
                    epoch,
                    *bid_px,
                    *bid_qty,
                    *ask_px,
                    *ask_qty,
                ),
                strict=True,
            )
        )
        self._emit(Row("book_top", self.exchange, self.symbol, values))
        if self.features is not None:
            self.features.on_book_top(
                BookTop(
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
                    epoch,
                )
            )

    def _on_sync(self, change: SyncStateChange) -> None:
        self._emit(book_sync_row(change))
        if self.features is not None:
            self.features.on_sync(change)

    def finish(self) -> None:
        """End of stream: let the stages emit what they still hold."""
        if self.features is not None:
            self.features.finish()

    def resync(self, ts_recv: int, reason: str) -> None:
        """Discard the book and request a snapshot (after a reconnect or a rebalance)."""
        self.sync.reset(ts_recv, reason)

    def live_state(self) -> dict[str, Any]:
        """The symbol's current state, for the API and the dashboard."""
        book = self.sync.book
        state: dict[str, Any] = {
            "book_state": str(self.sync.state),
            "book_valid": self.sync.is_synced,
            "sync_epoch": self.sync.sync_epoch,
            "gaps": self.sync.gaps,
            "resyncs": self.sync.resyncs,
            "duplicate_depth_updates": self.sync.duplicates,
            "stale_depth_updates": self.sync.dropped_stale,
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

    def _emitter(self, key: str) -> Emit:
        publish, topic = self.bus.publish, Topics.ROWS

        def emit(row: Row) -> None:
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
        return self.pipelines.pop(key, None)

    def finish(self) -> None:
        """End of stream for every symbol."""
        for pipe in self.pipelines.values():
            pipe.finish()

    def live_state(self) -> dict[str, dict[str, Any]]:
        """Per-symbol live state, keyed ``exchange:SYMBOL``."""
        return {key: pipe.live_state() for key, pipe in self.pipelines.items()}
