"""Turn ``features`` rows into a labelled, time-ordered training/evaluation set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from microstream.errors import MicroStreamError
from microstream.models.forecast_features import FEATURE_NAMES, forecast_feature_frame
from microstream.models.labels import label_frame

KEYS = ("exchange", "symbol")


@dataclass(frozen=True)
class Dataset:
    """Rows with valid forecast inputs and a label, sorted by ``ts``.

    Attributes:
        x: ``(n, d)`` inputs in :data:`FEATURE_NAMES` order.
        y: class codes 0/1/2 (up, neutral, down).
        ts: grid times (ns).
        symbol: ``exchange:symbol`` of each row.
        fwd_return: the simple return to ``t + h``.
        frame: the same rows as a Polars frame (keys, ts, inputs, label).
    """

    x: np.ndarray
    y: np.ndarray
    ts: np.ndarray
    symbol: np.ndarray
    fwd_return: np.ndarray
    frame: pl.DataFrame

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: np.ndarray) -> Dataset:
        """The rows ``idx`` (in that order)."""
        return Dataset(
            self.x[idx],
            self.y[idx],
            self.ts[idx],
            self.symbol[idx],
            self.fwd_return[idx],
            self.frame.select(pl.all().gather(idx)),
        )


def _with_keys(features: pl.DataFrame) -> pl.DataFrame:
    frame = features
    for key, default in zip(KEYS, ("unknown", "UNKNOWN"), strict=True):
        if key not in frame.columns:
            frame = frame.with_columns(pl.lit(default).alias(key))
    return frame.unique(subset=[*KEYS, "ts"], keep="last").sort([*KEYS, "ts"])


def build_dataset(
    features: pl.DataFrame, horizon_s: float = 10.0, threshold_bps: float = 1.0
) -> Dataset:
    """Label ``features`` and compute the forecast inputs (each symbol separately).

    Raises:
        MicroStreamError: no row has both valid inputs and a label.
    """
    if features.is_empty() or "ts" not in features.columns or "mid" not in features.columns:
        raise MicroStreamError("features frame is empty or lacks ts/mid")
    frame = _with_keys(features)
    labels = label_frame(frame, horizon_s, threshold_bps, by=KEYS).select(
        *KEYS, "ts", "fwd_return", "label", "label_code"
    )
    inputs = forecast_feature_frame(frame, KEYS, horizon_s, threshold_bps)
    joined = inputs.join(labels, on=[*KEYS, "ts"], how="inner")
    joined = joined.filter(pl.col("fc_valid") & pl.col("label_code").is_not_null())
    joined = joined.sort(["ts", *KEYS])
    if joined.is_empty():
        raise MicroStreamError("no feature row has both valid inputs and a label")
    return Dataset(
        x=joined.select(FEATURE_NAMES).to_numpy().astype(np.float64),
        y=joined["label_code"].to_numpy().astype(np.int64),
        ts=joined["ts"].to_numpy().astype(np.int64),
        symbol=(joined["exchange"] + ":" + joined["symbol"]).to_numpy(),
        fwd_return=joined["fwd_return"].to_numpy().astype(np.float64),
        frame=joined,
    )
