"""The live client's reconnect backoff: exponential ceiling, capped, full jitter."""

from __future__ import annotations

import asyncio
import random

import pytest

from microstream.venues.binance import live
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig

pytestmark = pytest.mark.timeout(30)

DEAD = "127.0.0.1:9"  # nothing listens: every connect fails at once


def make_feed(base: float, cap: float) -> BinanceLiveFeed:
    return BinanceLiveFeed(
        "spot",
        ["BTCUSDT"],
        lambda frame: None,
        ws_url=f"ws://{DEAD}",
        rest_url=f"http://{DEAD}",
        config=LiveFeedConfig(backoff_base_s=base, backoff_cap_s=cap),
    )


def test_ceiling_doubles_per_attempt_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[float, float]] = []

    class Upper:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            drawn.append((low, high))
            return high

    monkeypatch.setattr(live, "random", Upper)
    feed = make_feed(base=0.5, cap=30.0)
    delays = [feed._backoff(attempt) for attempt in range(9)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert all(low == 0.0 for low, _ in drawn)  # full jitter: anywhere from 0 to the ceiling


def test_delays_are_spread_over_the_whole_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "random", random.Random(7))
    feed = make_feed(base=0.5, cap=30.0)
    delays = [feed._backoff(3) for _ in range(400)]  # ceiling 4 s
    assert all(0.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) == len(delays)  # no two clients retry in lockstep
    assert min(delays) < 0.4 and max(delays) > 3.6
    assert 1.6 < sum(delays) / len(delays) < 2.4


async def test_failed_connects_retry_with_a_growing_attempt_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    delays: list[float] = []
    original = BinanceLiveFeed._backoff

    def recording(self: BinanceLiveFeed, attempt: int) -> float:
        attempts.append(attempt)
        delays.append(original(self, attempt))
        return delays[-1]

    monkeypatch.setattr(BinanceLiveFeed, "_backoff", recording)
    async with make_feed(base=0.01, cap=0.08) as feed:
        await asyncio.sleep(1.0)
        assert feed.stats.state == "connecting" and feed.stats.reconnects == 0
    assert len(attempts) >= 5
    assert attempts == list(range(len(attempts)))  # the counter grows while connects fail
    assert all(0.0 <= d <= min(0.08, 0.01 * 2**a) for a, d in zip(attempts, delays, strict=True))
