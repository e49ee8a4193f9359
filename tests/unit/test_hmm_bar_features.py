"""Bar features: the streaming version equals the batch version on every prefix."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from microstream.models.bar_features import (
    FEATURE_NAMES,
    BarFeatureStream,
    bar_features_batch,
    feature_matrix,
)

NS_MIN = 60_000_000_000


def make_bars(n: int, seed: int = 1) -> pl.DataFrame:
    """A random walk of 1-minute bars with bursts of volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0008, n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 5.0, n) * (1 + 5 * (rng.random(n) < 0.05))
    return pl.DataFrame(
        {
            "ts": np.arange(n, dtype=np.int64) * NS_MIN,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def test_stream_equals_batch_on_every_prefix() -> None:
    bars = make_bars(90)
    batch = bar_features_batch(bars, window=20)
    stream = BarFeatureStream(window=20)
    for i, row in enumerate(bars.iter_rows(named=True)):
        got = stream.update(row)
        expected = [batch[name][i] for name in FEATURE_NAMES]
        if got is None:
            assert all(v is None for v in expected), i
        else:
            assert expected == pytest.approx(list(got), rel=1e-9, abs=1e-9), i
        # the batch over the prefix gives the same last row (no look-ahead in batch)
        if i % 15 == 0:
            prefix = bar_features_batch(bars.head(i + 1), window=20)
            assert prefix.row(i) == batch.row(i)


def test_warmup_is_two_windows_minus_one() -> None:
    bars = make_bars(60)
    stream = BarFeatureStream(window=20)
    outputs = [stream.update(r) for r in bars.iter_rows(named=True)]
    first = next(i for i, v in enumerate(outputs) if v is not None)
    assert first == stream.warmup_bars - 1 == 38
    assert feature_matrix(bar_features_batch(bars)).shape == (60 - 38, 3)


def test_raw_feature_definitions() -> None:
    # window 2: the z-score of the last of two values is sign(x_t - x_{t-1}) / sqrt(2)
    bars = make_bars(40)
    batch = bar_features_batch(bars, window=2)
    closes = bars["close"].to_list()
    for i in range(3, 40):
        up = math.log(closes[i] / closes[i - 1]) > math.log(closes[i - 1] / closes[i - 2])
        assert (batch["momentum"][i] > 0) == up


def test_invalid_bars_are_counted_and_skipped() -> None:
    stream = BarFeatureStream(window=3)
    good = {"ts": 0, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 5.0}
    assert stream.update({**good, "close": float("nan")}) is None
    assert stream.update({**good, "high": 0.5}) is None
    assert stream.update({"ts": 1}) is None
    assert stream.update({**good, "open": None}) is None
    assert stream.bars_rejected == 4
    assert stream.bars_seen == 0


def test_constant_window_gives_zero_z() -> None:
    stream = BarFeatureStream(window=3)
    bar = {"ts": 0, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 5.0}
    out = [stream.update(bar) for _ in range(10)]
    assert out[-1] == (0.0, 0.0, 0.0)
