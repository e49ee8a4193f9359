"""The versioned bus codec: every event type round-trips; bad input is counted."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from microstream.bus.codec import SCHEMA_VERSION, Codec, Envelope, SnapshotRequest
from microstream.bus.protocol import Row, Topics
from microstream.errors import CodecError
from microstream.events import (
    BestBidAsk,
    BookSnapshot,
    BookTop,
    DepthUpdate,
    PartialBook,
    SyncStateChange,
    Trade,
)

EX = "binance-futures"
MESSAGES: list[Any] = [
    Trade(EX, "BTCUSDT", 1, 2, 42, 64000.5, 0.25, "sell"),
    Trade(EX, "BTCUSDT", 1, 2, 43, 64000.5, 0.25, "buy", True, 40, 43),
    DepthUpdate(EX, "BTCUSDT", 1, 2, 10, 12, 9, ((1.0, 2.0),), ((3.0, 0.0),)),
    DepthUpdate("binance", "BTCUSDT", 1, 2, 10, 12, None, (), ()),
    BookSnapshot(EX, "ETHUSDT", None, 5, 99, ((1.5, 1.0), (1.4, 2.0)), ((1.6, 3.0),)),
    BestBidAsk(EX, "BTCUSDT", None, 3, 7, 1.0, 2.0, 1.1, 3.0),
    PartialBook("binance", "BTCUSDT", None, 3, 8, ((1.0, 1.0),), ((2.0, 1.0),)),
    SyncStateChange(EX, "BTCUSDT", 9, "resync", "gap pu=3 u=5", 5),
    BookTop(
        EX,
        "BTCUSDT",
        1,
        2,
        12,
        (1.0, 0.9, None, None, None),
        (1.0, 2.0, None, None, None),
        (1.1, None, None, None, None),
        (3.0, None, None, None, None),
        True,
        2,
    ),
    Row("features", EX, "BTCUSDT", {"ts": 10, "mid": 1.05, "vwap_1m": None, "book_valid": True}),
    SnapshotRequest(EX, "BTCUSDT", "rebalance", "engine-1"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_bus_type_round_trips(message: Any) -> None:
    codec = Codec()
    data = codec.encode(Topics.TRADES, message, session=7, seq=3, produced_ns=123)
    decoded = codec.decode(data)
    assert decoded.message == message
    assert type(decoded.message) is type(message)
    assert (decoded.topic, decoded.session, decoded.seq, decoded.produced_ns) == (
        Topics.TRADES,
        7,
        3,
        123,
    )


def test_row_values_keep_int_float_none_and_bool_types() -> None:
    codec = Codec()
    row = Row("bars_1m", EX, "BTCUSDT", {"ts": 60_000_000_000, "open": 1.0, "x": None, "b": False})
    values = codec.decode(codec.encode(Topics.ROWS, row)).message.values
    assert values == row.values
    assert isinstance(values["ts"], int) and isinstance(values["open"], float)


def test_unknown_schema_version_is_rejected_and_counted() -> None:
    codec = Codec()
    data = codec.encode(Topics.TRADES, MESSAGES[0], version=SCHEMA_VERSION + 1)
    with pytest.raises(CodecError, match="unsupported bus schema version 2"):
        codec.decode(data)
    assert codec.rejected["version"] == 1


def test_unknown_kind_and_corrupt_bytes_are_rejected_and_counted() -> None:
    codec = Codec()
    raw = msgspec.msgpack.encode(
        Envelope(SCHEMA_VERSION, "mystery", 1, "t", 0, 0, msgspec.Raw(msgspec.msgpack.encode(1)))
    )
    with pytest.raises(CodecError, match="unknown bus message kind"):
        codec.decode(raw)
    with pytest.raises(CodecError, match="corrupt"):
        codec.decode(b"\x00garbage")
    bad_payload = msgspec.msgpack.encode(
        Envelope(SCHEMA_VERSION, "trade", 1, "t", 0, 0, msgspec.Raw(msgspec.msgpack.encode([1])))
    )
    with pytest.raises(CodecError, match="corrupt 'trade' payload"):
        codec.decode(bad_payload)
    assert codec.rejected == {"kind": 1, "corrupt": 2}


def test_a_type_the_bus_cannot_carry_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="cannot be sent"):
        Codec().encode(Topics.TRADES, {"not": "an event"})


def test_the_simulated_flag_round_trips_and_defaults_to_false() -> None:
    codec = Codec()
    trade = MESSAGES[0]
    assert codec.decode(codec.encode(Topics.TRADES, trade, simulated=True)).simulated is True
    assert codec.decode(codec.encode(Topics.TRADES, trade)).simulated is False


class _EnvelopeBeforeTheFlag(msgspec.Struct, array_like=True):
    """The envelope's layout before ``simulated`` existed (schema version 1)."""

    version: int
    kind: str
    produced_ns: int
    topic: str
    session: int
    seq: int
    payload: msgspec.Raw


def test_envelopes_with_and_without_the_flag_read_both_ways() -> None:
    payload = msgspec.Raw(msgspec.msgpack.encode(MESSAGES[0]))
    old = msgspec.msgpack.encode(
        _EnvelopeBeforeTheFlag(SCHEMA_VERSION, "trade", 1, Topics.TRADES, 0, 0, payload)
    )
    decoded = Codec().decode(old)  # an older producer: not simulated
    assert decoded.message == MESSAGES[0] and decoded.simulated is False
    new = Codec().encode(Topics.TRADES, MESSAGES[0], simulated=True)
    before = msgspec.msgpack.decode(new, type=_EnvelopeBeforeTheFlag)  # an older consumer
    assert before.version == SCHEMA_VERSION and before.kind == "trade"
