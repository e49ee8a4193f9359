"""Data access of the dashboard: an HTTP client of the engine API, nothing else.

The dashboard talks to the engine only through its API (see ``docs/api.md``), so
it can run on another machine. The engine URL comes from ``MICROSTREAM_API_URL``
(default ``http://127.0.0.1:8765``); it may name several engines (a comma list,
or a host name with several addresses: see :mod:`microstream.dashboard.engines`).
:func:`cluster` asks every engine what it serves and routes each symbol to its
engine; the per-symbol reads below take that engine's URL. Reads are cached for
one second with ``st.cache_data`` so several panels refreshing together cost
one request each.

Every per-engine function raises :class:`EngineOffline` when the engine does not
answer; pages catch it and show the offline panel instead of a traceback.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import requests
import streamlit as st

from microstream.dashboard import engines
from microstream.errors import MicroStreamError

DEFAULT_API_URL = "http://127.0.0.1:8765"
TIMEOUT_S = 2.0

TIME_COLUMNS: dict[str, str] = {
    "trades": "ts_event",
    "book_top": "ts_event",
    "book_sync": "ts_recv",
}
"""Tables whose time column is not ``ts`` (see :mod:`microstream.live_state`)."""


class EngineOffline(MicroStreamError):
    """No engine answered at the API URL (or it answered garbage)."""


def api_url() -> str:
    """The engine API base URL setting, without trailing slashes.

    One URL, or several separated by commas (one per engine).
    """
    raw = os.environ.get("MICROSTREAM_API_URL", DEFAULT_API_URL)
    return engines.normalize(raw) or DEFAULT_API_URL


def _get(url: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``url`` and decode its JSON; 404 gives ``None``; failures raise EngineOffline."""
    try:
        response = requests.get(url, params=params, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise EngineOffline(f"no engine answers at {url}: {type(exc).__name__}") from exc
    if response.status_code == 404:
        return None
    if response.status_code not in (200, 503):
        raise EngineOffline(f"engine answered HTTP {response.status_code} at {url}")
    try:
        return response.json()
    except ValueError as exc:
        raise EngineOffline(f"engine answered non-JSON at {url}") from exc


@st.cache_data(ttl=1, show_spinner=False)
def health(base: str) -> dict[str, Any]:
    """The engine's ``/health`` document."""
    doc = _get(f"{base}/health")
    if not isinstance(doc, dict):
        raise EngineOffline(f"no health document at {base}")
    return doc


@st.cache_data(ttl=1, show_spinner=False)
def symbols(base: str) -> dict[str, Any]:
    """``/api/v1/symbols``: ``{"source", "simulated", "tables", "symbols": [...]}``."""
    doc = _get(f"{base}/api/v1/symbols")
    if not isinstance(doc, dict):
        raise EngineOffline(f"no symbol list at {base}")
    return doc


@st.cache_data(ttl=1, show_spinner=False)
def state(base: str, exchange: str, symbol: str) -> dict[str, Any]:
    """Latest row of every table and the live values of a symbol (``{}`` if unknown)."""
    doc = _get(f"{base}/api/v1/{exchange}/{symbol}/state")
    return doc if isinstance(doc, dict) else {}


@st.cache_data(ttl=1, show_spinner=False)
def depth(base: str, exchange: str, symbol: str, levels: int = 100) -> dict[str, Any]:
    """The depth ladder ``{"ts", "bids", "asks"}`` (empty sides if none yet)."""
    doc = _get(f"{base}/api/v1/{exchange}/{symbol}/depth", {"levels": levels})
    return doc if isinstance(doc, dict) else {"ts": None, "bids": [], "asks": []}


@st.cache_data(ttl=1, show_spinner=False)
def heatmap(base: str, exchange: str, symbol: str, limit: int, bins: int) -> dict[str, Any]:
    """The binned liquidity heatmap ``{"ts", "prices", "z", "mid"}``."""
    doc = _get(f"{base}/api/v1/{exchange}/{symbol}/heatmap", {"limit": limit, "bins": bins})
    return doc if isinstance(doc, dict) else {"ts": [], "prices": [], "z": [], "mid": []}


@st.cache_data(ttl=1, show_spinner=False)
def rows(base: str, exchange: str, symbol: str, table: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recent rows of ``table``, oldest first."""
    doc = _get(f"{base}/api/v1/{exchange}/{symbol}/{table}", {"limit": limit})
    if not isinstance(doc, dict):
        return []
    found = doc.get("rows")
    return found if isinstance(found, list) else []


def engine_status(endpoint: engines.Endpoint) -> engines.EngineStatus:
    """Ask one engine for its symbols and its health (not cached; any thread)."""
    try:
        listed = _get(f"{endpoint.url}/api/v1/symbols")
    except EngineOffline as exc:
        return engines.engine_status(endpoint, None, None, str(exc))
    if not isinstance(listed, dict):
        return engines.engine_status(endpoint, None, None, f"no symbol list at {endpoint.url}")
    try:
        doc = _get(f"{endpoint.url}/health")
    except EngineOffline:  # it answered the symbol list: up, ownership unknown
        doc = None
    return engines.engine_status(endpoint, listed, doc)


@st.cache_data(ttl=1, show_spinner=False)
def cluster(setting: str) -> engines.Routing:
    """Every engine of ``setting`` asked in parallel, and the engine of each symbol."""
    found = engines.endpoints(setting)
    if len(found) == 1:
        return engines.route([engine_status(found[0])])
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(found)))) as pool:
        return engines.route(list(pool.map(engine_status, found)))


def frame(rows_: list[dict[str, Any]], table: str) -> pd.DataFrame:
    """Rows as a DataFrame with a UTC ``time`` column from the table's time column."""
    df = pd.DataFrame(rows_)
    column = TIME_COLUMNS.get(table, "ts")
    if df.empty or column not in df:
        return pd.DataFrame({"time": pd.Series([], dtype="datetime64[ns, UTC]")})
    df["time"] = pd.to_datetime(df[column], unit="ns", utc=True)
    return df


def table_frame(base: str, exchange: str, symbol: str, table: str, limit: int) -> pd.DataFrame:
    """:func:`rows` as a :func:`frame`."""
    return frame(rows(base, exchange, symbol, table, limit), table)


def clear_cache() -> None:
    """Forget every cached answer and resolved name (tests, and after starting an engine)."""
    for fn in (health, symbols, state, depth, heatmap, rows, cluster):
        fn.clear()
    engines.clear_resolved()
