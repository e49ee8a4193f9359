"""The engine's live state: bounded recent history per symbol, for the API.

:class:`LiveStateStore` subscribes to :data:`Topics.ROWS` and keeps, per
``(exchange, symbol)``, a ring buffer (``deque(maxlen=...)``) of the most recent
rows of each dashboard table (a :class:`~microstream.bus.protocol.RowBatch` is
stored as the rows it carries). It also holds "live" values the engine pushes with
:meth:`LiveStateStore.set_live` (the full depth ladder, the forming bar, the
scorecard, model info, warm-up progress) and a health provider callable.

Memory is bounded whatever the run length: every buffer has a fixed maximum
length, the depth ladder is cut to ``max_depth_levels`` a side, and the
heatmap keeps at most ``heatmap_snapshots`` sampled ladders a symbol.

Thread safety: the engine writes from its own thread while the API reads from
another; every access goes through one lock and readers get copies.

Live keys the dashboard understands (all optional, any JSON-able value):

- ``depth``: ``{"ts": ns, "bids": [[price, qty], ...], "asks": [[price, qty], ...]}``
  best level first, up to 100 levels a side (also sampled into the heatmap);
- ``forming_bar``: the current, unfinished ``bars_1m`` row;
- ``scorecard``: live forecast scorecard, e.g. ``{"n": 120, "hit_rate": 0.41,
  "log_loss": 1.02, "brier": 0.6, "baseline_hit_rate": 0.33}``;
- ``model``: model info, e.g. ``{"name": "logreg", "version": "2024-08-08"}``;
- ``warmup``: ``{"done": 40, "needed": 300}`` or fractions per model in [0, 1];
- ``book``: sync state of the book (``book_state``, ``gaps``, ``resyncs``...);
- ``features_live``: the feature values after the latest book event.

:meth:`LiveStateStore.update_from_engine` fills these from
:meth:`microstream.engine.Engine.live_state`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microstream.bus.protocol import Bus, Row, RowBatch, Topics, split_symbol_key

log = logging.getLogger(__name__)

HealthProvider = Callable[[], dict[str, Any]]
"""Returns the ``/health`` document (see :mod:`microstream.api`)."""

TIME_COLUMNS: dict[str, str] = {
    "trades": "ts_event",
    "book_top": "ts_event",
    "book_sync": "ts_recv",
    "features": "ts",
    "bars_1m": "ts",
    "regimes": "ts",
    "signals_1m": "ts",
    "predictions": "ts",
    "sim_truth": "ts",
}
"""The tables kept live and the column that orders each one (Unix ns)."""

DEFAULT_MAXLEN: dict[str, int] = {
    "trades": 5000,
    "book_top": 3600,
    "book_sync": 500,
    "features": 3600,
    "bars_1m": 240,
    "regimes": 3600,
    "signals_1m": 240,
    "predictions": 3600,
    "sim_truth": 3600,
}
"""Default ring-buffer lengths (rows per symbol)."""

DEPTH_KEY = "depth"
"""The live key of the full depth ladder."""


@dataclass(frozen=True)
class LiveStateConfig:
    """Bounds of the live state.

    Attributes:
        maxlen: rows kept per table and symbol (tables not listed are ignored).
        max_depth_levels: depth-ladder levels kept a side.
        heatmap_snapshots: sampled ladders kept per symbol for the heatmap.
        heatmap_interval_ns: minimum data-time gap between two heatmap samples.
        max_live_keys: distinct live keys kept per symbol (protects memory).
    """

    maxlen: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MAXLEN))
    max_depth_levels: int = 100
    heatmap_snapshots: int = 600
    heatmap_interval_ns: int = 1_000_000_000
    max_live_keys: int = 64


@dataclass
class DepthSample:
    """One sampled ladder: ``bids``/``asks`` are ``(n, 2)`` arrays of price, qty."""

    ts: int
    bids: np.ndarray[Any, np.dtype[np.float64]]
    asks: np.ndarray[Any, np.dtype[np.float64]]


def row_time(table: str, values: Mapping[str, Any]) -> int | None:
    """The ordering time (Unix ns) of a row of ``table``, or ``None``."""
    raw = values.get(TIME_COLUMNS.get(table, "ts"))
    if raw is None:
        raw = values.get("ts", values.get("ts_event", values.get("ts_recv")))
    try:
        return None if raw is None else int(raw)
    except (TypeError, ValueError):
        return None


def _ladder_array(levels: Any, max_levels: int) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``levels`` (pairs of price, qty) as a finite, positive ``(n, 2)`` float array."""
    arr = np.asarray(levels if levels is not None else [], dtype=np.float64)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    arr = arr.reshape(-1, 2)[:max_levels]
    keep = np.isfinite(arr).all(axis=1) & (arr[:, 0] > 0) & (arr[:, 1] >= 0)
    return np.ascontiguousarray(arr[keep])


def _book_top_ladder(values: Mapping[str, Any]) -> dict[str, Any]:
    """A 5-level ladder from a ``book_top`` row (levels that are null dropped)."""
    ladder: dict[str, Any] = {"ts": row_time("book_top", values)}
    for side in ("bid", "ask"):
        levels = []
        for i in range(1, 6):
            px, qty = values.get(f"{side}_px_{i}"), values.get(f"{side}_qty_{i}")
            if px is not None and qty is not None:
                levels.append([float(px), float(qty)])
        ladder[f"{side}s"] = levels
    return ladder


_BOOK_FIELDS = ("book_state", "book_valid", "sync_epoch", "gaps", "resyncs", "stats")


def _engine_live_values(state: Mapping[str, Any]) -> dict[str, Any]:
    """The live values of one symbol's engine state (see ``update_from_engine``)."""
    out: dict[str, Any] = {}
    features = state.get("features")
    features = features if isinstance(features, Mapping) else {}
    models = state.get("models")
    models = models if isinstance(models, Mapping) else {}
    if "bids" in state or "asks" in state:
        ts = features.get("ts")
        out[DEPTH_KEY] = {
            "ts": ts if isinstance(ts, int) else time.time_ns(),
            "bids": state.get("bids") or [],
            "asks": state.get("asks") or [],
        }
    book = {k: state[k] for k in _BOOK_FIELDS if k in state}
    if book:
        out["book"] = book
    if "bar" in features:
        out["forming_bar"] = features["bar"]
    if isinstance(features.get("features"), Mapping):
        out["features_live"] = features["features"]
    for name in ("scorecard", "warmup", "model_errors"):
        if name in models:
            out[name] = models[name]
    if "models" in models:
        out["model"] = models["models"]
    return out


class _SymbolState:
    """Everything kept for one ``(exchange, symbol)``."""

    def __init__(self, config: LiveStateConfig) -> None:
        self.tables: dict[str, deque[dict[str, Any]]] = {
            name: deque(maxlen=max(1, n)) for name, n in config.maxlen.items()
        }
        self.live: dict[str, Any] = {}
        self.live_updated_ns: dict[str, int] = {}
        self.heatmap: deque[DepthSample] = deque(maxlen=max(1, config.heatmap_snapshots))
        self.has_full_depth = False
        self.rows_total = 0


class LiveStateStore:
    """Bounded, thread-safe live state of every symbol the engine runs.

    Args:
        config: buffer bounds (defaults: :data:`DEFAULT_MAXLEN`).
        source: the data source name (``binance``, ``sim``, ``replay``, ...).
        simulated: whether the data is simulated (the UI shows a banner).
    """

    def __init__(
        self,
        config: LiveStateConfig | None = None,
        *,
        source: str = "unknown",
        simulated: bool = False,
    ) -> None:
        self.config = config or LiveStateConfig()
        self._lock = threading.Lock()
        self._symbols: dict[tuple[str, str], _SymbolState] = {}
        self._health_provider: HealthProvider | None = None
        self._source = source
        self._simulated = simulated
        self._started_ns = time.time_ns()
        self._last_row_wall_ns: int | None = None
        self.rows_by_table: dict[str, int] = {}
        self.rows_ignored = 0
        self.rows_rejected = 0

    # -- writing (engine thread) -------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Subscribe to :data:`Topics.ROWS` on ``bus``."""
        bus.subscribe(Topics.ROWS, self.on_message)

    def on_message(self, key: str, message: Any) -> None:
        """Bus handler: store a :class:`Row` or the rows of a :class:`RowBatch` of a live table."""
        if isinstance(message, Row):
            self.add_row(message)
        elif isinstance(message, RowBatch):
            self.add_batch(message)
        else:
            with self._lock:
                self.rows_rejected += 1
            log.debug("live state: ignored a %s on %s", type(message).__name__, key)

    def add_batch(self, batch: RowBatch) -> None:
        """Store the rows of ``batch`` exactly as :meth:`add_row` stores each of them.

        Only the rows the ring buffer keeps are converted to dicts, unless
        the heatmap samples them (``book_top`` without a pushed ladder).
        """
        if batch.table not in self.config.maxlen:
            with self._lock:
                self.rows_ignored += batch.num_rows
            return
        columns = batch.columns
        try:
            total = int(columns.num_rows)
            if not self._samples_heatmap(batch):  # only the newest rows survive
                columns = columns.slice(max(0, total - self.config.maxlen[batch.table]))
            rows: list[dict[str, Any]] = columns.to_pylist()
        except (AttributeError, TypeError, ValueError):
            with self._lock:
                self.rows_rejected += 1
            log.warning("live state: %s batch without Arrow columns skipped", batch.table)
            return
        if total:
            self._store_rows(batch.table, batch.exchange, batch.symbol, rows, total)

    def _samples_heatmap(self, batch: RowBatch) -> bool:
        """Whether a row of ``batch`` may be sampled into the heatmap.

        Once a symbol has a pushed ladder it never samples rows again, so a
        False answer stays true while the batch is stored.
        """
        if batch.table != "book_top":
            return False
        with self._lock:
            state = self._symbols.get((batch.exchange, batch.symbol))
            return state is None or not state.has_full_depth

    def _store_rows(
        self, table: str, exchange: str, symbol: str, rows: list[dict[str, Any]], total: int
    ) -> None:
        """Append the last rows of ``total`` new rows of a table (``rows``: at least the kept ones)."""
        with self._lock:
            state = self._state(exchange, symbol)
            buffer = state.tables[table]
            sample = table == "book_top" and not state.has_full_depth
            for values in rows:
                buffer.append(values)
                if sample:
                    self._sample_heatmap(state, _book_top_ladder(values))
            state.rows_total += total
            self.rows_by_table[table] = self.rows_by_table.get(table, 0) + total
            self._last_row_wall_ns = time.time_ns()

    def add_row(self, row: Row) -> None:
        """Append ``row`` to its symbol's ring buffer (unknown tables are counted)."""
        if row.table not in self.config.maxlen:
            with self._lock:
                self.rows_ignored += 1
            return
        if not isinstance(row.values, Mapping):
            with self._lock:
                self.rows_rejected += 1
            log.warning("live state: %s row without a values mapping skipped", row.table)
            return
        self._store_rows(row.table, row.exchange, row.symbol, [dict(row.values)], 1)

    def set_live(self, exchange: str, symbol: str, key: str, value: Any) -> None:
        """Set a live value of a symbol (``depth``, ``forming_bar``, ``scorecard``...).

        A ``depth`` value is cut to ``max_depth_levels`` a side and sampled into
        the heatmap at most once per ``heatmap_interval_ns`` of its ``ts``.
        """
        if key == DEPTH_KEY:
            value = self._clean_depth(value)
        with self._lock:
            state = self._state(exchange, symbol)
            if key not in state.live and len(state.live) >= self.config.max_live_keys:
                self.rows_rejected += 1
                log.warning("live state: too many live keys, %r dropped", key)
                return
            state.live[key] = value
            state.live_updated_ns[key] = time.time_ns()
            if key == DEPTH_KEY and value is not None:
                state.has_full_depth = True
                self._sample_heatmap(state, value)

    def update_from_engine(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Copy :meth:`microstream.engine.Engine.live_state` into the live values.

        ``states`` is keyed ``exchange:SYMBOL``; per symbol, ``bids``/``asks``
        become ``depth``, the feature stage's ``bar`` becomes ``forming_bar`` and
        its ``features`` ``features_live``, the model stage's ``scorecard``,
        ``models`` (versions) and ``warmup`` keep their names (``models`` as
        ``model``), and the book's sync fields become ``book``. Call it from the
        engine's thread (the engine's objects are not thread-safe), e.g. a few
        times a second.
        """
        for key, state in states.items():
            exchange, symbol = split_symbol_key(str(key))
            if not exchange or not isinstance(state, Mapping):
                continue
            for name, value in _engine_live_values(state).items():
                self.set_live(exchange, symbol, name, value)

    def set_health_provider(self, provider: HealthProvider | None) -> None:
        """Register the callable that returns the engine's health document."""
        with self._lock:
            self._health_provider = provider

    def set_source(self, source: str, simulated: bool) -> None:
        """Record the data source and whether it is simulated."""
        with self._lock:
            self._source = source
            self._simulated = simulated

    # -- reading (API thread) ----------------------------------------------------

    @property
    def source(self) -> str:
        """The data source name."""
        return self._source

    @property
    def simulated(self) -> bool:
        """Whether the data is simulated."""
        return self._simulated

    @property
    def started_ns(self) -> int:
        """Wall-clock time the store was created (Unix ns)."""
        return self._started_ns

    def last_row_age_s(self) -> float | None:
        """Seconds since the last row arrived (``None`` before the first one)."""
        last = self._last_row_wall_ns
        return None if last is None else (time.time_ns() - last) / 1e9

    def symbols(self) -> list[tuple[str, str]]:
        """Every ``(exchange, symbol)`` seen, sorted."""
        with self._lock:
            return sorted(self._symbols)

    def has_symbol(self, exchange: str, symbol: str) -> bool:
        """Whether anything was stored for ``(exchange, symbol)``."""
        with self._lock:
            return (exchange, symbol) in self._symbols

    def tables(self) -> list[str]:
        """The tables kept live."""
        return list(self.config.maxlen)

    def history(
        self,
        exchange: str,
        symbol: str,
        table: str,
        *,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Recent rows of ``table``, oldest first.

        Args:
            since: keep rows whose time is strictly after this Unix-ns time.
            limit: keep at most the ``limit`` most recent of those rows.
        """
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            if state is None or table not in state.tables:
                return []
            buffer = state.tables[table]
            cap = len(buffer) if limit is None else max(0, min(limit, len(buffer)))
            picked: list[dict[str, Any]] = []
            for values in reversed(buffer):
                if len(picked) >= cap:
                    break
                if since is not None:
                    ts = row_time(table, values)
                    if ts is not None and ts <= since:
                        break
                picked.append(dict(values))
        picked.reverse()
        return picked

    def latest(self, exchange: str, symbol: str) -> dict[str, dict[str, Any] | None]:
        """The most recent row of every live table (``None`` where there is none)."""
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            if state is None:
                return {}
            return {name: (dict(buf[-1]) if buf else None) for name, buf in state.tables.items()}

    def counts(self, exchange: str, symbol: str) -> dict[str, int]:
        """Rows currently buffered per table."""
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            return {} if state is None else {n: len(b) for n, b in state.tables.items()}

    def live(self, exchange: str, symbol: str, *, include_depth: bool = True) -> dict[str, Any]:
        """The live values of a symbol (a shallow copy)."""
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            if state is None:
                return {}
            return {k: v for k, v in state.live.items() if include_depth or k != DEPTH_KEY}

    def depth(self, exchange: str, symbol: str) -> dict[str, Any] | None:
        """The latest depth ladder: the pushed one, else the last ``book_top`` row's."""
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            if state is None:
                return None
            pushed = state.live.get(DEPTH_KEY)
            if pushed is not None:
                return dict(pushed)
            top = state.tables["book_top"][-1] if state.tables.get("book_top") else None
        return None if top is None else _book_top_ladder(top)

    def heatmap_samples(
        self, exchange: str, symbol: str, *, limit: int | None = None
    ) -> list[DepthSample]:
        """The sampled ladders of a symbol, oldest first (arrays are shared, read-only)."""
        with self._lock:
            state = self._symbols.get((exchange, symbol))
            if state is None:
                return []
            samples = list(state.heatmap)
        return samples if limit is None else samples[-limit:] if limit > 0 else []

    def health(self) -> dict[str, Any]:
        """The engine's health document (provider's answer over store defaults)."""
        with self._lock:
            provider = self._health_provider
        age = self.last_row_age_s()
        doc: dict[str, Any] = {
            "status": "ok" if age is not None and age < 10 else "degraded",
            "source": self._source,
            "simulated": self._simulated,
            "uptime_s": (time.time_ns() - self._started_ns) / 1e9,
            "last_row_age_s": age,
        }
        if provider is None:
            return doc
        try:
            doc.update(provider())
        except Exception as exc:  # a broken provider must not break /health
            log.exception("health provider failed")
            doc["status"] = "degraded"
            doc["health_error"] = f"{type(exc).__name__}: {exc}"
        return doc

    # -- internals ---------------------------------------------------------------

    def _state(self, exchange: str, symbol: str) -> _SymbolState:
        key = (exchange, symbol)
        state = self._symbols.get(key)
        if state is None:
            state = _SymbolState(self.config)
            self._symbols[key] = state
        return state

    def _clean_depth(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            log.warning("live state: depth value is not a mapping, skipped")
            return None
        n = self.config.max_depth_levels
        bids = _ladder_array(value.get("bids"), n)
        asks = _ladder_array(value.get("asks"), n)
        ts = value.get("ts")
        return {
            "ts": int(ts) if isinstance(ts, int | float) else time.time_ns(),
            "bids": bids.tolist(),
            "asks": asks.tolist(),
        }

    def _sample_heatmap(self, state: _SymbolState, ladder: Mapping[str, Any]) -> None:
        ts = ladder.get("ts")
        if not isinstance(ts, int):
            ts = time.time_ns()
        if state.heatmap and ts - state.heatmap[-1].ts < self.config.heatmap_interval_ns:
            return
        n = self.config.max_depth_levels
        state.heatmap.append(
            DepthSample(
                ts=ts,
                bids=_ladder_array(ladder.get("bids"), n),
                asks=_ladder_array(ladder.get("asks"), n),
            )
        )


def bin_heatmap(samples: Sequence[DepthSample], bins: int) -> dict[str, Any]:
    """Resting size per price bin and sample time, for a liquidity heatmap.

    Returns ``{"ts": [...], "prices": [...bin centres...], "z": [[size per time]
    per price bin], "mid": [...]}``; cells no ladder covered are ``None``.
    """
    empty: dict[str, Any] = {"ts": [], "prices": [], "z": [], "mid": []}
    usable = [s for s in samples if len(s.bids) or len(s.asks)]
    if not usable or bins < 1:
        return empty
    all_px = np.concatenate([np.concatenate([s.bids[:, 0], s.asks[:, 0]]) for s in usable])
    lo, hi = float(all_px.min()), float(all_px.max())
    if hi <= lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-9)
    edges = np.linspace(lo, hi, bins + 1)
    z = np.full((bins, len(usable)), np.nan)
    mids: list[float | None] = []
    for col, sample in enumerate(usable):
        levels = np.concatenate([sample.bids, sample.asks])
        idx = np.clip(np.searchsorted(edges, levels[:, 0], side="right") - 1, 0, bins - 1)
        covered = np.zeros(bins)
        np.add.at(covered, idx, levels[:, 1])
        span_lo = np.searchsorted(edges, levels[:, 0].min(), side="right") - 1
        span_hi = np.searchsorted(edges, levels[:, 0].max(), side="right") - 1
        span = slice(max(0, span_lo), min(bins - 1, span_hi) + 1)
        z[span, col] = covered[span]
        has_both = len(sample.bids) and len(sample.asks)
        mids.append(float((sample.bids[0, 0] + sample.asks[0, 0]) / 2) if has_both else None)
    centres = (edges[:-1] + edges[1:]) / 2
    return {
        "ts": [s.ts for s in usable],
        "prices": centres.tolist(),
        "z": [[None if np.isnan(v) else float(v) for v in r] for r in z],
        "mid": mids,
    }
