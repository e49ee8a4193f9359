"""Plotly figures of the dashboard: pure functions of DataFrames and dicts.

Each builder accepts empty or partial data (a column may be missing or all
null while the engine warms up) and then returns a figure with a short
"waiting for data" note instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

BUY = "#16a34a"
SELL = "#dc2626"
NEUTRAL = "#64748b"
MID = "#2563eb"
MICRO = "#f59e0b"
VWAP = "#9333ea"

REGIME_COLORS: dict[str, str] = {
    "strongly_bullish": "#15803d",
    "bullish": "#4ade80",
    "neutral": "#94a3b8",
    "bearish": "#f87171",
    "strongly_bearish": "#b91c1c",
}
REGIME_ORDER = ("strongly_bearish", "bearish", "neutral", "bullish", "strongly_bullish")
HMM_COLORS: dict[str, str] = {
    "bullish_extreme": "rgba(22,163,74,0.15)",
    "bearish_extreme": "rgba(220,38,38,0.15)",
}


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 14}},
        height=height,
        margin={"l": 10, "r": 10, "t": 36, "b": 10},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        hovermode="x unified",
        uirevision="keep",  # keep zoom/pan across refreshes
    )
    return fig


def _has(df: pd.DataFrame, *columns: str) -> bool:
    return not df.empty and all(c in df and df[c].notna().any() for c in columns)


def _waiting(fig: go.Figure, what: str = "waiting for data") -> go.Figure:
    fig.add_annotation(
        text=what, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 13}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _line(df: pd.DataFrame, column: str, name: str, color: str, **kw: Any) -> go.Scatter:
    return go.Scatter(
        x=df["time"], y=df[column], name=name, mode="lines", line={"color": color, **kw}
    )


def price_chart(features: pd.DataFrame, trades: pd.DataFrame) -> go.Figure:
    """Mid, microprice and VWAP lines with trades as markers (colour = aggressor)."""
    fig = go.Figure()
    if _has(features, "mid"):
        fig.add_trace(_line(features, "mid", "mid", MID, width=1.5))
    if _has(features, "microprice"):
        fig.add_trace(_line(features, "microprice", "microprice", MICRO, width=1, dash="dot"))
    if _has(features, "vwap_1m"):
        fig.add_trace(_line(features, "vwap_1m", "VWAP 1m", VWAP, width=1))
    if _has(trades, "price", "qty", "side"):
        qty = trades["qty"].astype(float).clip(lower=0)
        size = 4 + 14 * np.sqrt(qty / max(float(qty.max()), 1e-12))
        for side, color in (("buy", BUY), ("sell", SELL)):
            mask = trades["side"] == side
            fig.add_trace(
                go.Scatter(
                    x=trades.loc[mask, "time"],
                    y=trades.loc[mask, "price"],
                    name=f"{side} trades",
                    mode="markers",
                    marker={"color": color, "size": size[mask], "opacity": 0.6},
                    customdata=trades.loc[mask, "qty"],
                    hovertemplate="%{y} × %{customdata}<extra>" + side + "</extra>",
                )
            )
    if not fig.data:
        return _layout(_waiting(fig), "Price & trades")
    return _layout(fig, "Price, microprice, VWAP and trades (green buy / red sell)", 380)


def candles_chart(
    bars: pd.DataFrame, signals: pd.DataFrame, forming: Mapping[str, Any] | None = None
) -> go.Figure:
    """1-minute candlesticks, shaded by HMM state, with anomaly markers."""
    if forming and forming.get("open") is not None and forming.get("ts") is not None:
        extra = pd.DataFrame([dict(forming)])
        extra["time"] = pd.to_datetime(extra["ts"], unit="ns", utc=True)
        bars = pd.concat([bars, extra], ignore_index=True) if not bars.empty else extra
    fig = go.Figure()
    if not _has(bars, "open", "high", "low", "close"):
        return _layout(_waiting(fig, "first minute bar still forming"), "1-minute candles")
    fig.add_trace(
        go.Candlestick(
            x=bars["time"],
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            name="1m",
            increasing_line_color=BUY,
            decreasing_line_color=SELL,
        )
    )
    if _has(signals, "hmm_state"):
        minute = pd.Timedelta(minutes=1)
        for _, sig in signals.iterrows():
            color = HMM_COLORS.get(str(sig["hmm_state"]))
            if color:
                fig.add_vrect(
                    x0=sig["time"], x1=sig["time"] + minute, fillcolor=color, line_width=0
                )
        if "anomaly" in signals:
            flagged = signals[signals["anomaly"].fillna(False).astype(bool)]
            merged = flagged.merge(bars[["time", "high"]], on="time", how="inner")
            if not merged.empty:
                fig.add_trace(
                    go.Scatter(
                        x=merged["time"],
                        y=merged["high"],
                        mode="markers",
                        name="anomaly",
                        marker={"symbol": "x", "size": 11, "color": "#111827"},
                    )
                )
    fig.update_layout(xaxis_rangeslider_visible=False)
    return _layout(fig, "1-minute candles (shaded: HMM extreme state, ✕: anomaly)", 360)


def cumulative_depth(ladder: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bids and asks with cumulative size, best level first."""
    out = []
    for side in ("bids", "asks"):
        levels = ladder.get(side) or []
        df = (
            pd.DataFrame(levels, columns=["price", "qty"])
            if levels
            else pd.DataFrame({"price": [], "qty": []})
        )
        df["cum_qty"] = df["qty"].cumsum()
        out.append(df)
    return out[0], out[1]


def depth_chart(ladder: Mapping[str, Any]) -> go.Figure:
    """Cumulative resting size by price: bids (green) left of mid, asks (red) right."""
    bids, asks = cumulative_depth(ladder)
    fig = go.Figure()
    if bids.empty and asks.empty:
        return _layout(_waiting(fig, "no book yet"), "Depth")
    fig.add_trace(
        go.Scatter(
            x=bids["price"],
            y=bids["cum_qty"],
            name="bids",
            fill="tozeroy",
            line={"color": BUY, "shape": "hv"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=asks["price"],
            y=asks["cum_qty"],
            name="asks",
            fill="tozeroy",
            line={"color": SELL, "shape": "hv"},
        )
    )
    fig.update_layout(hovermode="closest")
    return _layout(fig, "Depth (cumulative size)", 320)


def ladder_table(ladder: Mapping[str, Any], levels: int = 12) -> pd.DataFrame:
    """A price ladder: asks above (highest first), bids below, one row per level."""
    asks = [(p, None, q) for p, q in (ladder.get("asks") or [])[:levels]][::-1]
    bids = [(p, q, None) for p, q in (ladder.get("bids") or [])[:levels]]
    return pd.DataFrame(asks + bids, columns=["price", "bid size", "ask size"])


def imbalance_chart(features: pd.DataFrame) -> go.Figure:
    """Order-book imbalance (L1, L5) and order-flow imbalance (OFI 10 s)."""
    fig = go.Figure()
    if _has(features, "imbalance_l1"):
        fig.add_trace(_line(features, "imbalance_l1", "imbalance L1", MID, width=1))
    if _has(features, "imbalance_l5"):
        fig.add_trace(_line(features, "imbalance_l5", "imbalance L5", VWAP, width=1))
    if _has(features, "ofi_10s"):
        fig.add_trace(
            go.Bar(
                x=features["time"],
                y=features["ofi_10s"],
                name="OFI 10s",
                yaxis="y2",
                marker={"color": MICRO},
                opacity=0.5,
            )
        )
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "showgrid": False})
    if not fig.data:
        return _layout(_waiting(fig), "Imbalance & OFI")
    fig.update_yaxes(range=[-1, 1], selector={"anchor": "x"})
    return _layout(fig, "Book imbalance (lines, −1…1) and OFI 10 s (bars, right axis)")


def flow_chart(features: pd.DataFrame) -> go.Figure:
    """Buy vs sell aggressor volume over the last minute, with the flow imbalance."""
    fig = go.Figure()
    if _has(features, "buy_volume_1m"):
        fig.add_trace(_line(features, "buy_volume_1m", "buy volume 1m", BUY, width=1.5))
    if _has(features, "sell_volume_1m"):
        fig.add_trace(_line(features, "sell_volume_1m", "sell volume 1m", SELL, width=1.5))
    if _has(features, "flow_imbalance_1m"):
        fig.add_trace(
            go.Scatter(
                x=features["time"],
                y=features["flow_imbalance_1m"],
                name="flow imbalance",
                yaxis="y2",
                line={"color": NEUTRAL, "width": 1, "dash": "dot"},
            )
        )
        fig.update_layout(
            yaxis2={"overlaying": "y", "side": "right", "range": [-1, 1], "showgrid": False}
        )
    if not fig.data:
        return _layout(_waiting(fig), "Aggressor flow")
    return _layout(fig, "Aggressor flow: buy vs sell volume (1 min window)")


def volatility_chart(features: pd.DataFrame) -> go.Figure:
    """Realised volatility over 1 and 5 minutes, in basis points."""
    fig = go.Figure()
    for column, name, color in (
        ("volatility_1m", "vol 1m", MID),
        ("volatility_5m", "vol 5m", VWAP),
    ):
        if _has(features, column):
            fig.add_trace(
                go.Scatter(
                    x=features["time"],
                    y=features[column] * 1e4,
                    name=name,
                    line={"color": color, "width": 1.5},
                )
            )
    if not fig.data:
        return _layout(_waiting(fig), "Volatility")
    fig.update_yaxes(title_text="bps")
    return _layout(fig, "Realised volatility (bps, not annualised)", 260)


def spread_chart(features: pd.DataFrame) -> go.Figure:
    """Bid-ask spread in basis points."""
    fig = go.Figure()
    if not _has(features, "spread_bps"):
        return _layout(_waiting(fig), "Spread")
    fig.add_trace(
        go.Scatter(
            x=features["time"],
            y=features["spread_bps"],
            name="spread",
            line={"color": NEUTRAL, "width": 1, "shape": "hv"},
        )
    )
    fig.update_yaxes(title_text="bps")
    return _layout(fig, "Spread (bps)", 260)


def regime_chart(regimes: pd.DataFrame, truth: pd.DataFrame | None = None) -> go.Figure:
    """Regime timeline: the regime per grid point (colour) and its confidence."""
    fig = go.Figure()
    if not _has(regimes, "regime"):
        return _layout(_waiting(fig, "regime warming up"), "Regime")
    level = {name: i for i, name in enumerate(REGIME_ORDER)}
    y = regimes["regime"].map(level)
    colors = regimes["regime"].map(REGIME_COLORS).fillna(NEUTRAL)
    fig.add_trace(
        go.Scatter(
            x=regimes["time"],
            y=y,
            mode="markers",
            name="regime",
            marker={"color": colors, "size": 6},
            text=regimes["regime"],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    if truth is not None and _has(truth, "regime"):
        fig.add_trace(
            go.Scatter(
                x=truth["time"],
                y=truth["regime"].map(level),
                mode="lines",
                name="simulator truth",
                line={"color": "#111827", "width": 1, "dash": "dot"},
            )
        )
    if _has(regimes, "confidence"):
        fig.add_trace(
            go.Scatter(
                x=regimes["time"],
                y=regimes["confidence"],
                name="confidence",
                yaxis="y2",
                line={"color": MICRO, "width": 1},
            )
        )
        fig.update_layout(
            yaxis2={"overlaying": "y", "side": "right", "range": [0, 1], "showgrid": False}
        )
    fig.update_yaxes(
        tickvals=list(range(len(REGIME_ORDER))),
        ticktext=[r.replace("_", " ") for r in REGIME_ORDER],
        range=[-0.5, len(REGIME_ORDER) - 0.5],
        selector={"anchor": "x"},
    )
    return _layout(fig, "Regime timeline and confidence", 300)


def forecast_bars(prediction: Mapping[str, Any] | None) -> go.Figure:
    """The latest forecast: probabilities of up / neutral / down."""
    fig = go.Figure()
    probs = [_prob(prediction, k) for k in ("p_up", "p_neutral", "p_down")]
    if prediction is None or all(p is None for p in probs):
        return _layout(_waiting(fig, "no forecast yet"), "Forecast")
    fig.add_trace(
        go.Bar(
            x=["up", "neutral", "down"],
            y=[p or 0.0 for p in probs],
            marker={"color": [BUY, NEUTRAL, SELL]},
            text=[f"{(p or 0.0):.0%}" for p in probs],
            textposition="auto",
        )
    )
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(hovermode="closest")
    horizon = prediction.get("horizon_s")
    title = f"Forecast, next {horizon} s" if horizon else "Forecast"
    return _layout(fig, title, 260)


def forecast_history(predictions: pd.DataFrame) -> go.Figure:
    """p_up and p_down over time."""
    fig = go.Figure()
    if not _has(predictions, "p_up", "p_down"):
        return _layout(_waiting(fig, "no forecast yet"), "Forecast history")
    fig.add_trace(_line(predictions, "p_up", "p_up", BUY, width=1))
    fig.add_trace(_line(predictions, "p_down", "p_down", SELL, width=1))
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return _layout(fig, "Forecast probabilities over time", 260)


def _prob(row: Mapping[str, Any] | None, key: str) -> float | None:
    if row is None:
        return None
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def heatmap_chart(heat: Mapping[str, Any], trades: pd.DataFrame | None = None) -> go.Figure:
    """Liquidity heatmap: resting size by price (y) and time (x), mid and trades on top."""
    fig = go.Figure()
    ts: Sequence[int] = heat.get("ts") or []
    if not ts:
        return _layout(_waiting(fig, "no book history yet"), "Liquidity heatmap", 560)
    times = pd.to_datetime(pd.Series(ts), unit="ns", utc=True)
    z = np.array(
        [[np.nan if v is None else v for v in row] for row in heat.get("z") or []], dtype=float
    )
    fig.add_trace(
        go.Heatmap(
            x=times,
            y=heat.get("prices"),
            z=z,
            colorscale="Inferno",
            colorbar={"title": "size"},
            name="resting size",
            hovertemplate="%{y:.2f}: %{z:.3f}<extra></extra>",
        )
    )
    mids: Iterable[float | None] = heat.get("mid") or []
    fig.add_trace(
        go.Scatter(
            x=times, y=list(mids), name="mid", mode="lines", line={"color": "#38bdf8", "width": 1.5}
        )
    )
    if trades is not None and _has(trades, "price", "qty", "side"):
        recent = trades[trades["time"] >= times.iloc[0]]
        qty = recent["qty"].astype(float).clip(lower=0)
        size = 3 + 12 * np.sqrt(qty / max(float(qty.max()) if len(qty) else 1.0, 1e-12))
        for side, color in (("buy", BUY), ("sell", SELL)):
            mask = recent["side"] == side
            fig.add_trace(
                go.Scatter(
                    x=recent.loc[mask, "time"],
                    y=recent.loc[mask, "price"],
                    mode="markers",
                    name=f"{side} trades",
                    marker={
                        "color": color,
                        "size": size[mask],
                        "line": {"color": "white", "width": 0.5},
                    },
                )
            )
    fig.update_layout(hovermode="closest")
    return _layout(fig, "Liquidity heatmap (colour = resting size at price)", 560)


def latency_chart(trades: pd.DataFrame) -> go.Figure:
    """Histogram of exchange-to-receive latency (ms) of recent trades."""
    fig = go.Figure()
    if not _has(trades, "ts_event", "ts_recv"):
        return _layout(_waiting(fig, "no trades yet"), "Latency")
    latency = (trades["ts_recv"] - trades["ts_event"]) / 1e6
    fig.add_trace(go.Histogram(x=latency, nbinsx=40, marker={"color": MID}))
    fig.update_xaxes(title_text="ms")
    fig.update_layout(hovermode="closest")
    return _layout(fig, "Exchange → receive latency of recent trades", 260)


def scorecard_frame(card: Mapping[str, Any] | None) -> pd.DataFrame:
    """The live scorecard as a table: one row per (window, forecaster).

    Understands the engine's nested card (``total``/``recent`` windows, each with
    ``model``/``prior``/``always_neutral`` tallies of ``n``, ``log_loss``,
    ``hit_rate``) and a flat mapping of numbers (one row, window ``all``).
    """
    if not card:
        return pd.DataFrame()
    rows: list[dict[str, Any]] = []
    for window in ("total", "recent"):
        block = card.get(window)
        if not isinstance(block, Mapping):
            continue
        for who in ("model", "prior", "always_neutral"):
            tally = block.get(who)
            if isinstance(tally, Mapping):
                rows.append({"window": window, "forecaster": who.replace("_", " "), **tally})
    if rows:
        return pd.DataFrame(rows)
    flat = {k: v for k, v in card.items() if isinstance(v, int | float | str | type(None))}
    return (
        pd.DataFrame([{"window": "all", "forecaster": "model", **flat}])
        if flat
        else (pd.DataFrame())
    )


def warmup_items(warmup: Mapping[str, Any] | None) -> list[tuple[str, float | None, str]]:
    """Warm-up entries as ``(name, fraction or None, text)``.

    ``{"done": d, "needed": n}`` gives one fraction; other numeric entries in
    [0, 1] whose name is not a count are fractions; everything else is text.
    """
    if not warmup:
        return []
    done, needed = warmup.get("done"), warmup.get("needed")
    if isinstance(done, int | float) and isinstance(needed, int | float) and needed > 0:
        share = min(1.0, max(0.0, float(done) / float(needed)))
        return [("warm-up", share, f"{done:,.0f} / {needed:,.0f}")]
    items: list[tuple[str, float | None, str]] = []
    for name, value in warmup.items():
        label = str(name).replace("_", " ")
        is_count = any(w in str(name) for w in ("rows", "resolved", "count", "n_"))
        if isinstance(value, float) and 0.0 <= value <= 1.0 and not is_count:
            items.append((label, value, f"{value:.0%}"))
        else:
            items.append((label, None, "—" if value is None else str(value)))
    return items
