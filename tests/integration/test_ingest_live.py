"""The ingest service on the live Binance client, against the loopback exchange."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from microstream.bus.codec import SnapshotRequest
from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Topics
from microstream.events import BookSnapshot
from microstream.services.ingest import IngestService
from microstream.services.sources import live
from microstream.sim.capture_feed import CaptureFeed
from microstream.sim.exchange import LoopbackExchange
from microstream.venues.binance.live import LiveFeedConfig
from waiting import until

pytestmark = pytest.mark.timeout(120)
EX = "binance-futures"


async def test_live_ingest_syncs_over_rest_and_answers_snapshot_requests(
    usdm_capture: list[Path],
) -> None:
    bus = MemoryBus()
    service = IngestService(bus, snapshot_every_s=0)
    published: dict[str, list[Any]] = {
        t: [] for t in (Topics.TRADES, Topics.DEPTH, Topics.SNAPSHOTS)
    }
    for topic, items in published.items():
        bus.subscribe(topic, lambda key, m, items=items: items.append(m))
    stop = threading.Event()
    source = CaptureFeed(usdm_capture, speed=20.0, max_frames=6000)
    async with LoopbackExchange(source) as exchange:
        task = asyncio.create_task(
            live(
                service,
                "usdm",
                ["BTCUSDT"],
                stop=stop,
                ws_url=exchange.ws_url,
                rest_url=exchange.rest_url,
                feed_config=LiveFeedConfig(ping_interval_s=0.5, backoff_base_s=0.05),
            )
        )
        # ingest's own book asks the source for a REST snapshot and gets in sync
        await until(lambda: service.keeper.is_synced(EX, "BTCUSDT"))
        assert len(published[Topics.SNAPSHOTS]) == 1  # the REST snapshot, published as is
        bus.publish(Topics.CONTROL, f"{EX}:BTCUSDT", SnapshotRequest(EX, "BTCUSDT", "test"))
        await until(lambda: service.stats.snapshots_answered == 1)
        stop.set()
        await task
    answer = published[Topics.SNAPSHOTS][1]
    assert isinstance(answer, BookSnapshot)
    depth_ids = [d.last_update_id for d in published[Topics.DEPTH]]
    assert answer.last_update_id in depth_ids  # it follows a published diff
    assert len(answer.bids) > 100 and answer.bids[0][0] < answer.asks[0][0]
    assert published[Topics.TRADES]
