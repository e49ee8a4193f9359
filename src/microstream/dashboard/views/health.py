"""Health page: feed, latency, book-sync ledger, queues, drops, models, warm-up."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from microstream.dashboard import charts, data, engines
from microstream.dashboard import components as ui

st.title("Engine health")


@st.fragment(run_every=ui.REFRESH_S)
def health_panels() -> None:
    """Health numbers and tables, refreshed in place."""
    ctx = ui.engine_context()
    view = ui.routing()
    if view.several:
        engines_section(view)
    if ctx is None:
        return
    if view.several:
        st.caption(
            f"Below: the engine serving **{ctx.exchange}:{ctx.symbol}**, `{ctx.base}` "
            "(choose another symbol in the sidebar to see its engine)."
        )
    try:
        doc = data.health(ctx.base)
        state = data.state(ctx.base, ctx.exchange, ctx.symbol)
        sync_rows = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "book_sync", 500)
        trades = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "trades", 2000)
    except data.EngineOffline as exc:
        ui.offline_panel(ctx.base, str(exc))
        return
    status_row(doc)
    feed_row(doc, trades)
    book_section(doc, ctx, sync_rows)
    queues_section(doc)
    models_section(doc, state.get("live") or {})
    with st.expander("Raw /health document"):
        st.json(doc)


def _served_text(view: engines.Routing, engine: engines.EngineStatus) -> str:
    served = view.served_by(engine.url)
    if served:
        return ", ".join(served)
    last = ui.last_served().get(engine.url)
    if not engine.up and last:
        return "none now (last served " + ", ".join(last) + ")"
    return "none"


def engines_section(view: engines.Routing) -> None:
    """Every configured engine: whether it answers and which symbols it serves."""
    st.subheader("Engines")
    cols = st.columns(3)
    cols[0].metric("Engines up", f"{len(view.up)} / {len(view.engines)}")
    cols[1].metric("Symbols served", len(view.routes))
    cols[2].metric("Symbols not served", len(view.stale))
    rows = []
    for engine in view.engines:
        health = engine.health or {}
        partitions = health.get("partitions")
        rows.append(
            {
                "engine": engine.url,
                "configured as": engine.endpoint.origin,
                "answers": "up" if engine.up else "DOWN",
                "status": str(health.get("status", "—")) if engine.up else "—",
                "name": str(health.get("engine", "—")),
                "partitions": ", ".join(str(p) for p in partitions)
                if isinstance(partitions, list)
                else "—",
                "symbols served": _served_text(view, engine),
                "error": engine.error or "",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if view.stale:
        st.caption(
            "Held by an engine that handed them over, served by none that answers: "
            + ", ".join(view.stale)
        )


def status_row(doc: dict[str, Any]) -> None:
    """Overall status, source and uptime."""
    status = str(doc.get("status", "unknown"))
    cols = st.columns(4)
    cols[0].metric("Status", status.upper())
    cols[1].metric("Source", str(doc.get("source", "—")))
    cols[2].metric("Uptime", ui.number(doc.get("uptime_s"), "{:,.0f} s"))
    cols[3].metric("Last row", ui.number(doc.get("last_row_age_s"), "{:.1f} s ago"))


def _feed_value(doc: dict[str, Any], key: str) -> Any:
    """``key`` from the ``feed`` block of the health document, else from its top level."""
    feed = doc.get("feed")
    if isinstance(feed, dict) and feed.get(key) is not None:
        return feed[key]
    return doc.get(key)


def _total(value: Any) -> Any:
    """A count, or the sum of a mapping of counts (e.g. rejected messages by reason)."""
    if isinstance(value, dict):
        return sum(v for v in value.values() if isinstance(v, int | float))
    return value


def feed_row(doc: dict[str, Any], trades: pd.DataFrame) -> None:
    """Feed connection, message rate, reconnects, latency."""
    st.subheader("Feed")
    connected = _feed_value(doc, "connected")
    cols = st.columns(5)
    cols[0].metric("Connection", "connected" if connected else "—" if connected is None else "down")
    cols[1].metric("Messages/s", ui.number(_feed_value(doc, "messages_per_s"), "{:,.1f}"))
    age = _feed_value(doc, "last_message_age_s")
    cols[2].metric("Last message", ui.number(age, "{:.2f} s ago"))
    cols[3].metric("Reconnects", ui.number(_feed_value(doc, "reconnects"), "{:,.0f}"))
    latency = None
    if not trades.empty and {"ts_event", "ts_recv"} <= set(trades.columns):
        latency = float(((trades["ts_recv"] - trades["ts_event"]) / 1e6).median())
    cols[4].metric("Latency (median)", ui.number(latency, "{:.1f} ms"))
    ui.chart(charts.latency_chart(trades), "latency")


def book_section(doc: dict[str, Any], ctx: ui.Context, sync_rows: pd.DataFrame) -> None:
    """Per-symbol book state and the book-sync ledger."""
    st.subheader("Order book sync")
    symbols = doc.get("symbols")
    if isinstance(symbols, dict) and symbols:
        table = pd.DataFrame(
            [{"symbol": key, **v} for key, v in symbols.items() if isinstance(v, dict)]
        )
        st.dataframe(table.astype(str), hide_index=True, width="stretch")
    if sync_rows.empty or "state" not in sync_rows:
        st.caption("No sync events yet.")
        return
    counts = sync_rows["state"].value_counts()
    cols = st.columns(3)
    cols[0].metric("Gaps", int(counts.get("gap", 0)))
    cols[1].metric("Resyncs", int(counts.get("resync", 0)))
    cols[2].metric("Current state", str(sync_rows["state"].iloc[-1]))
    ledger = sync_rows.drop(columns=["ts_recv"], errors="ignore").iloc[::-1]
    st.markdown(f"**Book-sync ledger of {ctx.exchange}:{ctx.symbol}** (newest first)")
    st.dataframe(ledger.astype(str), hide_index=True, width="stretch", height=240)


def queues_section(doc: dict[str, Any]) -> None:
    """Queue depths and dropped or rejected messages."""
    st.subheader("Queues and drops")
    depths = {k: v for k, v in doc.items() if k.endswith("queue_depth")}
    cols = st.columns(2 + len(depths))
    cols[0].metric("Dropped", ui.number(_total(doc.get("dropped")), "{:,.0f}"))
    rejected = doc.get("rejected")
    if isinstance(rejected, dict):  # counts by outcome: everything but "ok" was rejected
        rejected = {k: v for k, v in rejected.items() if k != "ok"}
    cols[1].metric("Rejected", ui.number(_total(rejected) or 0, "{:,.0f}"))
    for col, (name, value) in zip(cols[2:], depths.items(), strict=True):
        col.metric(name.replace("_", " ").capitalize(), ui.number(value, "{:,.0f}"))
    queues = doc.get("queues")
    if isinstance(queues, dict) and queues:
        rows = [
            {"queue": name, **(q if isinstance(q, dict) else {"depth": q})}
            for name, q in queues.items()
        ]
        st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True, width="stretch")
    if isinstance(rejected, dict) and rejected:
        st.caption("Rejected by reason: " + ", ".join(f"{k} {v}" for k, v in rejected.items()))


def models_section(doc: dict[str, Any], live: dict[str, Any]) -> None:
    """Model versions and warm-up progress."""
    st.subheader("Models")
    models = doc.get("models")
    if isinstance(models, dict) and models:
        st.dataframe(
            pd.DataFrame([{"model": k, "version": str(v)} for k, v in models.items()]),
            hide_index=True,
            width="stretch",
        )
    info = ui.live_value(live, "model")
    if isinstance(info, dict) and info:
        st.caption("Forecast model: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    warmup = ui.live_value(live, "warmup")
    for name, share, text in charts.warmup_items(warmup if isinstance(warmup, dict) else None):
        if share is None:
            st.caption(f"{name}: {text}")
        else:
            st.progress(share, text=f"{name}: {text}")


health_panels()
