"""The engine's HTTP API: health, Prometheus metrics, live state and recent history.

:class:`EngineApi` serves a :class:`~microstream.live_state.LiveStateStore` with
aiohttp from its own thread and event loop, so the engine's thread never waits
on a client. It binds 127.0.0.1 by default; port 0 picks a free port (tests).

Endpoints (all ``GET``; JSON unless said otherwise; documented in ``docs/api.md``
and served as an OpenAPI 3 document at ``/openapi.json``):

- ``/health`` — engine health; HTTP 503 when ``status`` is ``down``.
- ``/metrics`` — Prometheus text exposition format 0.0.4.
- ``/api/v1/symbols`` — the symbols running, the source, whether simulated.
- ``/api/v1/{exchange}/{symbol}/state`` — latest row of every table + live values.
- ``/api/v1/{exchange}/{symbol}/depth`` — the depth ladder.
- ``/api/v1/{exchange}/{symbol}/heatmap?limit=N&bins=B`` — binned liquidity heatmap.
- ``/api/v1/{exchange}/{symbol}/{table}?since=NS&limit=N`` — recent rows of a table.
- ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec
from aiohttp import web

from microstream.bus.protocol import split_symbol_key
from microstream.errors import MicroStreamError
from microstream.live_state import LiveStateStore, bin_heatmap

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiError(MicroStreamError):
    """The engine API could not start or stop."""


def _enc_hook(obj: Any) -> Any:
    """Encode numpy scalars/arrays and other odd values msgspec does not know."""
    item = getattr(obj, "item", None)
    if callable(item) and getattr(obj, "shape", None) == ():
        return item()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    return str(obj)


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)


def encode_json(data: Any) -> bytes:
    """``data`` as JSON bytes (NaN and infinities become ``null``)."""
    return _ENCODER.encode(data)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(data), status=status, content_type=JSON_TYPE)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def _int_query(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text=encode_json({"error": f"{name} must be an integer"}).decode(),
            content_type=JSON_TYPE,
        ) from exc


# -- Prometheus exposition ------------------------------------------------------


def _metric_name(parts: Iterable[str]) -> str:
    raw = "_".join(p for p in parts if p)
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in raw)
    return name if not name[:1].isdigit() else f"_{name}"


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if not value.is_integer() else str(int(value))


def _walk(
    doc: Mapping[str, Any], path: tuple[str, ...], labels: dict[str, str]
) -> Iterator[tuple[str, dict[str, str], float]]:
    """Numeric leaves of a health document as ``(name, labels, value)``.

    A string leaf becomes a 1-valued sample with the string as a label (e.g.
    ``status="ok"``); a mapping under ``symbols`` keyed ``exchange:SYMBOL`` becomes
    ``exchange``/``symbol`` labels.
    """
    for key, value in doc.items():
        if isinstance(value, Mapping):
            if key == "symbols":
                for sym_key, sub in value.items():
                    exchange, symbol = split_symbol_key(str(sym_key))
                    if isinstance(sub, Mapping):
                        extra = {"exchange": exchange or str(sym_key), "symbol": symbol}
                        yield from _walk(sub, (*path, "symbol"), {**labels, **extra})
            else:
                yield from _walk(value, (*path, str(key)), labels)
            continue
        number = _number(value)
        name = _metric_name(("microstream", *path, str(key)))
        if number is not None:
            yield name, labels, number
        elif isinstance(value, str) and len(value) <= 64:
            yield name + "_info", {**labels, str(key): value}, 1.0


def render_metrics(store: LiveStateStore) -> str:
    """The Prometheus text exposition of the store's counters and the health document."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}

    def add(name: str, labels: dict[str, str], value: float) -> None:
        samples.setdefault(name, []).append((labels, value))

    health = store.health()
    status = str(health.get("status", "down"))
    add("microstream_up", {}, 0.0 if status == "down" else 1.0)
    for name, labels, value in _walk(health, (), {}):
        add(name, labels, value)
    for table, count in sorted(store.rows_by_table.items()):
        add("microstream_live_rows_total", {"table": table}, float(count))
    add("microstream_live_rows_ignored_total", {}, float(store.rows_ignored))
    add("microstream_live_rows_rejected_total", {}, float(store.rows_rejected))
    add("microstream_live_symbols", {}, float(len(store.symbols())))
    lines: list[str] = []
    for name in sorted(samples):
        kind = "counter" if name.endswith("_total") else "gauge"
        lines.append(f"# TYPE {name} {kind}")
        seen: set[str] = set()
        for labels, value in samples[name]:
            label_text = _labels(labels)
            if label_text in seen:  # a series appears once
                continue
            seen.add(label_text)
            lines.append(f"{name}{label_text} {_format_value(value)}")
    return "\n".join(lines) + "\n"


# -- handlers -------------------------------------------------------------------


class _Handlers:
    """Request handlers over one store."""

    def __init__(self, store: LiveStateStore) -> None:
        self.store = store

    async def health(self, request: web.Request) -> web.Response:
        doc = self.store.health()
        return _json(doc, status=503 if doc.get("status") == "down" else 200)

    async def metrics(self, request: web.Request) -> web.Response:
        body = render_metrics(self.store)
        return web.Response(body=body.encode(), headers={"Content-Type": METRICS_TYPE}, status=200)

    async def symbols(self, request: web.Request) -> web.Response:
        return _json(
            {
                "source": self.store.source,
                "simulated": self.store.simulated,
                "tables": self.store.tables(),
                "symbols": [{"exchange": e, "symbol": s} for e, s in self.store.symbols()],
            }
        )

    def _symbol(self, request: web.Request) -> tuple[str, str]:
        exchange = request.match_info["exchange"]
        symbol = request.match_info["symbol"].upper()
        if not self.store.has_symbol(exchange, symbol):
            raise web.HTTPNotFound(
                text=encode_json({"error": f"unknown symbol {exchange}/{symbol}"}).decode(),
                content_type=JSON_TYPE,
            )
        return exchange, symbol

    async def state(self, request: web.Request) -> web.Response:
        exchange, symbol = self._symbol(request)
        return _json(
            {
                "exchange": exchange,
                "symbol": symbol,
                "source": self.store.source,
                "simulated": self.store.simulated,
                "latest": self.store.latest(exchange, symbol),
                "live": self.store.live(exchange, symbol, include_depth=False),
                "counts": self.store.counts(exchange, symbol),
            }
        )

    async def depth(self, request: web.Request) -> web.Response:
        exchange, symbol = self._symbol(request)
        ladder = self.store.depth(exchange, symbol)
        if ladder is None:
            return _error(404, f"no depth yet for {exchange}/{symbol}")
        levels = _int_query(request, "levels", None)
        if levels is not None:
            ladder = {**ladder, "bids": ladder["bids"][:levels], "asks": ladder["asks"][:levels]}
        return _json(ladder)

    async def heatmap(self, request: web.Request) -> web.Response:
        exchange, symbol = self._symbol(request)
        limit = _int_query(request, "limit", 300)
        bins = _int_query(request, "bins", 80) or 80
        samples = self.store.heatmap_samples(exchange, symbol, limit=limit)
        return _json(bin_heatmap(samples, max(1, min(bins, 1000))))

    async def table(self, request: web.Request) -> web.Response:
        exchange, symbol = self._symbol(request)
        table = request.match_info["table"]
        if table not in self.store.tables():
            return _error(404, f"unknown table {table!r}; known: {self.store.tables()}")
        since = _int_query(request, "since", None)
        limit = _int_query(request, "limit", DEFAULT_LIMIT)
        limit = max(0, min(limit if limit is not None else DEFAULT_LIMIT, MAX_LIMIT))
        rows = self.store.history(exchange, symbol, table, since=since, limit=limit)
        return _json({"exchange": exchange, "symbol": symbol, "table": table, "rows": rows})

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(openapi_document(self.store.tables()))

    async def docs(self, request: web.Request) -> web.Response:
        return web.Response(text=_DOCS_PAGE, content_type="text/html")


def build_app(store: LiveStateStore) -> web.Application:
    """The aiohttp application serving ``store``."""
    h = _Handlers(store)
    app = web.Application()
    base = API_PREFIX + "/{exchange}/{symbol}"
    app.router.add_get("/health", h.health)
    app.router.add_get("/metrics", h.metrics)
    app.router.add_get("/openapi.json", h.openapi)
    app.router.add_get("/docs", h.docs)
    app.router.add_get(API_PREFIX + "/symbols", h.symbols)
    app.router.add_get(base + "/state", h.state)
    app.router.add_get(base + "/depth", h.depth)
    app.router.add_get(base + "/heatmap", h.heatmap)
    app.router.add_get(base + "/{table}", h.table)
    return app


class EngineApi:
    """The engine API served from a background thread with its own event loop.

    Args:
        store: the live state to serve.
        host: address to bind (127.0.0.1 by default: local clients only).
        port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
    """

    def __init__(self, store: LiveStateStore, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.store = store
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """Base URL of the running API, e.g. ``http://127.0.0.1:8765``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the socket listens (raises :class:`ApiError`)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="engine-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ApiError(f"engine API did not start within {timeout} s")
        if self._error is not None:
            self._thread = None
            raise ApiError(f"engine API cannot listen on {self.host}:{self.port}: {self._error}")
        log.info("engine API on %s", self.url)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout)
        except Exception:
            log.exception("engine API shutdown failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EngineApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except Exception as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        runner = web.AppRunner(build_app(self.store), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


# -- OpenAPI --------------------------------------------------------------------


def _param(name: str, where: str, kind: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": kind},
        "description": description,
    }


_SYMBOL_PARAMS = [
    _param("exchange", "path", "string", "binance, binance-futures, binance-coinm, sim..."),
    _param("symbol", "path", "string", "symbol, e.g. BTCUSDT (case-insensitive)"),
]
_OBJ = {"type": "object", "additionalProperties": True}


def _op(summary: str, params: list[dict[str, Any]], *, content: str = JSON_TYPE) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"} if content != JSON_TYPE else _OBJ
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {content: {"schema": schema}}}
    }
    if any(p["in"] == "path" for p in params):
        responses["404"] = {"description": "unknown symbol or table"}
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def openapi_document(tables: list[str]) -> dict[str, Any]:
    """The OpenAPI 3.0 description of every endpoint."""
    base = API_PREFIX + "/{exchange}/{symbol}"
    health = _op("Engine health (503 when status is down)", [])
    health["get"]["responses"]["503"] = {"description": "the engine is down"}
    table_params = [
        *_SYMBOL_PARAMS,
        {**_param("table", "path", "string", "a live table"), "schema": {"enum": tables}},
        _param("since", "query", "integer", "only rows with time > since (Unix ns)"),
        _param(
            "limit", "query", "integer", f"at most N most recent rows (default {DEFAULT_LIMIT})"
        ),
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "MicroStream engine API",
            "version": "1",
            "description": "Live state, recent history, health and metrics of a running engine.",
        },
        "paths": {
            "/health": health,
            "/metrics": _op("Prometheus metrics", [], content="text/plain"),
            API_PREFIX + "/symbols": _op("Symbols, source, simulated flag", []),
            base + "/state": _op("Latest row of every table and live values", _SYMBOL_PARAMS),
            base + "/depth": _op(
                "Depth ladder (bids/asks, best first)",
                [*_SYMBOL_PARAMS, _param("levels", "query", "integer", "levels a side")],
            ),
            base + "/heatmap": _op(
                "Liquidity heatmap: resting size per price bin and time",
                [
                    *_SYMBOL_PARAMS,
                    _param("limit", "query", "integer", "sampled ladders (default 300)"),
                    _param("bins", "query", "integer", "price bins (default 80)"),
                ],
            ),
            base + "/{table}": _op("Recent rows of a table, oldest first", table_params),
            "/openapi.json": _op("This document", []),
            "/docs": _op("A short HTML index", [], content="text/html"),
        },
    }


_DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>MicroStream engine API</title></head>
<body style="font-family: sans-serif; max-width: 50em; margin: 2em auto">
<h1>MicroStream engine API</h1>
<p>All endpoints are <code>GET</code>. The full description is
<a href="/openapi.json">/openapi.json</a> (OpenAPI 3).</p>
<ul>
<li><a href="/health">/health</a> &mdash; engine health (503 when down)</li>
<li><a href="/metrics">/metrics</a> &mdash; Prometheus metrics</li>
<li><a href="/api/v1/symbols">/api/v1/symbols</a> &mdash; symbols, source, simulated flag</li>
<li><code>/api/v1/{exchange}/{symbol}/state</code> &mdash; latest of every table + live values</li>
<li><code>/api/v1/{exchange}/{symbol}/depth</code> &mdash; depth ladder</li>
<li><code>/api/v1/{exchange}/{symbol}/heatmap?limit=300&amp;bins=80</code> &mdash; liquidity heatmap</li>
<li><code>/api/v1/{exchange}/{symbol}/{table}?since=NS&amp;limit=N</code> &mdash; recent rows</li>
</ul></body></html>
"""
