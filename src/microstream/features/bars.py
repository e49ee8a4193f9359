"""One-minute OHLCV bars from trades, built incrementally.

A bar covers the trades with trade time ``T`` in ``[m, m + 60 s)`` and is
labelled by its start ``m`` (a multiple of 60 s of exchange time). It is emitted
once, when it closes: on the first trade of a later minute, or when the caller
reports that exchange time has reached the minute's end (:meth:`close_until`).
A minute without trades emits nothing. :meth:`finish` emits the forming
(possibly partial) bar at the end of a stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from microstream.bus.protocol import Row
from microstream.features.schema import BARS_TABLE, MINUTE_NS

log = logging.getLogger(__name__)


class BarBuilder:
    """Builds ``bars_1m`` rows for one symbol.

    Feed trades in time order with :meth:`add`. A trade of a minute that is
    already closed (a late trade) is counted in :attr:`late_trades` and left out.

    Args:
        exchange: exchange name of the emitted rows.
        symbol: symbol of the emitted rows.
        emit: receives each closed bar as a ``Row(table="bars_1m")``.
    """

    __slots__ = (
        "_buy",
        "_close",
        "_high",
        "_low",
        "_minute",
        "_n",
        "_open",
        "_pq",
        "_sell",
        "_volume",
        "bars_emitted",
        "closed_until",
        "emit",
        "exchange",
        "late_trades",
        "symbol",
    )

    def __init__(self, exchange: str, symbol: str, emit: Callable[[Row], None]) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.emit = emit
        self._minute: int | None = None
        self._open = self._high = self._low = self._close = 0.0
        self._volume = self._buy = self._sell = self._pq = 0.0
        self._n = 0
        self.closed_until = -(2**62)
        """Trades with ``T`` before this time belong to emitted bars."""
        self.late_trades = 0
        self.bars_emitted = 0

    def add(self, ts: int, price: float, qty: float, is_buy: bool) -> bool:
        """Add one trade; returns False if it was late (its minute already closed)."""
        minute = ts - ts % MINUTE_NS
        current = self._minute
        if minute != current:
            if ts < self.closed_until or (current is not None and minute < current):
                self.late_trades += 1
                return False
            if current is not None:
                self._close_bar()
            self._minute = minute
            self._open = self._high = self._low = price
            self._volume = self._buy = self._sell = self._pq = 0.0
            self._n = 0
        elif price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += qty
        self._pq += price * qty
        if is_buy:
            self._buy += qty
        else:
            self._sell += qty
        self._n += 1
        return True

    def close_until(self, t: int) -> None:
        """Exchange time has reached ``t``: emit the forming bar if it ends at or before ``t``."""
        minute = self._minute
        if minute is not None and minute + MINUTE_NS <= t:
            self._close_bar()
        if t > self.closed_until:
            self.closed_until = t - t % MINUTE_NS

    def finish(self) -> None:
        """End of stream: emit the forming bar (it may cover less than a minute)."""
        if self._minute is not None:
            self._close_bar()

    def forming_bar(self) -> dict[str, Any] | None:
        """The bar being built (not yet closed), or ``None`` when none is open."""
        if self._minute is None:
            return None
        return self._values()

    def _values(self) -> dict[str, Any]:
        return {
            "ts": self._minute,
            "open": self._open,
            "high": self._high,
            "low": self._low,
            "close": self._close,
            "volume": self._volume,
            "buy_volume": self._buy,
            "sell_volume": self._sell,
            "vwap": self._pq / self._volume if self._volume > 0.0 else None,
            "trades": self._n,
        }

    def _close_bar(self) -> None:
        values = self._values()
        minute = self._minute
        assert minute is not None
        self._minute = None
        self.closed_until = max(self.closed_until, minute + MINUTE_NS)
        self.bars_emitted += 1
        self.emit(Row(BARS_TABLE, self.exchange, self.symbol, values))
