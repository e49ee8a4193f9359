"""Features and bars of the real spot capture: streaming == batch == plain loops.

The capture (../shared/data/binance/spot/btcusdt_20240808.gz + _20240809.gz) is
replayed through the real parser, book and pipeline
(:class:`~microstream.engine.SymbolPipeline`, models off). The streaming rows it
emits are compared with the Polars batch twin run on the pipeline's own
``trades``/``book_top``/``book_sync`` rows, and with a straightforward
loop-by-loop recomputation written here from the formulas in
ARCHITECTURE.md / docs/features.md (sharing no code with the implementation).
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from microstream.bus.protocol import Row
from microstream.capture import read_captures
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.features.batch import compute_bars, compute_features
from microstream.features.schema import BAR_COLUMNS, FEATURE_COLUMNS
from microstream.venues.binance.parse import FrameDecoder

S = 1_000_000_000
DAY = 86_400 * S


class Replayed:
    def __init__(self, rows: list[Row], pipeline: SymbolPipeline) -> None:
        self.rows = rows
        self.pipeline = pipeline

    def values(self, table: str) -> list[dict[str, Any]]:
        return [r.values for r in self.rows if r.table == table]

    def frame(self, table: str) -> pl.DataFrame:
        return pl.DataFrame(self.values(table), infer_schema_length=None)


@pytest.fixture(scope="module")
def replayed(spot_capture: list[Path]) -> Replayed:
    decoder = FrameDecoder()
    rows: list[Row] = []
    pipes: dict[str, SymbolPipeline] = {}
    options = PipelineOptions(features=True, models=False)
    for frame in read_captures(spot_capture):
        for event in decoder.decode(frame):
            pipe = pipes.get(event.symbol)
            if pipe is None:
                pipe = pipes[event.symbol] = SymbolPipeline(
                    event.exchange, event.symbol, rows.append, options
                )
            pipe.on_event(event)
    assert list(pipes) == ["BTCUSDT"]
    pipes["BTCUSDT"].finish()
    return Replayed(rows, pipes["BTCUSDT"])


def close(a: Any, b: Any, abs_tol: float = 0.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=abs_tol)


def test_capture_replays_with_no_late_events(replayed: Replayed) -> None:
    engine: Any = replayed.pipeline.features
    assert engine.late_events == 0
    assert engine.rejected == 0
    assert len(replayed.values("trades")) == 19_904
    assert len(replayed.values("book_top")) == 6_493
    features = replayed.values("features")
    assert len(features) == 650  # 23:54:16 … 00:05:05, one row per second
    assert all(f["book_valid"] for f in features)
    assert all(f["spread"] >= 0.01 - 1e-9 for f in features)
    assert len(replayed.values("bars_1m")) == 12


def test_capture_streaming_equals_batch(replayed: Replayed) -> None:
    batch = compute_features(
        replayed.frame("trades"),
        replayed.frame("book_top"),
        1000,
        book_sync=replayed.frame("book_sync"),
    )
    stream = replayed.values("features")
    assert batch["ts"].to_list() == [f["ts"] for f in stream]
    for s_row, b_row in zip(stream, batch.iter_rows(named=True), strict=True):
        for col in FEATURE_COLUMNS:
            assert close(s_row[col], b_row[col]), (col, s_row["ts"], s_row[col], b_row[col])
    bars = compute_bars(replayed.frame("trades"))
    s_bars = replayed.values("bars_1m")
    assert bars["ts"].to_list() == [b["ts"] for b in s_bars]
    for s_bar, b_bar in zip(s_bars, bars.iter_rows(named=True), strict=True):
        for col in BAR_COLUMNS:
            assert close(s_bar[col], b_bar[col]), (col, s_bar["ts"])


# ------------------------------------------------- the independent reference
def ref_book(book: dict[str, Any]) -> dict[str, Any]:
    b, a = book["bid_px_1"], book["ask_px_1"]
    qb, qa = book["bid_qty_1"], book["ask_qty_1"]
    mid = (b + a) / 2
    bids = [(book[f"bid_px_{i}"], book[f"bid_qty_{i}"]) for i in range(1, 6)]
    asks = [(book[f"ask_px_{i}"], book[f"ask_qty_{i}"]) for i in range(1, 6)]
    sum_b = sum(q for _, q in bids)
    sum_a = sum(q for _, q in asks)
    return {
        "mid": mid,
        "spread": a - b,
        "spread_bps": (a - b) / mid * 1e4,
        "microprice": (b * qa + a * qb) / (qb + qa),
        "imbalance_l1": (qb - qa) / (qb + qa),
        "imbalance_l5": (sum_b - sum_a) / (sum_b + sum_a),
        "depth_bid_10bps": sum(q for p, q in bids if p >= mid * (1 - 0.001)),
        "depth_ask_10bps": sum(q for p, q in asks if p <= mid * (1 + 0.001)),
    }


def ref_ofi(prev: dict[str, Any], cur: dict[str, Any], level: int) -> float:
    b, qb = cur[f"bid_px_{level}"], cur[f"bid_qty_{level}"]
    a, qa = cur[f"ask_px_{level}"], cur[f"ask_qty_{level}"]
    b0, qb0 = prev[f"bid_px_{level}"], prev[f"bid_qty_{level}"]
    a0, qa0 = prev[f"ask_px_{level}"], prev[f"ask_qty_{level}"]
    e = 0.0
    if b >= b0:
        e += qb
    if b <= b0:
        e -= qb0
    if a <= a0:
        e -= qa
    if a >= a0:
        e += qa0
    return e


def reference_features(
    trades: list[dict[str, Any]], books: list[dict[str, Any]], every: int
) -> list[dict[str, Any]]:
    """Feature rows recomputed with plain loops; window columns on every ``every``-th row."""
    trades = sorted(trades, key=lambda r: r["ts_event"])
    books = sorted(books, key=lambda r: r["ts_event"])
    t_ts = [r["ts_event"] for r in trades]
    b_ts = [r["ts_event"] for r in books]
    first = min(t_ts[0], b_ts[0])
    last = max(t_ts[-1], b_ts[-1])
    # OFI contribution of each depth event (the capture has one sync epoch, no gaps)
    ofi1 = [0.0] + [ref_ofi(books[i - 1], books[i], 1) for i in range(1, len(books))]
    ofi5 = [0.0] + [
        sum(ref_ofi(books[i - 1], books[i], lv) for lv in range(1, 6)) for i in range(1, len(books))
    ]

    def book_at(t: int) -> dict[str, Any] | None:
        i = bisect.bisect_right(b_ts, t) - 1
        return books[i] if i >= 0 else None

    def mid_at(t: int) -> float | None:
        bk = book_at(t)
        return None if bk is None else (bk["bid_px_1"] + bk["ask_px_1"]) / 2

    seconds = list(range(-(-first // S) * S, last + 1, S))
    mids = {s: mid_at(s) for s in seconds}
    returns = {
        s: math.log(mids[s] / mids[s - S])
        for s in seconds
        if s - S in mids and mids[s] is not None and mids[s - S] is not None
    }

    def in_window(ts: list[int], lo: int, hi: int) -> range:
        return range(bisect.bisect_right(ts, lo), bisect.bisect_right(ts, hi))

    out = []
    for n, t in enumerate(seconds):
        row: dict[str, Any] = {"ts": t}
        bk = book_at(t)
        row.update(ref_book(bk) if bk else dict.fromkeys(ref_book(books[0])))
        row["book_valid"] = bk is not None
        out.append(row)
        if n % every:
            continue  # window features on a subset of rows keep the test fast
        for name, width in (("1m", 60 * S), ("5m", 300 * S)):
            idx = in_window(t_ts, t - width, t)
            vol = math.fsum(trades[i]["qty"] for i in idx)
            notional = math.fsum(trades[i]["price"] * trades[i]["qty"] for i in idx)
            row[f"vwap_{name}"] = notional / vol if len(idx) else None
            r2 = [returns[s] ** 2 for s in seconds if t - width < s <= t and s in returns]
            row[f"volatility_{name}"] = math.sqrt(math.fsum(r2)) if r2 else None
        idx = in_window(t_ts, t - 60 * S, t)
        buy = math.fsum(trades[i]["qty"] for i in idx if trades[i]["side"] == "buy")
        sell = math.fsum(trades[i]["qty"] for i in idx if trades[i]["side"] == "sell")
        row["buy_volume_1m"], row["sell_volume_1m"] = buy, sell
        row["flow_imbalance_1m"] = (buy - sell) / (buy + sell) if len(idx) else None
        row["trade_count_1m"] = len(idx)
        row["trade_intensity_10s"] = len(in_window(t_ts, t - 10 * S, t)) / 10
        day = (t - 1) // DAY * DAY
        idx = in_window(t_ts, day, t)
        vol = math.fsum(trades[i]["qty"] for i in idx)
        row["vwap_session"] = (
            math.fsum(trades[i]["price"] * trades[i]["qty"] for i in idx) / vol
            if len(idx)
            else None
        )
        ev = in_window(b_ts, t - 10 * S, t)
        row["ofi_10s"] = math.fsum(ofi1[i] for i in ev)
        row["ofi_l5_10s"] = math.fsum(ofi5[i] for i in ev)
        row["_ofi_scale"] = math.fsum(abs(ofi5[i]) + abs(ofi1[i]) for i in ev)
        row["log_return_1s"] = returns.get(t)
    return out


def test_capture_matches_independent_loops(replayed: Replayed) -> None:
    ref = reference_features(replayed.values("trades"), replayed.values("book_top"), every=3)
    stream = replayed.values("features")
    assert [r["ts"] for r in ref] == [r["ts"] for r in stream]
    checked = 0
    for r_row, s_row in zip(ref, stream, strict=True):
        for col in FEATURE_COLUMNS:
            if col not in r_row:
                continue
            checked += 1
            # sums of signed terms: tolerance relative to the terms' magnitude
            tol = 1e-9 * r_row["_ofi_scale"] if col.startswith("ofi") else 1e-12
            assert close(s_row[col], r_row[col], abs_tol=tol), (col, r_row["ts"])
    assert checked > 650 * 9 + 217 * 14


def test_capture_bars_match_independent_loops(replayed: Replayed) -> None:
    by_minute: dict[int, list[dict[str, Any]]] = {}
    for tr in sorted(replayed.values("trades"), key=lambda r: r["ts_event"]):
        by_minute.setdefault(tr["ts_event"] // (60 * S) * 60 * S, []).append(tr)
    bars = replayed.values("bars_1m")
    assert [b["ts"] for b in bars] == sorted(by_minute)
    for bar in bars:
        trs = by_minute[bar["ts"]]
        vol = math.fsum(t["qty"] for t in trs)
        expected = {
            "open": trs[0]["price"],
            "high": max(t["price"] for t in trs),
            "low": min(t["price"] for t in trs),
            "close": trs[-1]["price"],
            "volume": vol,
            "buy_volume": math.fsum(t["qty"] for t in trs if t["side"] == "buy"),
            "sell_volume": math.fsum(t["qty"] for t in trs if t["side"] == "sell"),
            "vwap": math.fsum(t["price"] * t["qty"] for t in trs) / vol,
            "trades": len(trs),
        }
        for col, value in expected.items():
            assert close(bar[col], value), (col, bar["ts"])
