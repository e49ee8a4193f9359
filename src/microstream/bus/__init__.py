"""The message bus: one small protocol, an in-process and a Kafka implementation.

Topics carry either normalized market events (:mod:`microstream.events`) or
output rows (:class:`microstream.bus.protocol.Row`, a table name plus columns).
Keys are ``"<exchange>:<SYMBOL>"`` so one symbol's messages stay in order.
"""

from __future__ import annotations

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Bus, Handler, Row, RowBatch, Topics, symbol_key

__all__ = ["Bus", "Handler", "MemoryBus", "Row", "RowBatch", "Topics", "symbol_key"]
