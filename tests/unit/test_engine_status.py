"""The distributed services' ``status`` rules (ok / degraded / down), without a broker."""

from __future__ import annotations

from typing import Any

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Row
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import Trade
from microstream.frames import RawFrame
from microstream.services.ingest import IngestService
from microstream.services.status import FEED_QUIET_S, engine_status, ingest_status

BTC, ETH = "binance:BTCUSDT", "binance:ETHUSDT"


def status(**overrides: Any) -> tuple[str, list[str]]:
    args: dict[str, Any] = {
        "assigned": True,
        "books_synced": {BTC: True, ETH: True},
        "broker_down_s": None,
        "error_streak_s": None,
        "down_after_s": 30.0,
    }
    args.update(overrides)
    return engine_status(**args)


def test_assigned_reachable_and_synced_is_ok() -> None:
    assert status() == ("ok", [])
    assert status(books_synced={}) == ("ok", [])  # partitions without symbols: nothing wrong


def test_a_resyncing_book_or_no_assignment_is_degraded() -> None:
    state, reasons = status(books_synced={BTC: True, ETH: False})
    assert state == "degraded" and reasons == [f"book not synced: {ETH}"]
    state, reasons = status(assigned=False, books_synced={})
    assert state == "degraded" and "joining the group" in reasons[0]


def test_a_short_outage_or_recent_errors_are_degraded() -> None:
    state, reasons = status(broker_down_s=5.0)
    assert state == "degraded" and reasons == ["Kafka broker unreachable for 5 s"]
    state, reasons = status(error_streak_s=0.0)
    assert state == "degraded" and reasons == ["Kafka consumer errors for 0 s"]


def test_an_outage_or_an_error_streak_longer_than_the_limit_is_down() -> None:
    assert status(broker_down_s=30.5) == ("down", ["Kafka broker unreachable for 30 s"])
    assert status(error_streak_s=31.0, broker_down_s=1.0, books_synced={ETH: False}) == (
        "down",
        [
            "Kafka broker unreachable for 1 s",
            "Kafka consumer errors for 31 s",
            f"book not synced: {ETH}",
        ],
    )
    assert status(broker_down_s=3.0, down_after_s=2.0)[0] == "down"
    assert status(broker_down_s=30.0)[0] == "degraded"  # "more than" the limit


def test_a_pipeline_marked_simulated_marks_its_rows_from_then_on() -> None:
    rows: list[Row] = []
    pipe = SymbolPipeline("binance", "BTCUSDT", rows.append, PipelineOptions(features=False))
    pipe.on_event(Trade("binance", "BTCUSDT", 1, 2, 1, 100.0, 1.0, "buy"))
    assert not pipe.simulated and "simulated" not in rows[-1].values
    pipe.mark_simulated()
    pipe.on_event(Trade("binance", "BTCUSDT", 3, 4, 2, 100.0, 1.0, "buy"))
    assert pipe.simulated and rows[-1].values["simulated"] is True
    assert rows[-1].values["trade_id"] == 2


def test_ingest_is_down_only_when_the_broker_stays_away() -> None:
    def ingest(**overrides: Any) -> tuple[str, list[str]]:
        args: dict[str, Any] = {
            "frame_age_s": 0.1,
            "feed_done": False,
            "broker_down_s": None,
            "down_after_s": 30.0,
        }
        args.update(overrides)
        return ingest_status(**args)

    assert ingest() == ("ok", [])
    assert ingest(broker_down_s=3.0) == ("degraded", ["Kafka broker unreachable for 3 s"])
    assert ingest(broker_down_s=31.0)[0] == "down"
    # a silent feed is degraded, never down (the live client reconnects by itself)
    assert ingest(frame_age_s=600.0) == ("degraded", ["no frame from the feed for 600 s"])
    assert ingest(frame_age_s=FEED_QUIET_S) == ("ok", [])
    assert ingest(frame_age_s=600.0, feed_done=True) == ("ok", [])  # a finished replay


def test_ingest_counts_the_age_of_its_last_frame() -> None:
    now = [100.0]
    service = IngestService(MemoryBus(), snapshot_every_s=0, clock=lambda: now[0])
    now[0] = 104.0
    assert service.frame_age_s() == 4.0  # since start-up: no frame yet
    service.on_frame(RawFrame(1, b"{}", "spot"))
    now[0] = 104.5
    assert service.frame_age_s() == 0.5
