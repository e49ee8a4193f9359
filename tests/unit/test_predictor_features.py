"""Forecast inputs: streaming == batch on every row, and no look-ahead."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from microstream.evaluation.synthetic import synthetic_features
from microstream.models.forecast_features import (
    FEATURE_NAMES,
    RESOLVED_DEFAULT_MOVE_BPS,
    RESOLVED_PSEUDO,
    RESOLVED_WINDOW,
    ForecastFeatures,
    feature_matrix,
    forecast_feature_frame,
)
from microstream.models.labels import label_frame


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


def _flat_frame(mids: list[float]) -> pl.DataFrame:
    n = len(mids)
    return pl.DataFrame(
        {
            "ts": [i * 1_000_000_000 for i in range(n)],
            "mid": mids,
            "microprice": mids,
            "imbalance_l1": [0.0] * n,
            "spread_bps": [1.0] * n,
            "book_valid": [True] * n,
        }
    )


def test_resolved_label_inputs_count_only_labels_resolved_at_t() -> None:
    # the mid jumps +5 bp at t = 12 s: the label of row 2 (resolved at 12 s with h = 10 s) is
    # "up"; the label of row 12 itself is not known before 22 s
    mids = [100.0] * 12 + [100.05] * 20
    batch = forecast_feature_frame(_flat_frame(mids))
    up = batch["recent_up_logshare"].to_list()
    neutral = batch["recent_neutral_logshare"].to_list()
    a = RESOLVED_PSEUDO
    # nothing resolved before t = 10 s: ln(1/3) for every class
    assert up[9] == pytest.approx(math.log(1 / 3)) and neutral[9] == pytest.approx(math.log(1 / 3))
    # t = 11 s: rows 0 and 1 resolved, both neutral
    assert neutral[11] == pytest.approx(math.log((2 + a / 3) / (2 + a)))
    assert up[11] == pytest.approx(math.log((a / 3) / (2 + a)))
    # t = 12 s: rows 0, 1 neutral, row 2 up (12..21 up too: the move is seen from 12 s on)
    assert up[12] == pytest.approx(math.log((1 + a / 3) / (3 + a)))
    assert neutral[12] == pytest.approx(math.log((2 + a / 3) / (3 + a)))
    move = batch["recent_move_bps"].to_list()
    jump = math.log(100.05 / 100.0) * 1e4
    prior = a * RESOLVED_DEFAULT_MOVE_BPS**2
    assert move[12] == pytest.approx(math.sqrt((jump**2 + prior) / (3 + a)))
    streamed = _stream(_flat_frame(mids))
    np.testing.assert_allclose(np.vstack(streamed), feature_matrix(batch), rtol=1e-12)


def test_resolved_label_counts_agree_with_label_frame() -> None:
    frame = synthetic_features(n=500, seed=3, invalid_share=0.05, gap_share=0.05)
    horizon, theta = 5.0, 0.5
    labels = label_frame(frame, horizon, theta).sort("ts")
    code_at = dict(zip(labels["ts"].to_list(), labels["label_code"].to_list(), strict=True))
    batch = forecast_feature_frame(frame, horizon_s=horizon, threshold_bps=theta)
    ts = batch["ts"].to_list()
    # the label resolved at row j is the label of the row at ts_j - h
    resolved = [code_at.get(t - int(horizon * 1e9)) for t in ts]
    for i in range(0, len(ts), 37):
        window = [c for c in resolved[max(0, i - RESOLVED_WINDOW + 1) : i + 1] if c is not None]
        n = len(window)
        expected = [
            math.log((window.count(k) + RESOLVED_PSEUDO / 3) / (n + RESOLVED_PSEUDO))
            for k in range(3)
        ]
        if not batch["fc_valid"][i]:
            continue
        got = [batch[f"recent_{k}_logshare"][i] for k in ("up", "neutral", "down")]
        np.testing.assert_allclose(got, expected, rtol=1e-12, err_msg=str(i))
    engine = ForecastFeatures(horizon, theta)
    streamed = [engine.update(row) for row in frame.iter_rows(named=True)]
    matrix = feature_matrix(batch)
    for i, vec in enumerate(streamed):
        if vec is not None:
            np.testing.assert_allclose(vec, matrix[i], rtol=1e-9, atol=1e-9, err_msg=str(i))


def test_a_future_mid_cannot_change_past_resolved_label_inputs() -> None:
    frame = synthetic_features(n=400, seed=9)
    cols = ["recent_up_logshare", "recent_neutral_logshare", "recent_down_logshare"]
    before = forecast_feature_frame(frame).select(cols).to_numpy()[:250]
    # move every mid after row 250 far up: the labels of rows 241..249 change, but they
    # only resolve at rows >= 251
    tail = frame.slice(250).with_columns((pl.col("mid") * 1.01).alias("mid"))
    after = forecast_feature_frame(pl.concat([frame.head(250), tail])).select(cols).to_numpy()
    np.testing.assert_array_equal(before, after[:250])
    assert not np.allclose(forecast_feature_frame(frame).select(cols).to_numpy()[260:], after[260:])
