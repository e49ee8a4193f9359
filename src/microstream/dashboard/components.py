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

from microstream.dashboard import data, engines, launcher

REFRESH_S = 1.5
"""Refresh period of the live fragments."""

_SYMBOL_KEY = "ms_symbol"
_OFFLINE_KEY = "ms_offline_since"
_ONLINE_KEY = "ms_seen_online"
_SIDEBAR_LABELS_KEY = "ms_sidebar_labels"
_LOST_KEY = "ms_lost_symbol"
_LAST_SERVED_KEY = "ms_last_served"


@dataclass(frozen=True)
class Context:
    """The engine and symbol a page shows (``base``: the engine serving the symbol)."""

    base: str
    exchange: str
    symbol: str
    source: str
    simulated: bool


def symbol_label(entry: dict[str, Any]) -> str:
    """``exchange:SYMBOL`` of a ``/api/v1/symbols`` entry."""
    return engines.symbol_label(entry.get("exchange"), entry.get("symbol"))


_NO_FADE_CSS = """<style>
[data-stale="true"] { opacity: 1 !important; transition: none !important; }
</style>"""


def no_fade() -> None:
    """Keep live panels fully visible while a fragment refreshes (no flicker)."""
    st.html(_NO_FADE_CSS)


def routing() -> engines.Routing:
    """Every configured engine's status and the engine serving each symbol."""
    return data.cluster(data.api_url())


def _forget_lost() -> None:
    st.session_state.pop(_LOST_KEY, None)


def sidebar() -> None:
    """Engine URL(s) and the symbol selector (shown when several symbols run)."""
    view = routing()
    st.sidebar.caption(f"Engine API: `{data.api_url()}`")
    if view.several:
        st.sidebar.caption(f"Engines answering: **{len(view.up)} of {len(view.engines)}**")
    labels = view.labels
    st.session_state[_SIDEBAR_LABELS_KEY] = tuple(labels)
    current = st.session_state.get(_SYMBOL_KEY)
    lost = st.session_state.get(_LOST_KEY)
    if lost in labels:  # the symbol the user watched is served again: back to it
        current = lost
        _forget_lost()
    elif current is not None and labels and current not in labels:
        st.session_state[_LOST_KEY] = current
    if len(labels) > 1:
        index = labels.index(current) if current in labels else 0
        st.session_state[_SYMBOL_KEY] = st.sidebar.selectbox(
            "Symbol", labels, index=index, on_change=_forget_lost
        )
    elif labels:
        st.session_state[_SYMBOL_KEY] = labels[0]
        st.sidebar.caption(f"Symbol: **{labels[0]}**")


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def simulated_banner() -> None:
    """The loud banner of a simulated source."""
    st.error("**SIMULATED DATA** — this is not a real market.", icon=":material/science:")


def last_served() -> dict[str, list[str]]:
    """The symbols each engine (by URL) served when it last answered, in this session."""
    memory = st.session_state.get(_LAST_SERVED_KEY)
    if not isinstance(memory, dict):
        memory = {}
        st.session_state[_LAST_SERVED_KEY] = memory
    return memory


def _remember_served(view: engines.Routing) -> None:
    memory = last_served()
    known = {engine.url for engine in view.engines}
    for url in [url for url in memory if url not in known]:  # left DNS or the list
        del memory[url]
    for engine in view.up:
        memory[engine.url] = view.served_by(engine.url)


def engines_down_warning(view: engines.Routing) -> None:
    """Name the engines that do not answer and the symbols they last served."""
    memory = last_served()
    parts = []
    for engine in view.down:
        served = memory.get(engine.url)
        parts.append(f"`{engine.url}`" + (f" (last serving {', '.join(served)})" if served else ""))
    st.warning(
        f"**{len(view.down)} of {len(view.engines)} engines not answering**: "
        + "; ".join(parts)
        + ". Their symbols are missing until they answer again or another engine takes "
        "them over. See the Health page."
    )


def engine_context() -> Context | None:
    """Check the engines; show banner or offline panel; the selected symbol's context."""
    setting = data.api_url()
    view = routing()
    if not view.up:
        offline_panel(setting, view.reason())
        return None
    st.session_state.pop(_OFFLINE_KEY, None)
    st.session_state[_ONLINE_KEY] = True
    _remember_served(view)
    if view.simulated:
        simulated_banner()
    if view.down:
        engines_down_warning(view)
    labels = view.labels
    if not labels:
        st.info(f"Engine is up (source: {view.source}), waiting for its first rows…")
        return None
    if st.session_state.get(_SIDEBAR_LABELS_KEY) != tuple(labels):  # symbols came or went
        st.session_state[_SIDEBAR_LABELS_KEY] = tuple(labels)
        st.rerun(scope="app")
    chosen = st.session_state.get(_SYMBOL_KEY)
    label = chosen if chosen in labels else labels[0]
    lost = st.session_state.get(_LOST_KEY)
    if lost is not None and lost not in labels:
        st.warning(f"`{lost}` is not served by any engine that answers; showing `{label}`.")
    engine = view.engine_of(label)
    assert engine is not None  # every label has a route
    exchange, symbol = engines.split_label(label)
    return Context(
        base=engine.url,
        exchange=exchange,
        symbol=symbol,
        source=engine.source or "unknown",
        simulated=engine.simulated,
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
    """Buttons that start an engine serving ``base`` (one local URL only)."""
    if base != data.api_url() or len(routing().engines) > 1:
        st.info(
            "Several engines are configured: start them with `microstream engine` "
            "(or `docker compose up -d --scale engine=N`)."
        )
        return
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
