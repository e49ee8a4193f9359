"""Inputs of the direction forecast, computed from ``features`` rows known at ``t``.

Every input is scale-free (basis points, ratios, z-scores), so one model can
serve BTC and ETH, spot and futures:

- ``micro_dev_bps``: ``(microprice - mid) / mid · 1e4``
- ``imbalance_l1``, ``imbalance_l5``: book imbalances as in the features table
- ``ofi_z``: ``ofi_10s`` divided by the root mean square of ``ofi_10s`` over
  the last :data:`OFI_WINDOW` grid rows (including ``t``; non-null values only,
  at least :data:`OFI_MIN_COUNT` of them, else 0)
- ``flow_imbalance_1m``: trade-flow imbalance of the last minute
- ``spread_bps``
- ``ret_1s``, ``ret_5s``, ``ret_10s``: ``ln(mid_t / mid_{t-k})·1e4`` from the
  grid rows at exactly ``t - k`` seconds
- ``vwap_dev_bps``: ``(mid - vwap_1m) / mid · 1e4``
- ``vol_1m_bps``, ``vol_5m_bps``: ``volatility_1m/5m · 1e4``
- ``recent_up_logshare``, ``recent_neutral_logshare``, ``recent_down_logshare``:
  the log of the smoothed share of each class among the labels *already
  resolved at t*. The label of the row at ``t' = t - h`` resolves at ``t``
  (``mid(t)`` is then known), with exactly the rule of
  :func:`~microstream.models.labels.label_frame`; each grid row contributes the
  label it resolves (if any). Over the last :data:`RESOLVED_WINDOW` grid rows
  (including ``t``), with ``c_k`` labels of class ``k`` out of ``n``:
  ``ln((c_k + A/3) / (n + A))`` with ``A =`` :data:`RESOLVED_PSEUDO` (so
  ``ln(1/3)`` while nothing is resolved yet).
- ``recent_move_bps``: root mean square of those resolved ``h``-second log
  moves (bp), shrunk toward :data:`RESOLVED_DEFAULT_MOVE_BPS` with the same
  ``A`` pseudo-rows.

The resolved-label inputs depend on the horizon ``h`` and threshold θ of the
label, so :class:`ForecastFeatures` and :func:`forecast_feature_frame` take
them (defaults 10 s, 1 bp).

A row is *valid* when the book is valid and ``mid``, ``microprice``,
``imbalance_l1`` and ``spread_bps`` are present; an invalid row has no inputs
and the forecast is null. Other missing inputs are set to 0 (their neutral
value). :class:`ForecastFeatures` (one row at a time, O(1)) and
:func:`forecast_feature_frame` (Polars) give identical values; the tests
compare them on every prefix.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from microstream.models.labels import NS_PER_S, valid_mid

FEATURE_NAMES: tuple[str, ...] = (
    "micro_dev_bps",
    "imbalance_l1",
    "imbalance_l5",
    "ofi_z",
    "flow_imbalance_1m",
    "spread_bps",
    "ret_1s",
    "ret_5s",
    "ret_10s",
    "vwap_dev_bps",
    "vol_1m_bps",
    "vol_5m_bps",
    "recent_up_logshare",
    "recent_neutral_logshare",
    "recent_down_logshare",
    "recent_move_bps",
)
RETURN_LAGS_S: tuple[int, ...] = (1, 5, 10)
OFI_WINDOW = 300
OFI_MIN_COUNT = 30
RESOLVED_WINDOW = 180
"""Grid rows over which the already-resolved labels are counted."""
RESOLVED_PSEUDO = 10.0
"""Pseudo-count ``A`` of the smoothing of the resolved-label shares and move RMS."""
RESOLVED_DEFAULT_MOVE_BPS = 2.0
"""The ``h``-second move RMS (bp) assumed while few labels are resolved."""
_REQUIRED = ("microprice", "imbalance_l1", "spread_bps")


def _num(values: Mapping[str, Any], key: str) -> float | None:
    raw = values.get(key)
    if raw is None:
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


class ForecastFeatures:
    """Streaming forecast inputs for one symbol; feed rows in ``ts`` order."""

    def __init__(self, horizon_s: float = 10.0, threshold_bps: float = 1.0) -> None:
        self.horizon_s = horizon_s
        self.threshold_bps = threshold_bps
        self._horizon_ns = round(horizon_s * NS_PER_S)
        self._theta = threshold_bps * 1e-4
        self._mids: dict[int, float] = {}
        self._mid_order: deque[int] = deque()
        self._ofi: deque[float | None] = deque()
        self._ofi_sq_sum = 0.0
        self._ofi_count = 0
        self._max_lag_ns = max(max(RETURN_LAGS_S) * NS_PER_S, self._horizon_ns)
        self._resolved: deque[tuple[int, float] | None] = deque()
        self._class_counts = [0, 0, 0]
        self._move_sq_sum = 0.0

    def update(self, values: Mapping[str, Any]) -> np.ndarray | None:
        """Inputs at this row (in :data:`FEATURE_NAMES` order), None if the row is invalid."""
        ts = int(values["ts"])
        mid = valid_mid(values)
        self._push_mid(ts, mid)
        ofi_z = self._push_ofi(_num(values, "ofi_10s"))
        self._push_resolved(ts, mid)
        if mid is None or any(_num(values, k) is None for k in _REQUIRED):
            return None
        return self._vector(values, ts, mid, ofi_z)

    def _push_resolved(self, ts: int, mid: float | None) -> None:
        """Add the label of the row at ``ts - h`` (resolved by this row), if any."""
        past = self._mids.get(ts - self._horizon_ns) if mid is not None else None
        item: tuple[int, float] | None = None
        if mid is not None and past is not None:
            ret = mid / past - 1.0
            code = 0 if ret > self._theta else 2 if ret < -self._theta else 1
            item = (code, math.log(mid / past) * 1e4)
            self._class_counts[code] += 1
            self._move_sq_sum += item[1] * item[1]
        self._resolved.append(item)
        if len(self._resolved) > RESOLVED_WINDOW:
            old = self._resolved.popleft()
            if old is not None:
                self._class_counts[old[0]] -= 1
                self._move_sq_sum -= old[1] * old[1]
        if sum(self._class_counts) == 0:
            self._move_sq_sum = 0.0

    def _recent(self) -> list[float]:
        counts = self._class_counts
        n = float(sum(counts))
        shares = [math.log((c + RESOLVED_PSEUDO / 3) / (n + RESOLVED_PSEUDO)) for c in counts]
        move = _recent_move(self._move_sq_sum, n)
        return [*shares, move]

    def _push_mid(self, ts: int, mid: float | None) -> None:
        if mid is not None:
            self._mids[ts] = mid
            self._mid_order.append(ts)
        while self._mid_order and self._mid_order[0] < ts - self._max_lag_ns:
            self._mids.pop(self._mid_order.popleft(), None)

    def _push_ofi(self, ofi: float | None) -> float:
        self._ofi.append(ofi)
        if ofi is not None:
            self._ofi_sq_sum += ofi * ofi
            self._ofi_count += 1
        if len(self._ofi) > OFI_WINDOW:
            old = self._ofi.popleft()
            if old is not None:
                self._ofi_sq_sum -= old * old
                self._ofi_count -= 1
        if self._ofi_count == 0:
            self._ofi_sq_sum = 0.0
        return _ofi_z(ofi, self._ofi_sq_sum, self._ofi_count)

    def _vector(self, values: Mapping[str, Any], ts: int, mid: float, ofi_z: float) -> np.ndarray:
        micro = _num(values, "microprice") or mid
        vwap = _num(values, "vwap_1m")
        rets = []
        for lag in RETURN_LAGS_S:
            past = self._mids.get(ts - lag * NS_PER_S)
            rets.append(math.log(mid / past) * 1e4 if past is not None else 0.0)
        return np.array(
            [
                (micro - mid) / mid * 1e4,
                _num(values, "imbalance_l1") or 0.0,
                _num(values, "imbalance_l5") or 0.0,
                ofi_z,
                _num(values, "flow_imbalance_1m") or 0.0,
                _num(values, "spread_bps") or 0.0,
                *rets,
                (mid - vwap) / mid * 1e4 if vwap is not None else 0.0,
                (_num(values, "volatility_1m") or 0.0) * 1e4,
                (_num(values, "volatility_5m") or 0.0) * 1e4,
                *self._recent(),
            ],
            dtype=np.float64,
        )


def _recent_move(sq_sum: float, n: float) -> float:
    prior = RESOLVED_PSEUDO * RESOLVED_DEFAULT_MOVE_BPS**2
    return math.sqrt((max(sq_sum, 0.0) + prior) / (n + RESOLVED_PSEUDO))


def _ofi_z(ofi: float | None, sq_sum: float, count: int) -> float:
    if ofi is None or count < OFI_MIN_COUNT:
        return 0.0
    rms = math.sqrt(max(sq_sum, 0.0) / count)
    return ofi / rms if rms > 0.0 else 0.0


def _col(frame: pl.DataFrame, name: str) -> pl.Expr:
    if name in frame.columns:
        value = pl.col(name).cast(pl.Float64)
        return pl.when(value.is_finite()).then(value).otherwise(None)
    return pl.lit(None, dtype=pl.Float64)


def _resolved_exprs(horizon_s: float, threshold_bps: float) -> list[pl.Expr]:
    """Rolling counts of the labels resolved at each row (needs ``_mid`` and ``_mid_hb``)."""
    theta = threshold_bps * 1e-4
    ret = pl.col("_mid") / pl.col("_mid_hb") - 1.0
    move = (pl.col("_mid") / pl.col("_mid_hb")).log() * 1e4
    indicators = {
        "_c_up": ret > theta,
        "_c_neutral": (ret <= theta) & (ret >= -theta),
        "_c_down": ret < -theta,
        "_c_n": ret.is_not_null(),
    }
    exprs = [
        e.fill_null(False).cast(pl.Int64).rolling_sum(RESOLVED_WINDOW, min_samples=1).alias(k)
        for k, e in indicators.items()
    ]
    exprs.append(
        (move**2).fill_null(0.0).rolling_sum(RESOLVED_WINDOW, min_samples=1).alias("_c_sq")
    )
    return exprs


def _recent_exprs() -> list[pl.Expr]:
    n = pl.col("_c_n").cast(pl.Float64)
    shares = [
        ((pl.col(f"_c_{k}") + RESOLVED_PSEUDO / 3) / (n + RESOLVED_PSEUDO))
        .log()
        .alias(f"recent_{k}_logshare")
        for k in ("up", "neutral", "down")
    ]
    sq = pl.when(pl.col("_c_n") > 0).then(pl.col("_c_sq").clip(lower_bound=0.0)).otherwise(0.0)
    prior = RESOLVED_PSEUDO * RESOLVED_DEFAULT_MOVE_BPS**2
    move = ((sq + prior) / (n + RESOLVED_PSEUDO)).sqrt().alias("recent_move_bps")
    return [*shares, move]


def _symbol_frame(
    frame: pl.DataFrame, horizon_s: float = 10.0, threshold_bps: float = 1.0
) -> pl.DataFrame:
    """Forecast inputs of one symbol's feature rows (sorted by ``ts``)."""
    valid_flag = pl.col("book_valid").fill_null(True) if "book_valid" in frame.columns else True
    mid = _col(frame, "mid")
    base = frame.with_columns(
        pl.when(mid.is_not_null() & (mid > 0) & valid_flag).then(mid).alias("_mid"),
        _col(frame, "ofi_10s").alias("_ofi"),
    )
    base = base.with_columns(
        (pl.col("_ofi") ** 2).fill_null(0.0).rolling_sum(OFI_WINDOW, min_samples=1).alias("_sq"),
        pl.col("_ofi")
        .is_not_null()
        .cast(pl.Int64)
        .rolling_sum(OFI_WINDOW, min_samples=1)
        .alias("_n"),
    )
    lookup = (
        base.select("ts", "_mid")
        .filter(pl.col("_mid").is_not_null())
        .unique("ts", keep="last", maintain_order=True)
    )
    for lag in RETURN_LAGS_S:
        shifted = lookup.select(
            (pl.col("ts") + lag * NS_PER_S).alias("ts"), pl.col("_mid").alias(f"_mid_{lag}")
        )
        base = base.join(shifted, on="ts", how="left", maintain_order="left")
    back = lookup.select(
        (pl.col("ts") + round(horizon_s * NS_PER_S)).alias("ts"), pl.col("_mid").alias("_mid_hb")
    )
    base = base.join(back, on="ts", how="left", maintain_order="left")
    base = base.with_columns(_resolved_exprs(horizon_s, threshold_bps))
    rms = (pl.col("_sq").clip(lower_bound=0.0) / pl.col("_n")).sqrt()
    ofi_z = (
        pl.when(pl.col("_ofi").is_null() | (pl.col("_n") < OFI_MIN_COUNT) | (rms <= 0))
        .then(0.0)
        .otherwise(pl.col("_ofi") / rms)
    )
    m = pl.col("_mid")
    micro = _col(frame, "microprice")
    vwap = _col(frame, "vwap_1m")
    valid = m.is_not_null()
    for name in _REQUIRED:
        valid = valid & _col(frame, name).is_not_null()
    exprs = [
        ((micro - m) / m * 1e4).alias("micro_dev_bps"),
        _col(frame, "imbalance_l1").fill_null(0.0).alias("imbalance_l1"),
        _col(frame, "imbalance_l5").fill_null(0.0).alias("imbalance_l5"),
        ofi_z.alias("ofi_z"),
        _col(frame, "flow_imbalance_1m").fill_null(0.0).alias("flow_imbalance_1m"),
        _col(frame, "spread_bps").fill_null(0.0).alias("spread_bps"),
        *[
            ((m / pl.col(f"_mid_{lag}")).log() * 1e4).fill_null(0.0).alias(f"ret_{lag}s")
            for lag in RETURN_LAGS_S
        ],
        ((m - vwap) / m * 1e4).fill_null(0.0).alias("vwap_dev_bps"),
        (_col(frame, "volatility_1m").fill_null(0.0) * 1e4).alias("vol_1m_bps"),
        (_col(frame, "volatility_5m").fill_null(0.0) * 1e4).alias("vol_5m_bps"),
        *_recent_exprs(),
    ]
    inputs = base.select(
        "ts",
        valid.alias("fc_valid"),
        *[pl.when(valid).then(e).otherwise(None).alias(e.meta.output_name()) for e in exprs],
    )
    return inputs


def forecast_feature_frame(
    features: pl.DataFrame,
    by: tuple[str, ...] = ("exchange", "symbol"),
    horizon_s: float = 10.0,
    threshold_bps: float = 1.0,
) -> pl.DataFrame:
    """Forecast inputs for a ``features`` frame, row-aligned with it.

    Returns ``features``' key columns (``by`` columns present, ``ts``), a boolean
    ``fc_valid`` and one Float64 column per :data:`FEATURE_NAMES` entry (null
    when ``fc_valid`` is false). Each group of ``by`` is processed in ``ts`` order.
    ``horizon_s`` / ``threshold_bps`` define the already-resolved labels.
    """
    keys = [c for c in by if c in features.columns]
    if not keys:
        return _symbol_frame(features.sort("ts"), horizon_s, threshold_bps)
    parts = []
    for key_values, group in features.sort([*keys, "ts"]).group_by(keys, maintain_order=True):
        part = _symbol_frame(group, horizon_s, threshold_bps)
        parts.append(
            part.with_columns(
                [pl.lit(v).alias(k) for k, v in zip(keys, key_values, strict=True)]
            ).select([*keys, *part.columns])
        )
    return pl.concat(parts) if parts else pl.DataFrame()


def feature_matrix(frame: pl.DataFrame) -> np.ndarray:
    """The ``FEATURE_NAMES`` columns of a :func:`forecast_feature_frame` as an array."""
    return frame.select(FEATURE_NAMES).to_numpy().astype(np.float64)
