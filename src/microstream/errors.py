"""The one exception hierarchy of MicroStream.

Every error the package raises on purpose derives from :class:`MicroStreamError`.
Third-party exceptions are mapped at the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class MicroStreamError(Exception):
    """Base class of every error raised by MicroStream."""


class ConfigError(MicroStreamError):
    """A setting is missing, malformed or inconsistent."""


class ParseError(MicroStreamError):
    """A wire frame could not be turned into a normalized event."""


class InvalidEventError(ParseError):
    """A frame parsed but carries impossible values (NaN, negative, crossed)."""


class UnknownEventError(ParseError):
    """A well-formed frame of a type this parser does not handle."""


class BookError(MicroStreamError):
    """The order book cannot accept an update."""


class SyncGapError(BookError):
    """A depth update does not continue the previous one: the book must resync."""


class FeedError(MicroStreamError):
    """A market-data feed failed (connection, protocol, exchange error)."""


class RateLimitedError(FeedError):
    """The exchange answered 429: back off for ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IpBannedError(FeedError):
    """The exchange answered 418: the IP is banned; stop sending requests."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SnapshotUnavailableError(FeedError):
    """A source cannot answer a depth snapshot yet (the exchange answers 503); retry later."""


class CaptureError(MicroStreamError):
    """A capture file is missing, unreadable or not in a known format."""


class ArchiveError(CaptureError):
    """A historical archive file (Binance data.binance.vision, Tardis CSV) cannot be imported."""


class StoreError(MicroStreamError):
    """The Parquet lake cannot be written or read (full disk, permissions)."""


class BusError(MicroStreamError):
    """The message bus failed (for example the Kafka broker is unreachable)."""


class CodecError(BusError):
    """A bus message cannot be decoded (unknown schema version, kind or corrupt bytes)."""


class ModelError(MicroStreamError):
    """A model file is missing, corrupt, or was trained for other features."""
