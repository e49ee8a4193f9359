"""Raw wire frames: what every source (live, capture, simulator) produces.

After the source, live, replay and simulated runs share the very same code:
``RawFrame`` → :mod:`microstream.venues.binance.parse` → events → book → features.
"""

from __future__ import annotations

from typing import NamedTuple


class RawFrame(NamedTuple):
    """One frame as received, with the local receive time in Unix nanoseconds.

    ``payload`` is the frame's JSON text: a combined-stream envelope
    ``{"stream": ..., "data": ...}`` or a bare REST depth snapshot. ``symbol``
    names the symbol of a bare snapshot (which carries none on spot);
    ``market`` is ``"spot"``, ``"usdm"`` or ``"coinm"``.
    """

    ts_recv: int
    payload: bytes
    market: str
    symbol: str | None = None
