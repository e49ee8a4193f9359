"""In-process bus: synchronous, ordered delivery to subscribers."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from microstream.bus.protocol import Handler


class MemoryBus:
    """Delivers each message synchronously to the topic's subscribers, in order.

    Synchronous delivery keeps one process's pipeline deterministic and free of
    queues on the hot path; slow sinks put their own bounded queue behind a
    subscription.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self.published: dict[str, int] = defaultdict(int)

    def publish(self, topic: str, key: str, message: Any) -> None:
        self.published[topic] += 1
        for handler in self._handlers.get(topic, ()):
            handler(key, message)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic].append(handler)

    def subscribers(self, topic: str) -> tuple[Handler, ...]:
        """The handlers subscribed to ``topic``, in subscription order."""
        return tuple(self._handlers.get(topic, ()))

    def flush(self, timeout: float = 10.0) -> None:
        return None

    def close(self) -> None:
        self._handlers.clear()
