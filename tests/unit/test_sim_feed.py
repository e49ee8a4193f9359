"""SimFeed: determinism, ground truth, snapshot consistency, the async and raw APIs."""

from __future__ import annotations

import asyncio
from typing import Any

from microstream.bus.protocol import Row
from microstream.sim.feed import MarketFeed
from microstream.sim.regimes import REGIMES
from microstream.sim.sim_feed import SimFeed
from microstream.venues.binance.parse import parse_frame

START = 1_700_000_000_000


def _run(seed: int, seconds: float = 8) -> tuple[list[tuple[str, dict[str, Any]]], list[Row]]:
    rows: list[Row] = []
    feed = SimFeed(
        ["BTCUSDT", "ETHUSDT"], seed=seed, start_ms=START, speed=None, on_truth=rows.append
    )
    return list(feed.generate(seconds)), rows


def test_same_seed_identical_frames_and_truth_different_seed_differs() -> None:
    frames_a, truth_a = _run(21)
    frames_b, truth_b = _run(21)
    frames_c, truth_c = _run(22)
    assert frames_a == frames_b
    assert truth_a == truth_b
    assert frames_a != frames_c
    assert {s.split("@")[0] for s, _ in frames_a} == {"btcusdt", "ethusdt"}
    del truth_c


def test_truth_rows_on_a_one_second_grid() -> None:
    rows: list[Row] = []
    feed = SimFeed(seed=4, start_ms=START, speed=None, on_truth=rows.append)
    list(feed.generate(5))
    assert [r.values["ts"] for r in rows] == [(START + 1000 * k) * 1_000_000 for k in range(1, 6)]
    for row in rows:
        assert row.table == "sim_truth" and row.exchange == "binance" and row.symbol == "BTCUSDT"
        assert row.values["regime"] in REGIMES
        assert feed.truth_at(row.values["ts"]) == row.values["regime"]
    assert feed.truth_at((START - 60_000) * 1_000_000) is None


def test_frames_are_in_time_order_and_exchange_time_is_simulated() -> None:
    frames, _ = _run(5, seconds=3)
    times = [d.get("T", d.get("E")) for _, d in frames if "E" in d]
    assert times == sorted(times)
    assert times[0] >= START and times[-1] <= START + 3_000


def test_snapshot_taken_mid_stream_syncs_with_later_diffs() -> None:
    feed = SimFeed(seed=8, start_ms=START, speed=None)
    assert isinstance(feed, MarketFeed)
    stream = feed.iter_frames()
    last_u = 0
    for stream_name, data in stream:
        if stream_name == "btcusdt@depth@100ms":
            last_u = data["u"]
            if data["E"] >= START + 1500:
                break
    snap = feed.snapshot("btcusdt", 1000)
    assert snap["lastUpdateId"] == last_u
    nxt = next(d for s, d in stream if s == "btcusdt@depth@100ms")
    assert nxt["U"] == snap["lastUpdateId"] + 1
    assert float(snap["bids"][0][0]) < float(snap["asks"][0][0])
    assert len(snap["bids"]) <= 1000


def test_async_frames_unpaced_and_paced() -> None:
    async def take(speed: float | None, n: int) -> list[tuple[str, dict[str, Any]]]:
        feed = SimFeed(seed=2, start_ms=START, speed=speed, streams=("trade", "depth@100ms"))
        out = []
        async for frame in feed.frames():
            out.append(frame)
            if len(out) == n:
                break
        return out

    fast = asyncio.run(asyncio.wait_for(take(None, 200), 60))
    paced = asyncio.run(asyncio.wait_for(take(50.0, 60), 60))
    assert fast[:60] == paced
    assert {s for s, _ in fast} == {"btcusdt@trade", "btcusdt@depth@100ms"}


def test_raw_frames_start_with_a_snapshot_and_parse() -> None:
    feed = SimFeed(seed=2, start_ms=START, speed=None)
    raws = list(feed.iter_raw_frames(2))
    assert raws[0].symbol == "BTCUSDT" and raws[0].payload.startswith(b'{"lastUpdateId"')
    events = [e for raw in raws for e in parse_frame(raw)]
    assert type(events[0]).__name__ == "BookSnapshot"
    assert len(events) == len(raws)
    assert all(raw.ts_recv >= raws[0].ts_recv for raw in raws)


def test_unknown_symbol_snapshot_is_a_key_error() -> None:
    feed = SimFeed(seed=2, start_ms=START)
    try:
        feed.snapshot("DOGEUSDT", 5)
    except KeyError:
        pass
    else:
        raise AssertionError("expected KeyError")


def test_unaligned_start_still_gives_whole_second_truth_and_slow_diffs() -> None:
    rows: list[Row] = []
    feed = SimFeed(seed=4, start_ms=START + 250, speed=None, on_truth=rows.append)
    frames = list(feed.generate(3))
    assert feed.start_ms == START + 200
    assert [r.values["ts"] % 1_000_000_000 for r in rows] == [0, 0, 0]
    assert sum(1 for s, _ in frames if s == "btcusdt@depth") == 3


def test_stream_selection_is_honoured_and_snapshots_still_follow_the_book() -> None:
    feed = SimFeed(seed=6, start_ms=START, speed=None, streams=("trade",))
    frames = list(feed.generate(3))
    assert {s for s, _ in frames} == {"btcusdt@trade"}
    snap = feed.snapshot("BTCUSDT", 5)
    assert snap["lastUpdateId"] == feed._sims["BTCUSDT"].market.update_id
