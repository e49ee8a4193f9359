"""Heatmap page: the book's resting liquidity over time, with mid and trades on top."""

from __future__ import annotations

import streamlit as st

from microstream.dashboard import charts, data
from microstream.dashboard import components as ui

st.title("Liquidity heatmap")
st.caption(
    "Each column is a snapshot of the order book; brighter cells hold more resting size. "
    "Bright horizontal bands are large resting orders (walls); watch how price reacts "
    "when it reaches them."
)
window = st.slider("Snapshots shown (about one per second)", 30, 600, 120, step=30)
bins = st.slider("Price rows", 20, 200, 100, step=10)


@st.fragment(run_every=ui.REFRESH_S)
def heatmap_panel() -> None:
    """The heatmap, refreshed in place."""
    ctx = ui.engine_context()
    if ctx is None:
        return
    try:
        heat = data.heatmap(ctx.base, ctx.exchange, ctx.symbol, window, bins)
        trades = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "trades", 3000)
    except data.EngineOffline as exc:
        ui.offline_panel(ctx.base, str(exc))
        return
    st.subheader(f"{ctx.symbol} · {ctx.exchange}")
    ui.chart(charts.heatmap_chart(heat, trades), "heatmap")


heatmap_panel()
