"""Streaming features and bars == their Polars batch twins, on random event streams."""

from __future__ import annotations

import itertools
import math
from typing import Any

import msgspec
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microstream.bus.protocol import Row
from microstream.events import BookTop, SyncStateChange, Trade
from microstream.features.batch import LEVEL_COLUMNS, compute_bars, compute_features
from microstream.features.schema import BAR_COLUMNS, FEATURE_COLUMNS
from microstream.features.streaming import FeatureEngine

BASE_NS = 1_723_161_230_000_000_000  # 2024-08-08 23:53:50 UTC: streams may cross midnight
EX, SYM = "binance", "BTCUSDT"

maybe_px = st.one_of(st.none(), st.sampled_from([99.0, 99.5, 100.0, 100.25]))
qty = st.floats(min_value=0.001, max_value=5.0, allow_nan=False)
maybe_qty = st.one_of(st.none(), qty)


@st.composite
def book_sides(draw: st.DrawFn) -> tuple[tuple[Any, ...], ...]:
    depth_b = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5, 5]))
    depth_a = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 5, 5]))
    bid_px = tuple(100.0 - 0.5 * i - draw(st.sampled_from([0.0, 0.25])) for i in range(depth_b))
    ask_px = tuple(100.5 + 0.5 * i + draw(st.sampled_from([0.0, 0.25])) for i in range(depth_a))
    bid_q = tuple(draw(maybe_qty) if i else draw(qty) for i in range(depth_b))
    ask_q = tuple(draw(maybe_qty) if i else draw(qty) for i in range(depth_a))
    pad = (None,) * 5
    return (
        (bid_px + pad)[:5],
        (bid_q + pad)[:5],
        (ask_px + pad)[:5],
        (ask_q + pad)[:5],
    )


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Any], int, int]:
    lateness_ms = draw(st.sampled_from([0, 250]))
    grid_ms = draw(st.sampled_from([1000, 1000, 500, 1500, 200]))
    n = draw(st.integers(1, 150))
    clock = BASE_NS + draw(st.integers(0, 2_000_000_000))
    epoch = 0
    events: list[Any] = []
    for i in range(n):
        gap = draw(st.integers(0, 39))
        if gap == 0:
            clock += draw(st.integers(50_000_000_000, 130_000_000_000))  # a quiet minute or two
        elif gap < 8:
            clock += draw(st.integers(0, 4_000_000_000))
        elif gap < 12:
            pass  # equal exchange times
        else:
            clock += draw(st.integers(0, 400_000_000))
        jitter = draw(st.integers(0, lateness_ms * 1_000_000)) if draw(st.booleans()) else 0
        ts = clock - jitter
        kind = draw(st.sampled_from(["trade"] * 6 + ["book"] * 8 + ["sync"]))
        if kind == "trade":
            price = draw(
                st.sampled_from([99.5, 100.0, 100.25, 100.5, 100.5, 99.75, float("nan"), 0.0])
            )
            events.append(
                Trade(EX, SYM, ts, i, i, price, draw(qty), draw(st.sampled_from(["buy", "sell"])))
            )
        elif kind == "book":
            epoch += draw(st.integers(0, 9)) == 0
            bp, bq, ap, aq = draw(book_sides())
            valid = draw(st.integers(0, 9)) > 0
            events.append(BookTop(EX, SYM, ts, i, i, bp, bq, ap, aq, valid, epoch))
        else:
            state = draw(st.sampled_from(["gap", "synced", "resync", "buffering"]))
            events.append(SyncStateChange(EX, SYM, i, state, "test"))
    return events, grid_ms, lateness_ms


def run_streaming(
    events: list[Any], grid_ms: int, lateness_ms: int, max_gap_s: int = 86_400
) -> tuple[list[Row], FeatureEngine]:
    rows: list[Row] = []
    engine = FeatureEngine(
        EX, SYM, rows.append, grid_ms=grid_ms, lateness_ms=lateness_ms, max_gap_s=max_gap_s
    )
    for ev in events:
        if isinstance(ev, Trade):
            engine.on_trade(ev)
        elif isinstance(ev, BookTop):
            engine.on_book_top(ev)
        else:
            engine.on_sync(ev)
    engine.finish()
    return rows, engine


def to_frames(events: list[Any]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    trades = [
        {
            "ts_event": e.ts_event,
            "ts_recv": e.ts_recv,
            "price": e.price,
            "qty": e.qty,
            "side": e.side,
        }
        for e in events
        if isinstance(e, Trade)
    ]
    books = []
    for e in events:
        if isinstance(e, BookTop):
            row: dict[str, Any] = {"ts_event": e.ts_event, "ts_recv": e.ts_recv}
            for side, px, qt in (("bid", e.bid_px, e.bid_qty), ("ask", e.ask_px, e.ask_qty)):
                for i in range(5):
                    row[f"{side}_px_{i + 1}"] = px[i]
                    row[f"{side}_qty_{i + 1}"] = qt[i]
            row["book_valid"] = e.book_valid
            row["sync_epoch"] = e.sync_epoch
            books.append(row)
    syncs = [
        {"ts_recv": e.ts_recv, "state": e.state} for e in events if isinstance(e, SyncStateChange)
    ]
    tschema = {
        "ts_event": pl.Int64,
        "ts_recv": pl.Int64,
        "price": pl.Float64,
        "qty": pl.Float64,
        "side": pl.String,
    }
    bschema = (
        {"ts_event": pl.Int64, "ts_recv": pl.Int64}
        | dict.fromkeys(LEVEL_COLUMNS, pl.Float64)
        | {"book_valid": pl.Boolean, "sync_epoch": pl.Int64}
    )
    return (
        pl.DataFrame(trades, schema=tschema),
        pl.DataFrame(books, schema=bschema),
        pl.DataFrame(syncs, schema={"ts_recv": pl.Int64, "state": pl.String}),
    )


def assert_same(name: str, a: Any, b: Any) -> None:
    if a is None or b is None:
        assert a is None and b is None, f"{name}: {a!r} != {b!r}"
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0), f"{name}: {a!r} != {b!r}"
    else:
        assert a == b, f"{name}: {a!r} != {b!r}"


def assert_rows_equal(
    stream: list[dict[str, Any]], batch: pl.DataFrame, columns: tuple[str, ...]
) -> None:
    assert batch.columns == list(columns)
    assert [r["ts"] for r in stream] == batch["ts"].to_list()
    for s_row, b_row in zip(stream, batch.iter_rows(named=True), strict=True):
        assert list(s_row) == list(columns)
        for col in columns:
            assert_same(f"{col} at {s_row['ts']}", s_row[col], b_row[col])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([86_400, 100]))
def test_streaming_equals_batch(case: tuple[list[Any], int, int], max_gap_s: int) -> None:
    """Equal on every column; ``max_gap_s=100`` makes the quiet minutes split segments."""
    events, grid_ms, lateness_ms = case
    rows, engine = run_streaming(events, grid_ms, lateness_ms, max_gap_s)
    assert engine.late_events == 0
    trades, books, syncs = to_frames(events)
    features = [r.values for r in rows if r.table == "features"]
    bars = [r.values for r in rows if r.table == "bars_1m"]
    assert_rows_equal(
        features,
        compute_features(trades, books, grid_ms, book_sync=syncs, max_gap_s=max_gap_s),
        FEATURE_COLUMNS,
    )
    assert_rows_equal(bars, compute_bars(trades), BAR_COLUMNS)


@st.composite
def disordered(draw: st.DrawFn) -> tuple[list[Any], int, int]:
    """Streams whose events arrive up to 2 s late: more than any lateness allowance."""
    events, grid_ms, lateness_ms = draw(streams())
    out = []
    for ev in events:
        if isinstance(ev, SyncStateChange) or draw(st.integers(0, 4)) != 0:
            out.append(ev)
            continue
        shift = draw(st.integers(0, 2_000_000_000))
        out.append(msgspec.structs.replace(ev, ts_event=ev.ts_event - shift))
    return out, grid_ms, lateness_ms


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(disordered())
def test_late_events_never_break_the_invariants(case: tuple[list[Any], int, int]) -> None:
    events, grid_ms, lateness_ms = case
    rows, engine = run_streaming(events, grid_ms, lateness_ms)
    ts = [r.values["ts"] for r in rows if r.table == "features"]
    assert ts == sorted(set(ts))
    assert all(b - a == grid_ms * 1_000_000 for a, b in itertools.pairwise(ts))
    book_cols = ("mid", "spread", "spread_bps", "microprice", "imbalance_l1", "ofi_10s")
    for row in rows:
        for value in row.values.values():
            assert not (isinstance(value, float) and math.isnan(value))
        if row.table == "features" and not row.values["book_valid"]:
            assert all(row.values[c] is None for c in book_cols)
    bars = [r.values for r in rows if r.table == "bars_1m"]
    assert [b["ts"] for b in bars] == sorted({b["ts"] for b in bars})
    assert sum(b["trades"] for b in bars) + engine.bars.late_trades == sum(
        1 for e in events if isinstance(e, Trade) and e.price > 0 and math.isfinite(e.price)
    )
