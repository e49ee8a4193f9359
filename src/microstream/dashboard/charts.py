"""Plotly figures of the dashboard: pure functions of DataFrames and dicts.

Each builder accepts empty or partial data (a column may be missing or all
null while the engine warms up) and then returns a figure with a short
"waiting for data" note instead of raising.

Figures are built in one shot from plain trace and layout dicts (times as
epoch milliseconds on ``date`` axes): Plotly validates a whole figure once,
which is an order of magnitude cheaper than ``add_trace``/``update_layout``
calls, and the live page redraws about ten figures every refresh.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
Trace = dict[str, Any]
_RIGHT_AXIS = {"overlaying": "y", "side": "right", "showgrid": False}


def _figure(
    traces: list[Trace], title: str, height: int = 320, *, time_axis: bool = True, **layout: Any
) -> go.Figure:
    """One figure from trace dicts, with the dashboard's common layout."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "font": {"size": 14}},
        "height": height,
        # A provisional width: Streamlit hides a Plotly chart while its layout has
        # no width and then sets the container's width; giving one keeps the chart
        # visible through every refresh (no blink).
        "width": 800,
        "margin": {"l": 10, "r": 10, "t": 36, "b": 10},
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        "hovermode": "x unified" if time_axis else "closest",
        "uirevision": "keep",  # keep zoom/pan across refreshes
    }
    if time_axis:
        base["xaxis"] = {"type": "date"}
    for key, value in layout.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return go.Figure({"data": traces, "layout": base})


def _waiting(title: str, what: str = "waiting for data", height: int = 320) -> go.Figure:
    note = {
        "text": what,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 13},
    }
    return _figure(
        [],
        title,
        height,
        time_axis=False,
        annotations=[note],
        xaxis={"visible": False},
        yaxis={"visible": False},
    )


def _has(df: pd.DataFrame, *columns: str) -> bool:
    return not df.empty and all(c in df and df[c].notna().any() for c in columns)


def _ms(times: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    """UTC datetimes as epoch milliseconds (Plotly's native ``date`` axis unit)."""
    return np.asarray(times.astype("int64").to_numpy() / 1e6, dtype=np.float64)


def _values(df: pd.DataFrame, column: str, scale: float = 1.0) -> np.ndarray[Any, Any]:
    return np.asarray(pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float) * scale)


def _line(
    df: pd.DataFrame, column: str, name: str, color: str, scale: float = 1.0, **kw: Any
) -> Trace:
    trace: Trace = {
        "type": "scatter",
        "mode": "lines",
        "x": _ms(df["time"]),
        "y": _values(df, column, scale),
        "name": name,
        "line": {"color": color, "width": 1, **kw.pop("line", {})},
    }
    trace.update(kw)
    return trace


def _trade_markers(trades: pd.DataFrame, max_size: float = 18.0) -> list[Trace]:
    qty = _values(trades, "qty").clip(min=0)
    biggest = float(np.nanmax(qty)) if len(qty) else 1.0
    size = 4 + max_size * np.sqrt(qty / max(biggest, 1e-12))
    traces = []
    for side, color in (("buy", BUY), ("sell", SELL)):
        mask = (trades["side"] == side).to_numpy()
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{side} trades",
                "x": _ms(trades["time"])[mask],
                "y": _values(trades, "price")[mask],
                "customdata": qty[mask],
                "marker": {
                    "color": color,
                    "size": size[mask],
                    "opacity": 0.6,
                    "line": {"color": "white", "width": 0.5},
                },
                "hovertemplate": "%{y} × %{customdata}<extra>" + side + "</extra>",
            }
        )
    return traces


def price_chart(features: pd.DataFrame, trades: pd.DataFrame) -> go.Figure:
    """Mid, microprice and VWAP lines with trades as markers (colour = aggressor)."""
    traces: list[Trace] = []
    if _has(features, "mid"):
        traces.append(_line(features, "mid", "mid", MID, line={"width": 1.5}))
    if _has(features, "microprice"):
        traces.append(_line(features, "microprice", "microprice", MICRO, line={"dash": "dot"}))
    if _has(features, "vwap_1m"):
        traces.append(_line(features, "vwap_1m", "VWAP 1m", VWAP))
    if _has(trades, "price", "qty", "side"):
        traces.extend(_trade_markers(trades))
    if not traces:
        return _waiting("Price & trades")
    return _figure(traces, "Price, microprice, VWAP and trades (green buy / red sell)", 380)


def candles_chart(
    bars: pd.DataFrame, signals: pd.DataFrame, forming: Mapping[str, Any] | None = None
) -> go.Figure:
    """1-minute candlesticks, shaded by HMM state, with anomaly markers."""
    if forming and forming.get("open") is not None and forming.get("ts") is not None:
        extra = pd.DataFrame([dict(forming)])
        extra["time"] = pd.to_datetime(extra["ts"], unit="ns", utc=True)
        bars = pd.concat([bars, extra], ignore_index=True) if not bars.empty else extra
    title = "1-minute candles (shaded: HMM extreme state, ✕: anomaly)"
    if not _has(bars, "open", "high", "low", "close"):
        return _waiting("1-minute candles", "first minute bar still forming")
    traces: list[Trace] = [
        {
            "type": "candlestick",
            "name": "1m",
            "x": _ms(bars["time"]),
            "open": _values(bars, "open"),
            "high": _values(bars, "high"),
            "low": _values(bars, "low"),
            "close": _values(bars, "close"),
            "increasing": {"line": {"color": BUY}},
            "decreasing": {"line": {"color": SELL}},
        }
    ]
    shapes: list[dict[str, Any]] = []
    if _has(signals, "hmm_state"):
        starts = _ms(signals["time"])
        for start, state in zip(starts, signals["hmm_state"].astype(str), strict=True):
            color = HMM_COLORS.get(state)
            if color:
                shapes.append(
                    {
                        "type": "rect",
                        "xref": "x",
                        "yref": "paper",
                        "x0": start,
                        "x1": start + 60_000,
                        "y0": 0,
                        "y1": 1,
                        "fillcolor": color,
                        "line": {"width": 0},
                        "layer": "below",
                    }
                )
        if "anomaly" in signals:
            flagged = signals[signals["anomaly"].fillna(False).astype(bool)]
            merged = flagged.merge(bars[["time", "high"]], on="time", how="inner")
            if not merged.empty:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "markers",
                        "name": "anomaly",
                        "x": _ms(merged["time"]),
                        "y": _values(merged, "high"),
                        "marker": {"symbol": "x", "size": 11, "color": "#111827"},
                    }
                )
    return _figure(traces, title, 360, shapes=shapes, xaxis={"rangeslider": {"visible": False}})


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
    if bids.empty and asks.empty:
        return _waiting("Depth", "no book yet")
    traces = [
        {
            "type": "scatter",
            "name": name,
            "x": df["price"].to_numpy(),
            "y": df["cum_qty"].to_numpy(),
            "fill": "tozeroy",
            "line": {"color": color, "shape": "hv"},
        }
        for name, df, color in (("bids", bids, BUY), ("asks", asks, SELL))
    ]
    return _figure(traces, "Depth (cumulative size)", 320, time_axis=False)


def ladder_table(ladder: Mapping[str, Any], levels: int = 12) -> pd.DataFrame:
    """A price ladder: asks above (highest first), bids below, one row per level."""
    asks = [(p, None, q) for p, q in (ladder.get("asks") or [])[:levels]][::-1]
    bids = [(p, q, None) for p, q in (ladder.get("bids") or [])[:levels]]
    return pd.DataFrame(asks + bids, columns=["price", "bid size", "ask size"])


def imbalance_chart(features: pd.DataFrame) -> go.Figure:
    """Order-book imbalance (L1, L5) and order-flow imbalance (OFI 10 s)."""
    traces: list[Trace] = []
    if _has(features, "imbalance_l1"):
        traces.append(_line(features, "imbalance_l1", "imbalance L1", MID))
    if _has(features, "imbalance_l5"):
        traces.append(_line(features, "imbalance_l5", "imbalance L5", VWAP))
    if _has(features, "ofi_10s"):
        traces.append(
            {
                "type": "bar",
                "name": "OFI 10s",
                "x": _ms(features["time"]),
                "y": _values(features, "ofi_10s"),
                "yaxis": "y2",
                "marker": {"color": MICRO},
                "opacity": 0.5,
            }
        )
    if not traces:
        return _waiting("Imbalance & OFI")
    return _figure(
        traces,
        "Book imbalance (lines, −1…1) and OFI 10 s (bars, right axis)",
        yaxis={"range": [-1, 1]},
        yaxis2=_RIGHT_AXIS,
    )


def flow_chart(features: pd.DataFrame) -> go.Figure:
    """Buy vs sell aggressor volume over the last minute, with the flow imbalance."""
    traces: list[Trace] = []
    if _has(features, "buy_volume_1m"):
        traces.append(_line(features, "buy_volume_1m", "buy volume 1m", BUY, line={"width": 1.5}))
    if _has(features, "sell_volume_1m"):
        traces.append(
            _line(features, "sell_volume_1m", "sell volume 1m", SELL, line={"width": 1.5})
        )
    if _has(features, "flow_imbalance_1m"):
        traces.append(
            _line(
                features,
                "flow_imbalance_1m",
                "flow imbalance",
                NEUTRAL,
                line={"dash": "dot"},
                yaxis="y2",
            )
        )
    if not traces:
        return _waiting("Aggressor flow")
    return _figure(
        traces,
        "Aggressor flow: buy vs sell volume (1 min window)",
        yaxis2={**_RIGHT_AXIS, "range": [-1, 1]},
    )


def volatility_chart(features: pd.DataFrame) -> go.Figure:
    """Realised volatility over 1 and 5 minutes, in basis points."""
    traces = [
        _line(features, column, name, color, 1e4, line={"width": 1.5})
        for column, name, color in (
            ("volatility_1m", "vol 1m", MID),
            ("volatility_5m", "vol 5m", VWAP),
        )
        if _has(features, column)
    ]
    if not traces:
        return _waiting("Volatility")
    return _figure(
        traces, "Realised volatility (bps, not annualised)", 260, yaxis={"title": {"text": "bps"}}
    )


def spread_chart(features: pd.DataFrame) -> go.Figure:
    """Bid-ask spread in basis points."""
    if not _has(features, "spread_bps"):
        return _waiting("Spread")
    trace = _line(features, "spread_bps", "spread", NEUTRAL, line={"shape": "hv"})
    return _figure([trace], "Spread (bps)", 260, yaxis={"title": {"text": "bps"}})


def regime_chart(regimes: pd.DataFrame, truth: pd.DataFrame | None = None) -> go.Figure:
    """Regime timeline: the regime per grid point (colour) and its confidence."""
    if not _has(regimes, "regime"):
        return _waiting("Regime", "regime warming up")
    level = {name: i for i, name in enumerate(REGIME_ORDER)}
    times = _ms(regimes["time"])
    names = regimes["regime"].astype(str).to_numpy()
    traces: list[Trace] = []
    for name in REGIME_ORDER:  # one trace per regime: one colour each, and a legend
        mask = names == name
        if mask.any():
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": name.replace("_", " "),
                    "x": times[mask],
                    "y": np.full(int(mask.sum()), level[name]),
                    "marker": {"color": REGIME_COLORS[name], "size": 6},
                }
            )
    if truth is not None and _has(truth, "regime"):
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "simulator truth",
                "x": _ms(truth["time"]),
                "y": truth["regime"].map(level).to_numpy(dtype=float, na_value=np.nan),
                "line": {"color": "#111827", "width": 1, "dash": "dot"},
            }
        )
    if _has(regimes, "confidence"):
        traces.append(_line(regimes, "confidence", "confidence", MICRO, yaxis="y2"))
    yaxis = {
        "tickvals": list(range(len(REGIME_ORDER))),
        "ticktext": [r.replace("_", " ") for r in REGIME_ORDER],
        "range": [-0.5, len(REGIME_ORDER) - 0.5],
    }
    return _figure(
        traces,
        "Regime timeline and confidence",
        300,
        yaxis=yaxis,
        yaxis2={**_RIGHT_AXIS, "range": [0, 1]},
    )


def forecast_bars(prediction: Mapping[str, Any] | None) -> go.Figure:
    """The latest forecast: probabilities of up / neutral / down."""
    probs = [_prob(prediction, k) for k in ("p_up", "p_neutral", "p_down")]
    if prediction is None or all(p is None for p in probs):
        return _waiting("Forecast", "no forecast yet")
    bar = {
        "type": "bar",
        "x": ["up", "neutral", "down"],
        "y": [p or 0.0 for p in probs],
        "marker": {"color": [BUY, NEUTRAL, SELL]},
        "text": [f"{(p or 0.0):.0%}" for p in probs],
        "textposition": "auto",
        "name": "probability",
    }
    horizon = prediction.get("horizon_s")
    title = f"Forecast, next {horizon:g} s" if isinstance(horizon, int | float) else "Forecast"
    return _figure([bar], title, 260, time_axis=False, yaxis={"range": [0, 1], "tickformat": ".0%"})


def forecast_history(predictions: pd.DataFrame) -> go.Figure:
    """p_up and p_down over time."""
    if not _has(predictions, "p_up", "p_down"):
        return _waiting("Forecast history", "no forecast yet")
    traces = [
        _line(predictions, "p_up", "p_up", BUY),
        _line(predictions, "p_down", "p_down", SELL),
    ]
    return _figure(
        traces,
        "Forecast probabilities over time",
        260,
        yaxis={"range": [0, 1], "tickformat": ".0%"},
    )


def _prob(row: Mapping[str, Any] | None, key: str) -> float | None:
    if row is None:
        return None
    value = row.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def heatmap_chart(heat: Mapping[str, Any], trades: pd.DataFrame | None = None) -> go.Figure:
    """Liquidity heatmap: resting size by price (y) and time (x), mid and trades on top."""
    ts: Sequence[int] = heat.get("ts") or []
    if not ts:
        return _waiting("Liquidity heatmap", "no book history yet", 560)
    times = np.asarray(ts, dtype=np.float64) / 1e6
    z = np.array(
        [[np.nan if v is None else v for v in row] for row in heat.get("z") or []], dtype=float
    )
    mids = np.array([np.nan if m is None else m for m in heat.get("mid") or []], dtype=float)
    traces: list[Trace] = [
        {
            "type": "heatmap",
            "name": "resting size",
            "x": times,
            "y": heat.get("prices"),
            "z": z,
            "colorscale": "Inferno",
            "colorbar": {"title": {"text": "size"}},
            "hovertemplate": "%{y:.2f}: %{z:.3f}<extra></extra>",
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "mid",
            "x": times,
            "y": mids,
            "line": {"color": "#38bdf8", "width": 1.5},
        },
    ]
    if trades is not None and _has(trades, "price", "qty", "side"):
        recent = trades[_ms(trades["time"]) >= times[0]]
        if not recent.empty:
            traces.extend(_trade_markers(recent, 12.0))
    return _figure(
        traces, "Liquidity heatmap (colour = resting size at price)", 560, hovermode="closest"
    )


def latency_chart(trades: pd.DataFrame) -> go.Figure:
    """Histogram of exchange-to-receive latency (ms) of recent trades."""
    if not _has(trades, "ts_event", "ts_recv"):
        return _waiting("Latency", "no trades yet")
    latency = (_values(trades, "ts_recv") - _values(trades, "ts_event")) / 1e6
    hist = {
        "type": "histogram",
        "x": latency,
        "nbinsx": 40,
        "marker": {"color": MID},
        "name": "trades",
    }
    return _figure(
        [hist],
        "Exchange → receive latency of recent trades",
        260,
        time_axis=False,
        xaxis={"title": {"text": "ms"}},
    )


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
