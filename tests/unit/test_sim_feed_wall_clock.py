"""A wall-clock simulated feed at real speed publishes frames at their exchange time."""

from __future__ import annotations

import asyncio
import time

from microstream.sim.sim_feed import SimFeed


def test_real_time_frames_are_not_received_before_their_exchange_time() -> None:
    """``E`` follows the wall clock: never ahead of it, and not seconds behind it."""

    async def take(n: int) -> list[tuple[int, int]]:
        feed = SimFeed(seed=3, speed=1.0, streams=("trade", "depth@100ms"))
        out: list[tuple[int, int]] = []  # (E, wall ms at receipt)
        async for _, data in feed.frames():
            out.append((int(data["E"]), time.time_ns() // 1_000_000))
            if len(out) == n:
                break
        return out

    frames = asyncio.run(asyncio.wait_for(take(300), 60))
    assert all(recv >= e for e, recv in frames)
    # the warm-up backlog goes out at once; then frames are on time, not a
    # warm-up (0.5-2 s) late as when pacing was anchored on the first frame
    lags = sorted(recv - e for e, recv in frames[-50:])
    assert lags[len(lags) // 2] < 400, lags
