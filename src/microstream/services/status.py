"""The ``status`` of the distributed services: ``ok``, ``degraded`` or ``down``.

:func:`engine_status` for ``microstream engine``, :func:`ingest_status` for
``microstream ingest --health-port``: pure functions of what the service
knows, so every rule is testable without a broker. The engine's rules:

* ``down`` — the broker has been unreachable for more than ``down_after_s``
  seconds, or consumer errors have kept coming for that long (the engine API
  then answers ``/health`` with HTTP 503, so a plain HTTP health check fails);
* ``degraded`` — the engine works but not fully: no partitions assigned yet
  (joining the group, or a rebalance in progress), a book resyncing, the
  broker unreachable or consumer errors for less than ``down_after_s``;
* ``ok`` — partitions assigned, broker reachable, no consumer error within
  ``down_after_s``, and every book of the engine's symbols synced. (Assigned
  partitions that carry no symbol yet are ``ok``: nothing is wrong.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Status = Literal["ok", "degraded", "down"]


def engine_status(
    *,
    assigned: bool,
    books_synced: Mapping[str, bool],
    broker_down_s: float | None,
    error_streak_s: float | None,
    down_after_s: float,
) -> tuple[Status, list[str]]:
    """The engine's status and the reasons it is not ``ok``.

    Args:
        assigned: the engine holds market-data partitions.
        books_synced: per symbol key, whether its book is synced.
        broker_down_s: seconds the broker has been unreachable (``None``: reachable).
        error_streak_s: length of the current streak of consumer errors
            (``None``: no consumer error recently).
        down_after_s: how long an outage or an error streak lasts before ``down``
            (``KafkaSettings.down_after_s``, ``MICROSTREAM_KAFKA_DOWN_AFTER_S``).
    """
    reasons: list[str] = []
    if broker_down_s is not None:
        reasons.append(f"Kafka broker unreachable for {broker_down_s:.0f} s")
    if error_streak_s is not None:
        reasons.append(f"Kafka consumer errors for {error_streak_s:.0f} s")
    down = (broker_down_s is not None and broker_down_s > down_after_s) or (
        error_streak_s is not None and error_streak_s > down_after_s
    )
    if not assigned:
        reasons.append("no partitions assigned (joining the group or rebalancing)")
    resyncing = sorted(key for key, synced in books_synced.items() if not synced)
    if resyncing:
        reasons.append(f"book not synced: {', '.join(resyncing)}")
    if down:
        return "down", reasons
    return ("degraded" if reasons else "ok"), reasons


FEED_QUIET_S = 5.0
"""Seconds without a frame after which an ingest feed counts as not connected."""


def ingest_status(
    *,
    frame_age_s: float | None,
    feed_done: bool,
    broker_down_s: float | None,
    down_after_s: float,
) -> tuple[Status, list[str]]:
    """The ingest service's status and the reasons it is not ``ok``.

    Args:
        frame_age_s: seconds since the feed's last frame (or since start-up
            when no frame came yet).
        feed_done: the feed ended on purpose (a replay reached its last frame):
            silence is then expected.
        broker_down_s: seconds the broker has been unreachable (``None``: reachable).
        down_after_s: how long a broker outage lasts before ``down``.

    ``down`` when the broker has been unreachable for more than
    ``down_after_s`` (what ingest reads is then lost to the engines once its
    producer's buffer expires); ``degraded`` for a shorter outage or a feed
    without a frame for more than :data:`FEED_QUIET_S` (disconnected, or a
    very quiet symbol: the live client reconnects by itself, so a silent feed
    is never ``down``); else ``ok``.
    """
    reasons: list[str] = []
    down = False
    if broker_down_s is not None:
        reasons.append(f"Kafka broker unreachable for {broker_down_s:.0f} s")
        down = broker_down_s > down_after_s
    if not feed_done and frame_age_s is not None and frame_age_s > FEED_QUIET_S:
        reasons.append(f"no frame from the feed for {frame_age_s:.0f} s")
    if down:
        return "down", reasons
    return ("degraded" if reasons else "ok"), reasons
