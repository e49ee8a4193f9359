"""Features of 1-minute bars for the HMM and the Isolation Forest.

Three raw features per bar ``t`` (from the ``bars_1m`` table):

- ``momentum   = ln(close_t / close_{t-1})`` — the bar's log return;
- ``volatility = (high_t - low_t) / open_t`` — the bar's relative range;
- ``activity   = volume_t / SMA_W(volume)_t`` — volume relative to its mean over
  the last ``W`` bars, the current bar included.

Each raw feature is then z-scored over a rolling window of the last ``W`` raw
values (current included): ``z = (x - mean) / std`` with the sample standard
deviation (``ddof=1``); a window with zero spread gives ``z = 0``. ``W`` is
``FEATURE_WINDOW_SIZE`` (20). The first complete vector therefore needs
``2·W - 1`` bars (``W`` for the volume mean, then ``W`` activity values);
before that the streaming version returns ``None`` (warming up).

:class:`BarFeatureStream` is the streaming version (one bar at a time, O(W) per
bar); :func:`bar_features_batch` the batch one over a whole table. They agree to
floating-point rounding on every prefix (tested). Consecutive bars are taken as
they come: a missing minute is not filled in (the next momentum spans the gap).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

log = logging.getLogger(__name__)

FEATURE_NAMES: tuple[str, ...] = ("momentum", "volatility", "activity")
"""The z-scored bar features, in model-input order."""

DEFAULT_WINDOW = 20
"""Default ``FEATURE_WINDOW_SIZE``."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Bar:
    """The fields of a ``bars_1m`` row that the features use."""

    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Bar | None:
        """A bar from a row's values, or ``None`` if a field is missing or impossible.

        Impossible: non-finite numbers, non-positive prices, negative volume,
        ``high < low``.
        """
        try:
            ts = int(values["ts"])
            nums = [float(values[k]) for k in ("open", "high", "low", "close", "volume")]
        except (KeyError, TypeError, ValueError):
            return None
        if not all(math.isfinite(v) for v in nums):
            return None
        open_, high, low, close, volume = nums
        if min(open_, high, low, close) <= 0.0 or volume < 0.0 or high < low:
            return None
        return cls(ts, open_, high, low, close, volume)


def raw_features(bar: Bar, prev_close: float | None, volume_mean: float) -> tuple[float, ...]:
    """The raw (not z-scored) features of one bar; momentum is NaN without a previous bar."""
    momentum = math.log(bar.close / prev_close) if prev_close is not None else math.nan
    volatility = (bar.high - bar.low) / bar.open
    activity = bar.volume / volume_mean if volume_mean > 0.0 else 1.0
    return (momentum, volatility, activity)


def _zscore(window: deque[float]) -> float:
    n = len(window)
    mean = sum(window) / n
    var = sum((x - mean) ** 2 for x in window) / (n - 1)
    std = math.sqrt(var)
    return 0.0 if std <= 1e-12 * max(1.0, abs(mean)) else (window[-1] - mean) / std


class BarFeatureStream:
    """Streaming z-scored bar features: feed bars in time order, get vectors.

    Args:
        window: ``FEATURE_WINDOW_SIZE``: the volume mean and z-score window.

    Attributes:
        bars_seen: valid bars consumed.
        bars_rejected: bars skipped as invalid (missing field, impossible value).
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 2:
            raise ValueError("window must be at least 2")
        self.window = window
        self._prev_close: float | None = None
        self._volumes: deque[float] = deque(maxlen=window)
        self._raw: tuple[deque[float], ...] = tuple(deque(maxlen=window) for _ in FEATURE_NAMES)
        self.bars_seen = 0
        self.bars_rejected = 0

    @property
    def warmup_bars(self) -> int:
        """Bars needed before the first complete vector (``2·W - 1``)."""
        return 2 * self.window - 1

    @property
    def ready(self) -> bool:
        """Whether the last bar produced a complete vector."""
        return all(len(d) == self.window for d in self._raw)

    def update(self, values: Mapping[str, Any]) -> tuple[float, ...] | None:
        """Consume one bar row; return its z-scored vector, or ``None`` while warming up.

        An invalid bar is counted in :attr:`bars_rejected`, logged, and returns ``None``
        without changing the state.
        """
        bar = Bar.from_values(values)
        if bar is None:
            self.bars_rejected += 1
            log.warning("bar features: invalid bar skipped: %r", dict(values))
            return None
        self.bars_seen += 1
        self._volumes.append(bar.volume)
        prev, self._prev_close = self._prev_close, bar.close
        if len(self._volumes) < self.window:
            return None
        raw = raw_features(bar, prev, sum(self._volumes) / self.window)
        for value, dq in zip(raw, self._raw, strict=True):
            if not math.isnan(value):
                dq.append(value)
        if not self.ready:
            return None
        return tuple(_zscore(dq) for dq in self._raw)


def _rolling_z(x: FloatArray, window: int) -> FloatArray:
    """Rolling z-score of the last ``window`` values (NaN until the window is full)."""
    out = np.full(x.shape, np.nan)
    if x.size < window:
        return out
    views = np.lib.stride_tricks.sliding_window_view(x, window)
    mean = views.mean(axis=1)
    std = views.std(axis=1, ddof=1)
    z = np.where(
        std <= 1e-12 * np.maximum(1.0, np.abs(mean)),
        0.0,
        (x[window - 1 :] - mean) / np.where(std > 0, std, 1.0),
    )
    out[window - 1 :] = z
    return out


def bar_features_batch(bars: pl.DataFrame, window: int = DEFAULT_WINDOW) -> pl.DataFrame:
    """Batch z-scored bar features of a ``bars_1m`` table, sorted by ``ts``.

    Returns a frame with ``ts`` and the :data:`FEATURE_NAMES` columns, one row per
    input bar that is valid (same validity rule as the stream); features are null
    while warming up. Agrees with :class:`BarFeatureStream` row by row.
    """
    bars = bars.sort("ts")
    valid = [Bar.from_values(r) for r in bars.iter_rows(named=True)]
    rows = [b for b in valid if b is not None]
    ts = np.array([b.ts for b in rows], dtype=np.int64)
    close = np.array([b.close for b in rows], dtype=np.float64)
    volume = np.array([b.volume for b in rows], dtype=np.float64)
    high = np.array([b.high for b in rows], dtype=np.float64)
    low = np.array([b.low for b in rows], dtype=np.float64)
    open_ = np.array([b.open for b in rows], dtype=np.float64)
    n = ts.size
    columns: dict[str, FloatArray] = {name: np.full(n, np.nan) for name in FEATURE_NAMES}
    if n >= window:
        vol_mean = np.lib.stride_tricks.sliding_window_view(volume, window).mean(axis=1)
        sl = slice(window - 1, None)
        momentum = np.log(close[sl] / close[window - 2 : -1]) if window >= 2 else close[sl]
        raw = {
            "momentum": momentum,
            "volatility": (high[sl] - low[sl]) / open_[sl],
            "activity": np.where(
                vol_mean > 0, volume[sl] / np.where(vol_mean > 0, vol_mean, 1.0), 1.0
            ),
        }
        for name in FEATURE_NAMES:
            columns[name][sl] = _rolling_z(raw[name], window)
    frame = pl.DataFrame({"ts": ts, **columns})
    return frame.with_columns(pl.col(list(FEATURE_NAMES)).fill_nan(None))


def feature_matrix(frame: pl.DataFrame) -> FloatArray:
    """The complete rows of a :func:`bar_features_batch` frame as an ``(n, 3)`` array."""
    complete = frame.drop_nulls(list(FEATURE_NAMES))
    return complete.select(FEATURE_NAMES).to_numpy().astype(np.float64)
