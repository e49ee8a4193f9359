"""Direction labels: the rule, nulls, and streaming == batch."""

from __future__ import annotations

import polars as pl
import pytest

from microstream.evaluation.synthetic import synthetic_features
from microstream.models.labels import (
    NS_PER_S,
    LabelResolver,
    classify_return,
    label_frame,
)

S = NS_PER_S


def _frame(mids: list[float | None], valid: list[bool] | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [i * S for i in range(len(mids))],
            "mid": mids,
            "book_valid": valid if valid is not None else [True] * len(mids),
        },
        schema={"ts": pl.Int64, "mid": pl.Float64, "book_valid": pl.Boolean},
    )


def test_classify_return_uses_strict_threshold() -> None:
    assert classify_return(1.5e-4, 1.0) == "up"
    assert classify_return(-1.5e-4, 1.0) == "down"
    assert classify_return(0.5e-4, 1.0) == "neutral"
    assert classify_return(0.0, 0.0) == "neutral"
    assert classify_return(1e-9, 0.0) == "up"


def test_label_frame_up_down_neutral_and_null_tail() -> None:
    # horizon 2 s: returns +2, -2, -2, +2 bps, then no mid at t+h
    base = 10_000.0
    mids: list[float | None] = [base, base, base * 1.0002, base * 0.9998, base, base]
    out = label_frame(_frame(mids), horizon_s=2, threshold_bps=1.0)
    assert out["label"].to_list() == ["up", "down", "down", "up", None, None]
    assert out["label_code"].to_list() == [0, 2, 2, 0, None, None]
    assert out["fwd_return"][0] == pytest.approx(2e-4)


def test_label_is_null_when_either_mid_invalid_or_missing() -> None:
    mids: list[float | None] = [100.0, 100.0, None, 100.0, 101.0, 102.0]
    valid = [True, True, True, True, False, True]
    out = label_frame(_frame(mids, valid), horizon_s=2, threshold_bps=1.0)
    # t=0 -> t=2 (null mid); t=2 itself null; t=2->... ; t=3 -> t=5 valid
    assert out["label"].to_list() == [None, "neutral", None, "up", None, None]


def test_label_is_null_over_a_grid_gap() -> None:
    frame = _frame([100.0, 100.0, 101.0, 102.0]).filter(pl.col("ts") != 2 * S)
    out = label_frame(frame, horizon_s=2, threshold_bps=1.0)
    assert out["label"].to_list() == [None, "up", None]


def test_labels_are_matched_within_each_symbol() -> None:
    a = _frame([100.0, 100.0, 110.0]).with_columns(pl.lit("A").alias("symbol"))
    b = _frame([100.0, 100.0, 90.0]).with_columns(pl.lit("B").alias("symbol"))
    out = label_frame(pl.concat([a, b]), horizon_s=2, threshold_bps=1.0)
    assert out.filter(pl.col("symbol") == "A")["label"][0] == "up"
    assert out.filter(pl.col("symbol") == "B")["label"][0] == "down"


def test_streaming_resolver_matches_batch_labels() -> None:
    frame = synthetic_features(n=400, seed=3, invalid_share=0.05, gap_share=0.05)
    batch = label_frame(frame, horizon_s=10, threshold_bps=1.0)
    resolver: LabelResolver[int] = LabelResolver(horizon_s=10, threshold_bps=1.0)
    streamed: dict[int, str | None] = {}
    for row in frame.iter_rows(named=True):
        mid = row["mid"] if row["book_valid"] and row["mid"] is not None else None
        for done in resolver.on_row(row["ts"], mid):
            streamed[done.ts] = done.label
        resolver.add(row["ts"], mid, 0)
    expected = {
        ts: label for ts, label in zip(batch["ts"], batch["label"], strict=True) if ts in streamed
    }
    assert streamed == expected
    assert resolver.pending > 0
    assert sum(v is not None for v in streamed.values()) > 300
