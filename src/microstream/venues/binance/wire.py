"""Schemas of Binance's raw wire messages (spot, USD-M and COIN-M futures).

Field names are Binance's own one-letter keys. Decoders run with
``strict=False`` so Binance's decimal strings (``"61737.63000000"``) decode
straight to float in C; values are validated afterwards by the parse functions.
"""

from __future__ import annotations

import msgspec

WireLevel = tuple[float, float]


class WireTrade(msgspec.Struct, gc=False):
    """``<symbol>@trade`` (spot and futures)."""

    E: int
    T: int
    s: str
    t: int
    p: float
    q: float
    m: bool
    X: str | None = None  # futures: MARKET, or INSURANCE_FUND/ADL/NA (off-book)


class WireAggTrade(msgspec.Struct, gc=False):
    """``<symbol>@aggTrade``."""

    E: int
    T: int
    s: str
    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - Binance's field name
    m: bool


class WireDepth(msgspec.Struct, gc=False):
    """``<symbol>@depth`` diff (``depthUpdate``); ``pu`` only on futures."""

    E: int
    s: str
    U: int
    u: int
    b: list[WireLevel]
    a: list[WireLevel]
    pu: int | None = None
    T: int | None = None


class WireBookTicker(msgspec.Struct, gc=False):
    """``<symbol>@bookTicker``; spot frames carry no ``E``."""

    u: int
    s: str
    b: float
    B: float
    a: float
    A: float
    E: int | None = None
    T: int | None = None


class WireSnapshot(msgspec.Struct, gc=False):
    """REST ``/depth`` answer, and spot ``depthN`` partial-book frames."""

    lastUpdateId: int
    bids: list[WireLevel]
    asks: list[WireLevel]
    E: int | None = None
    T: int | None = None


class WireEvent(msgspec.Struct, gc=False):
    """Just the event type and time, to classify control frames."""

    e: str | None = None
    E: int | None = None


class Envelope(msgspec.Struct, gc=False):
    """A combined-stream frame with its data still undecoded."""

    stream: str
    data: msgspec.Raw


class SubscriptionReply(msgspec.Struct, gc=False):
    """A reply to a SUBSCRIBE/UNSUBSCRIBE request: ``{"result": null, "id": 1}``."""

    id: int | str
    result: object = None


def typed_envelope(data_type: type) -> type:
    """A combined-stream envelope type whose ``data`` is ``data_type``."""
    return msgspec.defstruct(
        f"Envelope{data_type.__name__}",
        [("stream", str), ("data", data_type)],
        gc=False,
    )
