"""Building blocks shared by every page: engine status, banner, symbol choice.

:func:`engine_context` is called at the top of each page's live fragment: it
checks the engine, shows the "SIMULATED DATA" banner or the offline panel (with
the launcher), and returns the selected symbol's :class:`Context` or ``None``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from microstream.dashboard import data, launcher

REFRESH_S = 1.5
"""Refresh period of the live fragments."""

_SYMBOL_KEY = "ms_symbol"
_OFFLINE_KEY = "ms_offline_since"
_ONLINE_KEY = "ms_seen_online"
_SIDEBAR_EMPTY_KEY = "ms_sidebar_empty"


@dataclass(frozen=True)
class Context:
    """The engine and symbol a page shows."""

    base: str
    exchange: str
    symbol: str
    source: str
    simulated: bool


def symbol_label(entry: dict[str, Any]) -> str:
    """``exchange:SYMBOL`` of a ``/api/v1/symbols`` entry."""
    return f"{entry.get('exchange')}:{entry.get('symbol')}"


_NO_FADE_CSS = """<style>
[data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>"""


def no_fade() -> None:
    """Keep live panels fully visible while a fragment refreshes (no flicker)."""
    st.html(_NO_FADE_CSS)


def sidebar() -> None:
    """Engine URL and the symbol selector (shown when several symbols run)."""
    base = data.api_url()
    st.sidebar.caption(f"Engine API: `{base}`")
    try:
        labels = [symbol_label(s) for s in data.symbols(base).get("symbols", [])]
    except data.EngineOffline:
        labels = []
    st.session_state[_SIDEBAR_EMPTY_KEY] = not labels
    if len(labels) > 1:
        current = st.session_state.get(_SYMBOL_KEY)
        index = labels.index(current) if current in labels else 0
        st.session_state[_SYMBOL_KEY] = st.sidebar.selectbox("Symbol", labels, index=index)
    elif labels:
        st.session_state[_SYMBOL_KEY] = labels[0]
        st.sidebar.caption(f"Symbol: **{labels[0]}**")


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def simulated_banner() -> None:
    """The loud banner of a simulated source."""
    st.error("**SIMULATED DATA** — this is not a real market.", icon=":material/science:")


def engine_context() -> Context | None:
    """Check the engine; show banner or offline panel; the selected symbol's context."""
    base = data.api_url()
    try:
        doc = data.symbols(base)
    except data.EngineOffline as exc:
        offline_panel(base, str(exc))
        return None
    st.session_state.pop(_OFFLINE_KEY, None)
    st.session_state[_ONLINE_KEY] = True
    simulated = bool(doc.get("simulated"))
    if simulated:
        simulated_banner()
    entries = [s for s in doc.get("symbols", []) if isinstance(s, dict)]
    if not entries:
        st.info(f"Engine is up (source: {doc.get('source')}), waiting for its first rows…")
        return None
    if st.session_state.get(_SIDEBAR_EMPTY_KEY):  # engine came up after the page loaded
        st.session_state[_SIDEBAR_EMPTY_KEY] = False
        st.rerun(scope="app")
    labels = [symbol_label(s) for s in entries]
    chosen = st.session_state.get(_SYMBOL_KEY)
    entry = entries[labels.index(chosen)] if chosen in labels else entries[0]
    return Context(
        base=base,
        exchange=str(entry["exchange"]),
        symbol=str(entry["symbol"]),
        source=str(doc.get("source", "unknown")),
        simulated=simulated,
    )


def offline_panel(base: str, reason: str) -> None:
    """Say that no engine answers (since when), and offer to start one."""
    since = st.session_state.get(_OFFLINE_KEY)
    if since is None:
        since = _now_utc()
        st.session_state[_OFFLINE_KEY] = since
    if st.session_state.get(_ONLINE_KEY):
        st.warning(f"**Engine offline since {since:%H:%M:%S} UTC** — no answer at `{base}`.")
    else:
        st.warning(f"**No engine answers at `{base}`** (checked since {since:%H:%M:%S} UTC).")
    st.caption(reason)
    launcher_panel(base)


@st.cache_resource
def _launched() -> dict[str, launcher.LaunchedEngine]:
    """Engines started from this dashboard process, by API URL."""
    return {}


def launcher_panel(base: str) -> None:
    """Buttons that start an engine serving ``base`` (local URLs only)."""
    if not launcher.can_launch(base):
        st.info("Start the engine on its machine: `microstream run --no-dashboard`.")
        return
    engines = _launched()
    current = engines.get(base)
    if current is not None and current.running():
        age = int(max(0.0, dt.datetime.now().timestamp() - current.started))
        st.info(f"Engine starting (source `{current.source}`, {age} s ago)…")
        return
    if current is not None:
        st.error(f"The engine started here exited with code {current.process.returncode}.")
        tail = current.log_tail()
        if tail:
            st.code(tail, language="text")
    left, right = st.columns(2)
    if left.button("Start engine (live, falls back to simulator)", key="ms_start_auto"):
        engines[base] = launcher.start_engine("auto", base)
        st.rerun(scope="fragment")
    if right.button("Start simulator", key="ms_start_sim"):
        engines[base] = launcher.start_engine("sim", base)
        st.rerun(scope="fragment")


def number(value: Any, fmt: str = "{:,.2f}", missing: str = "—") -> str:
    """``value`` formatted, or ``missing`` when it is null or not finite."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return missing
    if not math.isfinite(value):
        return missing
    return fmt.format(value)


def ns_time(ts: Any) -> str:
    """A Unix-ns time as ``HH:MM:SS`` UTC (``—`` when missing)."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "—"
    return f"{dt.datetime.fromtimestamp(ts / 1e9, dt.UTC):%H:%M:%S}"


def live_value(live: dict[str, Any], key: str) -> Any:
    """A live value pushed by the engine, also looked up under ``models``/``features``."""
    if key in live:
        return live[key]
    for group in ("models", "features"):
        nested = live.get(group)
        if isinstance(nested, dict) and key in nested:
            return nested[key]
    return None


def chart(fig: Any, key: str) -> None:
    """A Plotly figure at full width."""
    st.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False})
