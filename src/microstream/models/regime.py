"""The five-class market regime: an explainable score with hysteresis.

Every ``features`` row (one per grid point) gives up to five components, each
a number in ``[-1, 1]`` (positive = bullish):

- **trend** ``= tanh(z / trend_scale)`` with ``z = ln(mid_t / mid_{t-w}) ·
  (60 s / w) / σ̄``: the mid's drift per minute over the look-back ``w``, in
  units of a typical 1-minute volatility ``σ̄`` (the root of an exponentially
  weighted mean of the squared 1-second log returns of the mid, scaled to a
  minute, with time constant ``vol_baseline_s``; 0: the current
  ``volatility_1m`` itself). A slow baseline keeps the *size* of a strong (and
  more volatile) move visible. The look-back adapts: the candidates are
  ``trend_min_window_s``, twice that, four times, … up to ``trend_window_s``;
  the drift over the shortest one is the reference, and the longest candidate
  whose drift agrees with it within ``trend_consistency`` standard errors of
  the reference (``σ̄ · sqrt(60 s / w_min)`` per minute) is used. In a steady
  trend that is the long window (little noise); right after the market turns
  the long windows disagree with the recent drift and the short one is used
  (little lag). ``trend_consistency`` 0 always uses ``trend_window_s``;
- **flow** ``= tanh(flow_imbalance_1m / flow_scale)``: who is aggressive — the
  buy minus sell market-order volume of the last minute over their sum;
- **pressure** ``= tanh(P / pressure_scale)`` with ``P = (buy_volume_1m −
  sell_volume_1m) / V̄``: the net aggressive volume of the last minute in units
  of a typical minute's volume ``V̄`` (an exponential moving average of
  ``buy_volume_1m + sell_volume_1m`` with time constant ``volume_baseline_s``).
  Unlike flow, it grows when the one-sided trading is also heavy;
- **book** ``= tanh(imbalance_l5 / book_scale)``: resting bid minus ask size on
  the top five levels over their sum;
- **ofi** ``= tanh(O / ofi_scale)`` with ``O = ofi_10s / Ō``: the order-flow
  imbalance at the best quotes over the last 10 s (Cont–Kukanov–Stoikov) in
  units of its typical size ``Ō`` (an exponential moving average of
  ``|ofi_10s|`` with time constant ``volume_baseline_s``). It reacts within
  seconds, before a move shows in the minute windows.

The **raw score** is their weighted mean over the components that are
available (weights ``w_trend``, ``w_flow``, ``w_pressure``, ``w_book``,
``w_ofi``), and the **score** is that raw score smoothed by an exponential
moving average of time constant ``smoothing_s``; it stays in ``[-1, 1]``. The **coverage** is the weight share
of the available components; below ``min_coverage`` there is no regime
(``regime``/``score`` null, ``confidence`` 0, ``status`` ``insufficient_data``)
and the smoothing and hysteresis restart from scratch — nothing stale is carried.

**Classes** by thresholds on the score, with hysteresis: ``strongly_bullish``
at ``score ≥ strong_enter``, ``bullish`` at ``≥ enter``, ``neutral`` in between,
and mirror images below zero. A class is *entered* at its ``enter`` threshold
but only *left* when the score crosses its ``exit`` threshold (closer to zero),
and no class is left before ``min_dwell_s`` seconds: a noisy score near a
threshold does not flap.

**Confidence** ``= coverage · (0.5 + 0.5 · depth)``, where ``depth`` in ``[0, 1]``
is how far the score is inside its class band (distance to the nearest edge /
``confidence_span``). On a band edge the confidence is half the coverage.

Missing data: ``book_valid`` false or null book features remove trend and book
(and empty the mid history so no stale reference is used once the book comes
back); a null ``ofi_10s`` removes ofi; no trade in the last minute removes flow
and pressure.

Cost: O(number of look-backs · log n) per row (a list of recent mids, bisected).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from microstream.bus.protocol import Row
from microstream.config import Settings
from microstream.store.schema import extend_table

TABLE = "regimes"
REGIMES: tuple[str, ...] = (
    "strongly_bullish",
    "bullish",
    "neutral",
    "bearish",
    "strongly_bearish",
)
"""The five classes, most bullish first."""

_LEVEL_NAME = {
    2: "strongly_bullish",
    1: "bullish",
    0: "neutral",
    -1: "bearish",
    -2: "strongly_bearish",
}
NS_PER_S = 1_000_000_000
INSUFFICIENT = "insufficient_data"
OK = "ok"

extend_table(
    TABLE,
    {
        "raw_score": pa.float64(),
        "trend": pa.float64(),
        "trend_z": pa.float64(),
        "flow": pa.float64(),
        "pressure": pa.float64(),
        "book": pa.float64(),
        "ofi": pa.float64(),
        "coverage": pa.float64(),
        "status": pa.string(),
    },
)


@dataclass(frozen=True)
class RegimeConfig:
    """Parameters of the regime score (defaults tuned on the simulator, see docs/models.md).

    Attributes:
        trend_window_s: longest look-back of the trend component (seconds).
        trend_min_window_s: shortest look-back (seconds); the candidates double
            from it up to ``trend_window_s``.
        trend_consistency: how many standard errors a longer look-back's drift
            may differ from the shortest one's and still be used (0: always
            the longest).
        trend_scale / flow_scale / pressure_scale / book_scale / ofi_scale:
            input value giving ``tanh(1) ≈ 0.76`` for each component.
        w_trend / w_flow / w_pressure / w_book / w_ofi: component weights.
        volume_baseline_s: time constant of the typical minute volume ``V̄``
            and of the typical order-flow imbalance ``Ō``.
        smoothing_s: time constant of the score's moving average (0: none).
        enter / exit: thresholds of ``bullish`` (and ``-`` of ``bearish``).
        strong_enter / strong_exit: thresholds of the strong classes.
        min_dwell_s: minimum time in a class before it may change.
        min_coverage: minimum available weight share to emit a regime.
        confidence_span: score distance inside a band that gives full confidence.
        vol_floor: floor of ``σ̄`` (log-return units) in the trend's z.
        vol_baseline_s: time constant of the volatility baseline ``σ̄``, an
            exponentially weighted mean of the mid's squared 1-second log
            returns (0: use the current ``volatility_1m``).
    """

    trend_window_s: float = 160.0
    trend_min_window_s: float = 15.0
    trend_consistency: float = 0.75
    trend_scale: float = 18.0
    flow_scale: float = 1.5
    pressure_scale: float = 0.26
    book_scale: float = 1.4
    ofi_scale: float = 1.0
    w_trend: float = 1.0
    w_flow: float = 0.1
    w_pressure: float = 0.05
    w_book: float = 0.05
    w_ofi: float = 0.0
    volume_baseline_s: float = 600.0
    smoothing_s: float = 25.0
    enter: float = 0.12
    exit: float = 0.10
    strong_enter: float = 0.26
    strong_exit: float = 0.24
    min_dwell_s: float = 5.0
    min_coverage: float = 0.5
    confidence_span: float = 0.07
    vol_floor: float = 1e-5
    vol_baseline_s: float = 600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.exit <= self.enter <= self.strong_exit <= self.strong_enter <= 1.0:
            raise ValueError("need 0 <= exit <= enter <= strong_exit <= strong_enter <= 1")
        weights = (self.w_trend, self.w_flow, self.w_pressure, self.w_book, self.w_ofi)
        if min(weights) < 0 or self.total_weight <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if not 0.0 < self.trend_min_window_s <= self.trend_window_s:
            raise ValueError("need 0 < trend_min_window_s <= trend_window_s")

    @property
    def trend_windows_s(self) -> tuple[float, ...]:
        """The look-backs the trend chooses from, shortest first."""
        if self.trend_consistency <= 0:
            return (self.trend_window_s,)
        out = []
        w = self.trend_min_window_s
        while w < self.trend_window_s:
            out.append(w)
            w *= 2.0
        out.append(self.trend_window_s)
        return tuple(out)

    @property
    def total_weight(self) -> float:
        """Sum of the component weights."""
        return self.w_trend + self.w_flow + self.w_pressure + self.w_book + self.w_ofi

    def band(self, level: int) -> tuple[float, float]:
        """The score interval in which class ``level`` (-2..2) is kept."""
        inf = math.inf
        bands = {
            2: (self.strong_exit, inf),
            1: (self.exit, self.strong_enter),
            0: (-self.enter, self.enter),
            -1: (-self.strong_enter, -self.exit),
            -2: (-inf, -self.strong_exit),
        }
        return bands[level]


def _num(values: Mapping[str, Any], key: str) -> float | None:
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


class RegimeDetector:
    """Per-symbol regime stage: ``features`` rows in, ``regimes`` rows out.

    Args:
        exchange / symbol: the partition of the emitted rows.
        emit: receives one ``regimes`` row per ``features`` row.
        settings: run settings (unused today; accepted for the stage convention).
        config: the score parameters.

    Attributes:
        rows_in: rows received; rows_rejected: rows without an integer ``ts``.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: Callable[[Row], None],
        settings: Settings | None = None,
        config: RegimeConfig | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.config = config or RegimeConfig()
        self._emit = emit
        self._mid_ts: list[int] = []
        self._mid_log: list[float] = []
        self._mid_lo = 0  # first entry still inside the longest look-back
        self._windows_ns = [int(w * NS_PER_S) for w in self.config.trend_windows_s]
        self._score: float | None = None
        self._volume_base: float | None = None
        self._var_sum = 0.0  # EW sum of squared 1-s mid log returns (per minute)
        self._var_weight = 0.0
        self._ofi_base: float | None = None
        self._last_ts: int | None = None
        self._level: int | None = None
        self._entered_ts = 0
        self.rows_in = 0
        self.rows_rejected = 0

    def on_features(self, values: Mapping[str, Any]) -> Row | None:
        """Consume one ``features`` row; emit and return its ``regimes`` row."""
        self.rows_in += 1
        ts = values.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool):
            self.rows_rejected += 1
            return None
        if self._last_ts is not None and ts <= self._last_ts:
            self.rows_rejected += 1  # out of order: the grid only moves forward
            return None
        out = self._compute(ts, values)
        self._last_ts = ts
        row = Row(TABLE, self.exchange, self.symbol, out)
        self._emit(row)
        return row

    # ------------------------------------------------------------ components
    def _trend(self, ts: int, values: Mapping[str, Any]) -> tuple[float | None, float | None]:
        """``(component, z)``; ``None`` if the book is invalid or history is short."""
        mid = _num(values, "mid")
        if mid is None or mid <= 0.0 or values.get("book_valid") is False:
            self._forget_mids()
            return None, None
        stamps, logs = self._mid_ts, self._mid_log
        stamps.append(ts)
        logs.append(math.log(mid))
        vol = self._volatility(ts, _num(values, "volatility_1m"))
        windows = self._windows_ns
        lo = self._mid_lo
        while lo + 1 < len(stamps) and stamps[lo + 1] <= ts - windows[-1]:
            lo += 1
        if lo > 4096:  # drop what no look-back needs any more
            del stamps[:lo], logs[:lo]
            lo = 0
        self._mid_lo = lo
        if vol is None:
            return None, None
        sigma = max(vol, self.config.vol_floor)
        drift = None  # per minute, log units
        reference = 0.0
        for k, window in enumerate(windows):
            pos = bisect.bisect_right(stamps, ts - window, lo) - 1
            if pos < lo:
                break  # not enough history for this look-back (nor longer ones)
            span_s = (ts - stamps[pos]) / NS_PER_S
            d = (logs[-1] - logs[pos]) * 60.0 / span_s
            if k == 0:
                drift, reference = d, d
                tolerance = self.config.trend_consistency * sigma * math.sqrt(60.0 / span_s)
            elif abs(d - reference) > tolerance:
                break
            else:
                drift = d
        if drift is None:
            return None, None
        z = drift / sigma
        return math.tanh(z / self.config.trend_scale), z

    def _forget_mids(self) -> None:
        self._mid_ts.clear()
        self._mid_log.clear()
        self._mid_lo = 0

    def _volatility(self, ts: int, vol: float | None) -> float | None:
        """The volatility baseline ``σ̄`` (``volatility_1m`` itself without a baseline).

        With ``vol_baseline_s > 0`` it is the root of an exponentially weighted
        mean (time constant ``vol_baseline_s``, bias-corrected so that the first
        seconds count fully) of the squared 1-second log returns of the mid,
        scaled to one minute: unlike ``volatility_1m`` it is not too small
        while the first minute of data fills up. Call after appending the mid.
        """
        tau = self.config.vol_baseline_s
        if tau <= 0:
            return vol if vol is not None and vol >= 0 else None
        stamps, logs = self._mid_ts, self._mid_log
        if len(stamps) - self._mid_lo >= 2:
            dt = (stamps[-1] - stamps[-2]) / NS_PER_S
            if dt > 0:
                decay = math.exp(-dt / tau)
                r = logs[-1] - logs[-2]
                self._var_sum = self._var_sum * decay + (1.0 - decay) * r * r * 60.0 / dt
                self._var_weight = self._var_weight * decay + (1.0 - decay)
        if self._var_weight <= 0:
            return None
        return math.sqrt(self._var_sum / self._var_weight)

    def _pressure(self, ts: int, values: Mapping[str, Any]) -> float | None:
        """Net aggressive volume of the last minute over the typical minute volume."""
        buy, sell = _num(values, "buy_volume_1m"), _num(values, "sell_volume_1m")
        if buy is None or sell is None or buy < 0 or sell < 0 or buy + sell <= 0:
            return None
        total = buy + sell
        if self._volume_base is None or self._last_ts is None:
            self._volume_base = total
        else:
            dt = (ts - self._last_ts) / NS_PER_S
            alpha = 1.0 - math.exp(-dt / self.config.volume_baseline_s)
            self._volume_base += alpha * (total - self._volume_base)
        return (buy - sell) / self._volume_base

    def _ofi(self, ts: int, values: Mapping[str, Any]) -> float | None:
        """``ofi_10s`` over its typical absolute size (None until that is positive)."""
        ofi = _num(values, "ofi_10s")
        if ofi is None or values.get("book_valid") is False:
            return None
        size = abs(ofi)
        if self._ofi_base is None or self._last_ts is None:
            self._ofi_base = size
        else:
            dt = (ts - self._last_ts) / NS_PER_S
            alpha = 1.0 - math.exp(-dt / self.config.volume_baseline_s)
            self._ofi_base += alpha * (size - self._ofi_base)
        return ofi / self._ofi_base if self._ofi_base > 0 else None

    def _components(self, ts: int, values: Mapping[str, Any]) -> dict[str, Any]:
        cfg = self.config
        trend, z = self._trend(ts, values)
        book_ok = values.get("book_valid") is not False
        flow_raw = _num(values, "flow_imbalance_1m")
        pressure_raw = self._pressure(ts, values)
        book_raw = _num(values, "imbalance_l5") if book_ok else None
        ofi_raw = self._ofi(ts, values) if cfg.w_ofi > 0 else None
        flow = None if flow_raw is None else math.tanh(flow_raw / cfg.flow_scale)
        pressure = None if pressure_raw is None else math.tanh(pressure_raw / cfg.pressure_scale)
        book = None if book_raw is None else math.tanh(book_raw / cfg.book_scale)
        ofi = None if ofi_raw is None else math.tanh(ofi_raw / cfg.ofi_scale)
        parts = (
            (trend, cfg.w_trend),
            (flow, cfg.w_flow),
            (pressure, cfg.w_pressure),
            (book, cfg.w_book),
            (ofi, cfg.w_ofi),
        )
        weight = sum(w for c, w in parts if c is not None)
        raw = sum(c * w for c, w in parts if c is not None) / weight if weight > 0 else None
        return {
            "raw_score": raw,
            "trend": trend,
            "trend_z": z,
            "flow": flow,
            "pressure": pressure,
            "book": book,
            "ofi": ofi,
            "coverage": weight / cfg.total_weight,
        }

    # ---------------------------------------------------------- score, class
    def _compute(self, ts: int, values: Mapping[str, Any]) -> dict[str, Any]:
        parts = self._components(ts, values)
        raw = parts["raw_score"]
        if raw is None or parts["coverage"] < self.config.min_coverage:
            self._score = self._level = None
            return {
                "ts": ts,
                "regime": None,
                "score": None,
                "confidence": 0.0,
                **parts,
                "status": INSUFFICIENT,
            }
        score = self._smooth(ts, raw)
        level = self._classify(ts, score)
        confidence = parts["coverage"] * (0.5 + 0.5 * self._depth(level, score))
        return {
            "ts": ts,
            "regime": _LEVEL_NAME[level],
            "score": score,
            "confidence": confidence,
            **parts,
            "status": OK,
        }

    def _smooth(self, ts: int, raw: float) -> float:
        tau = self.config.smoothing_s
        if self._score is None or self._last_ts is None or tau <= 0:
            self._score = raw
            return raw
        dt = (ts - self._last_ts) / NS_PER_S
        alpha = 1.0 - math.exp(-dt / tau)
        self._score += alpha * (raw - self._score)
        return self._score

    def _classify(self, ts: int, score: float) -> int:
        if self._level is None:
            self._level, self._entered_ts = self._plain_level(score), ts
            return self._level
        if (ts - self._entered_ts) / NS_PER_S < self.config.min_dwell_s:
            return self._level
        level = self._level
        step = 1 if score >= self.config.band(level)[1] else -1
        while not self._inside(level, score) and -2 < level + step < 3:
            level += step
        if level != self._level:
            self._level, self._entered_ts = level, ts
        return level

    def _inside(self, level: int, score: float) -> bool:
        lo, hi = self.config.band(level)
        if level == 0:
            return lo < score < hi
        if level > 0:
            return lo <= score < hi
        return lo < score <= hi

    def _plain_level(self, score: float) -> int:
        cfg = self.config
        magnitude = 2 if abs(score) >= cfg.strong_enter else 1 if abs(score) >= cfg.enter else 0
        return magnitude if score >= 0 else -magnitude

    def _depth(self, level: int, score: float) -> float:
        lo, hi = self.config.band(level)
        distance = min(score - lo, hi - score)
        return max(0.0, min(1.0, distance / self.config.confidence_span))
