"""Batch twins of the streaming features and bars, from the lake tables.

:func:`compute_features` and :func:`compute_bars` read the ``trades`` and
``book_top`` tables (the very inputs of :class:`~microstream.features.streaming.FeatureEngine`)
and return the rows the engine emits, computed with vectorised Polars/NumPy.
Both twins use the same definitions (see ``docs/features.md``):

* rows are processed in exchange-time order, ties in input (arrival) order;
* the grid runs from the first multiple of ``grid_ms`` at or after the first
  event to the last one at or before the last event;
* a window sum over ``(t − W, t]`` is the difference of two prefix totals
  ``C(t) − C(t − W)``, which the engine computes with the same additions in the
  same order, so the floats agree bit for bit (the only exception is
  ``vwap``/volumes of bars, summed by Polars, equal to rounding).

The streaming engine matches this batch result exactly when no event arrives
later than its ``lateness_ms`` (see :mod:`microstream.features.streaming`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from microstream.features.schema import (
    BAR_COLUMNS,
    BOOL_COLUMNS,
    DAY_NS,
    DEFAULT_GRID_MS,
    DEFAULT_MAX_GAP_S,
    DEPTH_HI,
    DEPTH_LO,
    FEATURE_COLUMNS,
    INT_COLUMNS,
    LEVELS,
    MIN_GRID_MS,
    MINUTE_NS,
    NS_PER_MS,
    NS_PER_S,
    RETURN_STEP_NS,
    WINDOW_1M_NS,
    WINDOW_5M_NS,
    WINDOW_10S_NS,
)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

LEVEL_COLUMNS: tuple[str, ...] = tuple(
    f"{side}_{what}_{i}"
    for side in ("bid", "ask")
    for what in ("px", "qty")
    for i in range(1, LEVELS + 1)
)
_SYNCED = "synced"


def _dtype(name: str) -> pl.DataType:
    if name in INT_COLUMNS:
        return pl.Int64()
    if name in BOOL_COLUMNS:
        return pl.Boolean()
    return pl.Float64()


FEATURES_SCHEMA = pl.Schema({c: _dtype(c) for c in FEATURE_COLUMNS})
"""Polars schema of the ``features`` rows."""
BARS_SCHEMA = pl.Schema({c: _dtype(c) for c in BAR_COLUMNS})
"""Polars schema of the ``bars_1m`` rows."""


# ------------------------------------------------------------------ inputs
def clean_trades(trades: pl.DataFrame) -> pl.DataFrame:
    """Valid trades (finite positive price and qty, side buy/sell), in time order.

    The same rule as :meth:`FeatureEngine.on_trade`, which skips the others.
    """
    cols = ["ts_event", "price", "qty", "side"]
    if "ts_recv" in trades.columns:
        cols.append("ts_recv")
    price = pl.col("price").cast(pl.Float64)
    qty = pl.col("qty").cast(pl.Float64)
    ok = (
        price.is_finite()
        & qty.is_finite()
        & (price > 0.0)
        & (qty > 0.0)
        & pl.col("side").is_in(["buy", "sell"])
    )
    return (
        trades.select(cols)
        .with_columns(pl.col("ts_event").cast(pl.Int64), price, qty)
        .filter(ok.fill_null(False))
        .sort("ts_event", maintain_order=True)
    )


def prepare_book(
    book_top: pl.DataFrame,
    book_sync: pl.DataFrame | None = None,
    trades: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Book rows in time order, with the invalidation markers of ``book_sync``.

    A sync change to a state other than ``synced`` becomes an invalid book row
    at the largest exchange time among the events received up to it
    (``ts_recv <=`` the change's ``ts_recv``), placed after the book rows
    received up to it: the marker :meth:`FeatureEngine.on_sync` inserts.
    """
    frame = book_top
    for col in LEVEL_COLUMNS:
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
    if "book_valid" not in frame.columns:
        frame = frame.with_columns(pl.lit(True).alias("book_valid"))
    if "sync_epoch" not in frame.columns:
        frame = frame.with_columns(pl.lit(0, dtype=pl.Int64).alias("sync_epoch"))
    if "ts_recv" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Int64).alias("ts_recv"))
    frame = frame.select(
        pl.col("ts_event").cast(pl.Int64),
        pl.col("ts_recv").cast(pl.Int64),
        *(pl.col(c).cast(pl.Float64) for c in LEVEL_COLUMNS),
        pl.col("book_valid").cast(pl.Boolean).fill_null(False),
        pl.col("sync_epoch").cast(pl.Int64),
    )
    if book_sync is not None and book_sync.height:
        frame = _with_markers(frame, book_sync, trades)
    return frame.sort("ts_event", maintain_order=True)


def _with_markers(
    book: pl.DataFrame, book_sync: pl.DataFrame, trades: pl.DataFrame | None
) -> pl.DataFrame:
    changes = book_sync.filter(pl.col("state") != _SYNCED).select(pl.col("ts_recv").cast(pl.Int64))
    parts = [book.select("ts_recv", "ts_event")]
    if trades is not None and trades.height and "ts_recv" in trades.columns:
        parts.append(trades.select(pl.col("ts_recv").cast(pl.Int64), "ts_event"))
    seen = pl.concat(parts).drop_nulls().sort("ts_recv", maintain_order=True)
    recv = seen["ts_recv"].to_numpy()
    running_max = np.maximum.accumulate(seen["ts_event"].to_numpy()) if seen.height else recv
    at = np.searchsorted(recv, changes["ts_recv"].to_numpy(), side="right") - 1
    keep = at >= 0
    markers = pl.DataFrame(
        {
            "ts_event": running_max[at[keep]].astype(np.int64),
            "ts_recv": changes["ts_recv"].to_numpy()[keep],
        },
        schema={"ts_event": pl.Int64, "ts_recv": pl.Int64},
    ).with_columns(
        *(pl.lit(None, dtype=pl.Float64).alias(c) for c in LEVEL_COLUMNS),
        pl.lit(False).alias("book_valid"),
        pl.lit(-1, dtype=pl.Int64).alias("sync_epoch"),
    )
    rows = pl.concat(
        [
            book.with_columns(pl.lit(0).alias("_tie"), pl.int_range(pl.len()).alias("_pos")),
            markers.with_columns(pl.lit(1).alias("_tie"), pl.int_range(pl.len()).alias("_pos")),
        ]
    )
    return rows.sort(["ts_recv", "_tie", "_pos"], nulls_last=False).drop("_tie", "_pos")


# --------------------------------------------------------------- formulas
def _c(name: str) -> pl.Expr:
    return pl.col(name)


def _side_sum(side: str) -> pl.Expr:
    total = pl.lit(0.0)
    for i in range(1, LEVELS + 1):
        total = total + _c(f"{side}_qty_{i}").fill_null(0.0)
    return total


def _depth(side: str, mid: pl.Expr) -> pl.Expr:
    total = pl.lit(0.0)
    bound = mid * DEPTH_LO if side == "bid" else mid * DEPTH_HI
    for i in range(1, LEVELS + 1):
        px, qty = _c(f"{side}_px_{i}"), _c(f"{side}_qty_{i}")
        inside = px >= bound if side == "bid" else px <= bound
        ok = px.is_not_null() & qty.is_not_null() & inside
        total = total + pl.when(ok).then(qty).otherwise(0.0)
    return total


def book_feature_exprs() -> list[pl.Expr]:
    """Book features of each row (columns of :data:`LEVEL_COLUMNS` and ``book_valid``)."""
    b, a, qb, qa = _c("bid_px_1"), _c("ask_px_1"), _c("bid_qty_1"), _c("ask_qty_1")
    has1 = _c("book_valid") & b.is_not_null() & a.is_not_null()
    mid = (b + a) / 2.0
    spread = a - b
    has_mid = has1 & (mid > 0.0)
    has_q = has1 & qb.is_not_null() & qa.is_not_null() & ((qb + qa) > 0.0)
    sb, sa = _side_sum("bid"), _side_sum("ask")
    has_l5 = has1 & ((sb + sa) > 0.0)
    return [
        pl.when(has1).then(mid).alias("mid"),
        pl.when(has1).then(spread).alias("spread"),
        pl.when(has_mid).then(spread / mid * 10_000.0).alias("spread_bps"),
        pl.when(has_q).then((b * qa + a * qb) / (qb + qa)).alias("microprice"),
        pl.when(has_q).then((qb - qa) / (qb + qa)).alias("imbalance_l1"),
        pl.when(has_l5).then((sb - sa) / (sb + sa)).alias("imbalance_l5"),
        pl.when(has_mid).then(_depth("bid", mid)).alias("depth_bid_10bps"),
        pl.when(has_mid).then(_depth("ask", mid)).alias("depth_ask_10bps"),
    ]


def _ofi_level(i: int) -> tuple[pl.Expr, pl.Expr]:
    """OFI term of level ``i`` and whether all eight inputs are present."""
    names = [f"bid_px_{i}", f"bid_qty_{i}", f"ask_px_{i}", f"ask_qty_{i}"]
    b, qb, a, qa = (_c(n) for n in names)
    b0, qb0, a0, qa0 = (_c(n).shift(1) for n in names)
    bid_ok = b.is_not_null() & qb.is_not_null() & b0.is_not_null() & qb0.is_not_null()
    ask_ok = a.is_not_null() & qa.is_not_null() & a0.is_not_null() & qa0.is_not_null()
    b1 = pl.when(bid_ok & (b >= b0)).then(qb).otherwise(0.0)
    b2 = pl.when(bid_ok & (b <= b0)).then(qb0).otherwise(0.0)
    a1 = pl.when(ask_ok & (a <= a0)).then(qa).otherwise(0.0)
    a2 = pl.when(ask_ok & (a >= a0)).then(qa0).otherwise(0.0)
    return ((b1 - b2) - a1) + a2, bid_ok & ask_ok


def ofi_exprs() -> list[pl.Expr]:
    """Per-row OFI contributions ``ofi_e`` (level 1) and ``ofi5_e`` (levels 1–5).

    A row contributes when it and the row before it are valid and of the same
    sync epoch; otherwise (and for level 1 when a level-1 value is missing) 0.0.
    """
    valid = _c("book_valid")
    primed = (valid & valid.shift(1) & (_c("sync_epoch") == _c("sync_epoch").shift(1))).fill_null(
        False
    )
    e1, complete1 = _ofi_level(1)
    total = pl.lit(0.0)
    for i in range(1, LEVELS + 1):
        total = total + _ofi_level(i)[0]
    return [
        pl.when(primed & complete1).then(e1).otherwise(0.0).alias("ofi_e"),
        pl.when(primed).then(total).otherwise(0.0).alias("ofi5_e"),
    ]


# ------------------------------------------------------------ prefix sums
def _ceil(x: int, step: int) -> int:
    return -(-x // step) * step


def _prefix_at(ts: I64, cum: npt.NDArray[Any], x: I64) -> npt.NDArray[Any]:
    """``cum`` at the last ``ts <= x`` (0 when there is none)."""
    idx = np.searchsorted(ts, x, side="right") - 1
    if len(cum) == 0:
        return np.zeros(len(x), dtype=cum.dtype)
    out: npt.NDArray[Any] = np.where(idx >= 0, cum[np.maximum(idx, 0)], cum.dtype.type(0))
    return out


def _series(name: str, values: F64, mask: npt.NDArray[np.bool_]) -> pl.Series:
    """Float column with nulls where ``mask`` is false."""
    return pl.Series(name, values, dtype=pl.Float64).scatter(np.flatnonzero(~mask), None)


def _ratio(num: F64, den: F64, mask: npt.NDArray[np.bool_]) -> F64:
    out = np.zeros(len(num), dtype=np.float64)
    np.divide(num, den, out=out, where=mask)
    return out


def _book_at(book: pl.DataFrame, x: I64) -> pl.DataFrame:
    """The book row in force at each time of ``x`` (an invalid row before the first)."""
    idx = np.searchsorted(book["ts_event"].to_numpy(), x, side="right") - 1
    if book.height == 0:
        return pl.DataFrame(
            {c: [None] * len(x) for c in LEVEL_COLUMNS} | {"book_valid": [False] * len(x)},
            schema={c: pl.Float64 for c in LEVEL_COLUMNS} | {"book_valid": pl.Boolean},
        )
    rows = book.select(*LEVEL_COLUMNS, "book_valid")[np.maximum(idx, 0)]
    return rows.with_columns((pl.Series(idx >= 0) & pl.col("book_valid")).alias("book_valid"))


def _returns(mids: list[float | None]) -> list[float | None]:
    """1-second log returns of the sampled mids (``None`` when either mid is)."""
    out: list[float | None] = [None] * len(mids)
    for i in range(1, len(mids)):
        m, p = mids[i], mids[i - 1]
        if m is not None and p is not None and m > 0.0 and p > 0.0:
            out[i] = math.log(m / p)
    return out


# ------------------------------------------------------------------ public
def compute_features(
    trades: pl.DataFrame,
    book_top: pl.DataFrame,
    grid_ms: int = DEFAULT_GRID_MS,
    book_sync: pl.DataFrame | None = None,
    max_gap_s: int = DEFAULT_MAX_GAP_S,
) -> pl.DataFrame:
    """The ``features`` rows of one symbol, as :class:`FeatureEngine` emits them.

    Args:
        trades: ``trades`` rows (``ts_event``, ``price``, ``qty``, ``side``; ``ts_recv``
            when ``book_sync`` is given), equal times in arrival order.
        book_top: ``book_top`` rows (``ts_event``, levels, ``book_valid``,
            ``sync_epoch``), equal times in arrival order.
        grid_ms: grid step in milliseconds.
        book_sync: optional ``book_sync`` rows (``ts_recv``, ``state``): sync losses
            invalidate the book as in the engine.
        max_gap_s: a silence longer than this splits the data into segments
            computed independently (the engine restarts its grid there).

    Returns:
        One row per grid point, columns :data:`~microstream.features.schema.FEATURE_COLUMNS`.
    """
    if grid_ms < MIN_GRID_MS:
        raise ValueError(f"grid_ms must be at least {MIN_GRID_MS}, got {grid_ms}")
    tr = clean_trades(trades)
    book = prepare_book(book_top, book_sync, tr)
    stamps = np.sort(
        np.concatenate([tr["ts_event"].to_numpy(), book["ts_event"].to_numpy()]).astype(np.int64)
    )
    if len(stamps) == 0:
        return pl.DataFrame(schema=FEATURES_SCHEMA)
    cuts = np.flatnonzero(np.diff(stamps) > max_gap_s * NS_PER_S)
    starts = [int(stamps[0]), *(int(stamps[i + 1]) for i in cuts)]
    ends = [*(int(stamps[i]) for i in cuts), int(stamps[-1])]
    parts = []
    for lo, hi in zip(starts, ends, strict=True):
        seg_tr = tr.filter(pl.col("ts_event").is_between(lo, hi))
        seg_book = book.filter(pl.col("ts_event").is_between(lo, hi))
        parts.append(_segment_features(seg_tr, seg_book, grid_ms, lo, hi))
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def _segment_features(
    tr: pl.DataFrame, book: pl.DataFrame, grid_ms: int, t0: int, t1: int
) -> pl.DataFrame:
    """Feature rows of one segment: events in ``[t0, t1]`` with no long silence."""
    grid_ns = grid_ms * NS_PER_MS
    grid = np.arange(_ceil(t0, grid_ns), t1 + 1, grid_ns, dtype=np.int64)
    cols: dict[str, Any] = {"ts": pl.Series("ts", grid, dtype=pl.Int64)}
    at_grid = _book_at(book, grid)
    valid = at_grid["book_valid"].to_numpy()
    book_vals = at_grid.select(book_feature_exprs())
    for name in book_vals.columns:
        cols[name] = book_vals[name]
    cols.update(_trade_columns(tr, grid))
    cols.update(_ofi_columns(book, grid, valid))
    cols.update(_return_columns(book, grid, t0, t1))
    cols["book_valid"] = pl.Series("book_valid", valid, dtype=pl.Boolean)
    return pl.DataFrame([cols[c].alias(c) for c in FEATURE_COLUMNS]).cast(FEATURES_SCHEMA)


def _trade_columns(tr: pl.DataFrame, grid: I64) -> dict[str, pl.Series]:
    ts = tr["ts_event"].to_numpy()
    price = tr["price"].to_numpy()
    qty = tr["qty"].to_numpy()
    buy = (tr["side"] == "buy").to_numpy()
    c_pq = np.cumsum(price * qty)
    c_q = np.cumsum(qty)
    c_buy = np.cumsum(np.where(buy, qty, 0.0))
    c_sell = np.cumsum(np.where(buy, 0.0, qty))
    c_n = np.arange(1, len(ts) + 1, dtype=np.int64)

    def window(cum: npt.NDArray[Any], width: int) -> npt.NDArray[Any]:
        diff: npt.NDArray[Any] = _prefix_at(ts, cum, grid) - _prefix_at(ts, cum, grid - width)
        return diff

    n1, q1, pq1 = window(c_n, WINDOW_1M_NS), window(c_q, WINDOW_1M_NS), window(c_pq, WINDOW_1M_NS)
    n5, q5, pq5 = window(c_n, WINDOW_5M_NS), window(c_q, WINDOW_5M_NS), window(c_pq, WINDOW_5M_NS)
    buy1, sell1 = window(c_buy, WINDOW_1M_NS), window(c_sell, WINDOW_1M_NS)
    den = buy1 + sell1
    day = ((grid - 1) // DAY_NS) * DAY_NS
    ns = _prefix_at(ts, c_n, grid) - _prefix_at(ts, c_n, day)
    qs = _prefix_at(ts, c_q, grid) - _prefix_at(ts, c_q, day)
    pqs = _prefix_at(ts, c_pq, grid) - _prefix_at(ts, c_pq, day)
    m1 = (n1 > 0) & (q1 > 0.0)
    m5 = (n5 > 0) & (q5 > 0.0)
    mf = (n1 > 0) & (den > 0.0)
    ms = (ns > 0) & (qs > 0.0)
    return {
        "vwap_1m": _series("vwap_1m", _ratio(pq1, q1, m1), m1),
        "vwap_5m": _series("vwap_5m", _ratio(pq5, q5, m5), m5),
        "buy_volume_1m": pl.Series(buy1, dtype=pl.Float64),
        "sell_volume_1m": pl.Series(sell1, dtype=pl.Float64),
        "flow_imbalance_1m": _series("f", _ratio(buy1 - sell1, den, mf), mf),
        "trade_count_1m": pl.Series(n1, dtype=pl.Int64),
        "trade_intensity_10s": pl.Series(
            window(c_n, WINDOW_10S_NS) / (WINDOW_10S_NS / NS_PER_S), dtype=pl.Float64
        ),
        "vwap_session": _series("vwap_session", _ratio(pqs, qs, ms), ms),
    }


def _ofi_columns(
    book: pl.DataFrame, grid: I64, valid: npt.NDArray[np.bool_]
) -> dict[str, pl.Series]:
    contrib = book.select(ofi_exprs())
    ts = book["ts_event"].to_numpy()
    out: dict[str, pl.Series] = {}
    for name, col in (("ofi_10s", "ofi_e"), ("ofi_l5_10s", "ofi5_e")):
        cum = np.cumsum(contrib[col].to_numpy())
        vals = _prefix_at(ts, cum, grid) - _prefix_at(ts, cum, grid - WINDOW_10S_NS)
        out[name] = _series(name, vals, valid)
    return out


def _return_columns(book: pl.DataFrame, grid: I64, t0: int, t1: int) -> dict[str, pl.Series]:
    samples = np.arange(_ceil(t0, RETURN_STEP_NS), t1 + 1, RETURN_STEP_NS, dtype=np.int64)
    mids = _book_at(book, samples).select(book_feature_exprs()[0])["mid"].to_list()
    rets = _returns(mids)
    r2 = np.array([0.0 if r is None else r * r for r in rets], dtype=np.float64)
    c_r2 = np.cumsum(r2)
    c_nr = np.cumsum(np.array([r is not None for r in rets], dtype=np.int64))
    out: dict[str, pl.Series] = {}
    for name, width in (("volatility_1m", WINDOW_1M_NS), ("volatility_5m", WINDOW_5M_NS)):
        nr = _prefix_at(samples, c_nr, grid) - _prefix_at(samples, c_nr, grid - width)
        s2 = _prefix_at(samples, c_r2, grid) - _prefix_at(samples, c_r2, grid - width)
        mask = nr > 0
        out[name] = _series(name, np.sqrt(np.where(mask, s2, 0.0)), mask)
    last = np.searchsorted(samples, grid, side="right") - 1
    out["log_return_1s"] = pl.Series(
        [rets[i] if i >= 0 else None for i in last.tolist()], dtype=pl.Float64
    )
    return out


def compute_bars(trades: pl.DataFrame) -> pl.DataFrame:
    """The ``bars_1m`` rows of one symbol: one per minute with at least one trade.

    The last bar covers the trades of the last minute seen, as the streaming
    engine's :meth:`~microstream.features.streaming.FeatureEngine.finish` emits it.
    """
    tr = clean_trades(trades)
    if tr.height == 0:
        return pl.DataFrame(schema=BARS_SCHEMA)
    price, qty = pl.col("price"), pl.col("qty")
    is_buy = pl.col("side") == "buy"
    bars = (
        tr.with_columns(((pl.col("ts_event") // MINUTE_NS) * MINUTE_NS).alias("ts"))
        .group_by("ts", maintain_order=True)
        .agg(
            price.first().alias("open"),
            price.max().alias("high"),
            price.min().alias("low"),
            price.last().alias("close"),
            qty.sum().alias("volume"),
            pl.when(is_buy).then(qty).otherwise(0.0).sum().alias("buy_volume"),
            pl.when(is_buy).then(0.0).otherwise(qty).sum().alias("sell_volume"),
            (price * qty).sum().alias("_pq"),
            pl.len().alias("trades"),
        )
        .with_columns((pl.col("_pq") / pl.col("volume")).alias("vwap"))
        .sort("ts")
    )
    return bars.select(BAR_COLUMNS).cast(BARS_SCHEMA)
