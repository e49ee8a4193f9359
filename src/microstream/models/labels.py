"""Direction labels of the 5-10 s forecast.

At grid time ``t`` with horizon ``h``: ``up`` if ``mid(t+h)/mid(t) - 1 > θ``,
``down`` if ``< -θ``, else ``neutral``; θ in basis points (default 1). The
label is null when either mid is missing or invalid (``book_valid`` false,
null, NaN or not positive), and when the grid has no row at exactly ``t + h``.

:func:`label_frame` is the vectorised (Polars) version used for training;
:class:`LabelResolver` resolves labels one feature row at a time for the live
scorecard, with the same rule (tested against each other).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import polars as pl

Direction = Literal["up", "neutral", "down"]
CLASSES: tuple[Direction, Direction, Direction] = ("up", "neutral", "down")
"""Class order everywhere: ``(p_up, p_neutral, p_down)``, class codes 0, 1, 2."""
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
NS_PER_S = 1_000_000_000

P = TypeVar("P")


def classify_return(ret: float, threshold_bps: float) -> Direction:
    """The label of a simple return ``ret`` for threshold ``threshold_bps``."""
    theta = threshold_bps * 1e-4
    if ret > theta:
        return "up"
    if ret < -theta:
        return "down"
    return "neutral"


def valid_mid(values: Mapping[str, Any]) -> float | None:
    """The row's mid if it is usable (book valid, finite, positive), else None."""
    if values.get("book_valid") is False:
        return None
    mid = values.get("mid")
    if mid is None:
        return None
    mid_f = float(mid)
    if not math.isfinite(mid_f) or mid_f <= 0.0:
        return None
    return mid_f


def _valid_mid_expr() -> pl.Expr:
    mid = pl.col("mid").cast(pl.Float64)
    ok = mid.is_not_null() & mid.is_finite() & (mid > 0)
    if_valid = pl.col("book_valid").fill_null(True)
    return pl.when(ok & if_valid).then(mid).otherwise(None)


def label_frame(
    features: pl.DataFrame,
    horizon_s: float = 10.0,
    threshold_bps: float = 1.0,
    by: tuple[str, ...] = ("exchange", "symbol"),
) -> pl.DataFrame:
    """``features`` with ``fwd_return`` (simple return to ``t+h``) and ``label``.

    ``features`` needs ``ts`` (ns) and ``mid``; ``book_valid`` is used when
    present. Rows are matched within each group of ``by`` columns present in the
    frame. ``label`` is a string column (``up``/``neutral``/``down``/null) and
    ``label_code`` its class index (0/1/2/null, :data:`CLASSES` order).
    """
    keys = [c for c in by if c in features.columns]
    frame = features
    if "book_valid" not in frame.columns:
        frame = frame.with_columns(pl.lit(True).alias("book_valid"))
    frame = frame.with_columns(_valid_mid_expr().alias("_mid0"))
    future = frame.select(
        [
            *keys,
            (pl.col("ts") - round(horizon_s * NS_PER_S)).alias("ts"),
            pl.col("_mid0").alias("_mid_h"),
        ]
    ).unique(subset=[*keys, "ts"], keep="last")
    joined = frame.join(future, on=[*keys, "ts"], how="left", maintain_order="left")
    theta = threshold_bps * 1e-4
    ret = pl.col("_mid_h") / pl.col("_mid0") - 1.0
    label = (
        pl.when(ret.is_null())
        .then(None)
        .when(ret > theta)
        .then(pl.lit("up"))
        .when(ret < -theta)
        .then(pl.lit("down"))
        .otherwise(pl.lit("neutral"))
    )
    code = pl.col("label").replace_strict(CLASS_INDEX, default=None, return_dtype=pl.Int8)
    out = joined.with_columns(ret.alias("fwd_return"), label.alias("label"))
    out = out.with_columns(code.alias("label_code")).drop("_mid0", "_mid_h")
    if "book_valid" not in features.columns:
        out = out.drop("book_valid")
    return out


@dataclass(frozen=True)
class Resolved(Generic[P]):
    """A pending item whose horizon has passed.

    ``label`` and ``fwd_return`` are None when the mid at ``t`` or ``t+h`` was
    invalid or the grid had no row at ``t+h``.
    """

    ts: int
    label: Direction | None
    fwd_return: float | None
    payload: P


class LabelResolver(Generic[P]):
    """Streaming label resolution: add items at ``t``, feed later rows, get labels at ``t+h``.

    Feature rows must arrive in increasing ``ts`` order (one symbol). An item
    added at ``t`` resolves on the row at exactly ``t + h``; if a later row
    arrives first (a gap in the grid), it resolves with a null label, as
    :func:`label_frame` does.
    """

    def __init__(self, horizon_s: float = 10.0, threshold_bps: float = 1.0) -> None:
        self.horizon_ns = round(horizon_s * NS_PER_S)
        self.threshold_bps = threshold_bps
        self._pending: deque[tuple[int, float | None, P]] = deque()

    @property
    def pending(self) -> int:
        """Number of items still waiting for their horizon."""
        return len(self._pending)

    def add(self, ts: int, mid: float | None, payload: P) -> None:
        """Register an item at grid time ``ts`` with its (valid or None) mid."""
        self._pending.append((ts + self.horizon_ns, mid, payload))

    def on_row(self, ts: int, mid: float | None) -> list[Resolved[P]]:
        """Resolve every item whose target time is ``<= ts`` using this row's mid."""
        out: list[Resolved[P]] = []
        while self._pending and self._pending[0][0] <= ts:
            target, mid0, payload = self._pending.popleft()
            t0 = target - self.horizon_ns
            if target == ts and mid is not None and mid0 is not None:
                ret = mid / mid0 - 1.0
                out.append(Resolved(t0, classify_return(ret, self.threshold_bps), ret, payload))
            else:
                out.append(Resolved(t0, None, None, payload))
        return out
