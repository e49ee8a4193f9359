"""Forecast inputs: streaming == batch on every row, and no look-ahead."""

from __future__ import annotations

import numpy as np
import polars as pl

from microstream.evaluation.synthetic import synthetic_features
from microstream.models.forecast_features import (
    FEATURE_NAMES,
    ForecastFeatures,
    feature_matrix,
    forecast_feature_frame,
)


def _stream(frame: pl.DataFrame) -> list[np.ndarray | None]:
    engine = ForecastFeatures()
    return [engine.update(row) for row in frame.iter_rows(named=True)]


def test_streaming_equals_batch_on_every_row() -> None:
    frame = synthetic_features(n=700, seed=11, invalid_share=0.05, gap_share=0.03)
    # some optional inputs missing too
    frame = frame.with_columns(
        pl.when(pl.col("ts") % 7 == 0).then(None).otherwise(pl.col("ofi_10s")).alias("ofi_10s"),
        pl.when(pl.col("ts") % 11 == 0).then(None).otherwise(pl.col("vwap_1m")).alias("vwap_1m"),
    )
    batch = forecast_feature_frame(frame)
    assert batch.height == frame.height
    matrix = feature_matrix(batch)
    streamed = _stream(frame)
    valid = batch["fc_valid"].to_list()
    assert sum(valid) > 600
    for i, vec in enumerate(streamed):
        assert (vec is not None) == valid[i], i
        if vec is not None:
            np.testing.assert_allclose(vec, matrix[i], rtol=1e-9, atol=1e-9, err_msg=str(i))


def test_batch_handles_several_symbols_independently() -> None:
    a = synthetic_features(n=200, seed=1, symbol="AAA")
    b = synthetic_features(n=200, seed=2, symbol="BBB")
    both = forecast_feature_frame(pl.concat([a, b]))
    alone = forecast_feature_frame(b)
    got = both.filter(pl.col("symbol") == "BBB")
    np.testing.assert_allclose(feature_matrix(got), feature_matrix(alone))


def test_a_future_row_cannot_change_a_past_input() -> None:
    frame = synthetic_features(n=400, seed=5)
    before = feature_matrix(forecast_feature_frame(frame.head(300)))
    # change everything after row 300 wildly, then recompute on the full frame
    tail = frame.slice(300).with_columns(
        (pl.col("mid") * 1.5).alias("mid"),
        (pl.col("ofi_10s") * 1000).alias("ofi_10s"),
        (-pl.col("imbalance_l1")).alias("imbalance_l1"),
    )
    after = feature_matrix(forecast_feature_frame(pl.concat([frame.head(300), tail])))[:300]
    np.testing.assert_array_equal(np.isnan(before), np.isnan(after))
    np.testing.assert_allclose(before, after, equal_nan=True)


def test_invalid_row_gives_no_inputs_and_names_are_stable() -> None:
    engine = ForecastFeatures()
    assert engine.update({"ts": 0, "mid": None, "book_valid": False}) is None
    vec = engine.update(
        {"ts": 10**9, "mid": 100.0, "microprice": 100.01, "imbalance_l1": 0.5, "spread_bps": 1.0}
    )
    assert vec is not None
    assert vec.shape == (len(FEATURE_NAMES),)
    assert vec[0] == np.float64((100.01 - 100.0) / 100.0 * 1e4)
