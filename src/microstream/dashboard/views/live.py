"""Live page: price and trades, candles, depth, imbalance, flow, volatility, regime, forecast."""

from __future__ import annotations

import streamlit as st

from microstream.dashboard import charts, data
from microstream.dashboard import components as ui

PRICE_WINDOW = 600  # feature rows (grid seconds) on the time-series panels
TRADES_WINDOW = 2000

REGIME_SHORT = {
    "strongly_bullish": "strong bull",
    "bullish": "bull",
    "neutral": "neutral",
    "bearish": "bear",
    "strongly_bearish": "strong bear",
}

st.title("Live market")


@st.fragment(run_every=ui.REFRESH_S)
def live_panels() -> None:
    """Every live panel, refreshed together without a full-page rerun."""
    ctx = ui.engine_context()
    if ctx is None:
        return
    try:
        show_panels(ctx)
    except data.EngineOffline as exc:
        ui.offline_panel(ctx.base, str(exc))


def show_panels(ctx: ui.Context) -> None:
    """Headline numbers, then the charts, for one symbol."""
    state = data.state(ctx.base, ctx.exchange, ctx.symbol)
    latest = state.get("latest") or {}
    live = state.get("live") or {}
    feat = latest.get("features") or {}
    regime = latest.get("regimes") or {}
    prediction = latest.get("predictions")

    st.subheader(f"{ctx.symbol} · {ctx.exchange} · source `{ctx.source}`")
    cols = st.columns(6)
    cols[0].metric("Mid", ui.number(feat.get("mid")))
    cols[1].metric("Spread (bps)", ui.number(feat.get("spread_bps"), "{:.2g}"))
    micro, mid = feat.get("microprice"), feat.get("mid")
    gap = micro - mid if isinstance(micro, float) and isinstance(mid, float) else None
    cols[2].metric("Microprice − mid", ui.number(gap, "{:+.4f}"))
    cols[3].metric("Imbalance L1", ui.number(feat.get("imbalance_l1"), "{:+.2f}"))
    cols[4].metric("Regime", REGIME_SHORT.get(str(regime.get("regime")), "—"))
    cols[5].metric("Forecast", str((prediction or {}).get("label", "—")))

    features = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "features", PRICE_WINDOW)
    trades = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "trades", TRADES_WINDOW)
    ui.chart(charts.price_chart(features, trades), "price")

    left, right = st.columns([3, 2])
    with left:
        bars = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "bars_1m", 120)
        signals = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "signals_1m", 120)
        forming = ui.live_value(live, "forming_bar")
        ui.chart(charts.candles_chart(bars, signals, forming), "candles")
    with right:
        ladder = data.depth(ctx.base, ctx.exchange, ctx.symbol)
        ui.chart(charts.depth_chart(ladder), "depth")

    left, right = st.columns([3, 2])
    with left:
        ui.chart(charts.imbalance_chart(features), "imbalance")
        ui.chart(charts.flow_chart(features), "flow")
    with right:
        st.markdown("**Price ladder**")
        st.dataframe(charts.ladder_table(ladder), hide_index=True, width="stretch", height=460)

    left, right = st.columns(2)
    with left:
        ui.chart(charts.volatility_chart(features), "volatility")
    with right:
        ui.chart(charts.spread_chart(features), "spread")

    regimes = data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "regimes", PRICE_WINDOW)
    truth = (
        data.table_frame(ctx.base, ctx.exchange, ctx.symbol, "sim_truth", PRICE_WINDOW)
        if ctx.simulated
        else None
    )
    ui.chart(charts.regime_chart(regimes, truth), "regime")

    st.subheader("Forecast")
    left, mid_col, right = st.columns([2, 3, 2])
    with left:
        ui.chart(charts.forecast_bars(prediction), "forecast")
    with mid_col:
        predictions = data.table_frame(
            ctx.base, ctx.exchange, ctx.symbol, "predictions", PRICE_WINDOW
        )
        ui.chart(charts.forecast_history(predictions), "forecast_history")
    with right:
        scorecard(ui.live_value(live, "scorecard"))


def scorecard(card: object) -> None:
    """The live forecast scorecard pushed by the engine."""
    st.markdown("**Live scorecard**")
    table = charts.scorecard_frame(card if isinstance(card, dict) else None)
    if table.empty:
        st.caption("The scorecard starts once forecasts can be checked against the market.")
        return
    st.dataframe(table, hide_index=True, width="stretch")
    if isinstance(card, dict):
        total = card.get("total")
        beats = total.get("beats_prior") if isinstance(total, dict) else None
        if beats is not None:
            st.caption("Model beats the prior (log-loss)." if beats else "Model trails the prior.")


live_panels()
