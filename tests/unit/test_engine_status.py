"""The distributed engine's ``status`` rules (ok / degraded / down), without a broker."""

from __future__ import annotations

from typing import Any

from microstream.bus.protocol import Row
from microstream.engine import PipelineOptions, SymbolPipeline
from microstream.events import Trade
from microstream.services.status import engine_status

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
