"""The versioned wire format of bus messages (Kafka values).

Every message travels in an :class:`Envelope`: the schema version, the message
kind, the producer's wall-clock time in Unix nanoseconds, the logical topic
(:class:`~microstream.bus.protocol.Topics`), the producer's session id and a
per-key sequence number, and the payload. Everything is msgpack (msgspec);
the payload is encoded on its own so a consumer checks the version and kind
before it decodes the body.

The envelope also says whether the data is **simulated** (``simulated``, a
trailing field with a default: an envelope written before it existed decodes
as ``simulated=False``, and a decoder that predates it ignores it, so the
schema version stays 1). Ingest of the market simulator sets it on every
message; engines mark the symbol's outputs simulated when they see it.

A :class:`~microstream.bus.protocol.RowBatch` (the in-process pipeline's
column batches) is not a wire message: publishers send its rows
(``RowBatch.rows()``), one message each, and :func:`kind_of` refuses it
with a :class:`~microstream.errors.CodecError` that says so.

A message of an unknown schema version or kind, or corrupt bytes, raises
:class:`~microstream.errors.CodecError` and is counted in
:attr:`Codec.rejected`: the consumer logs and skips it, it never crashes.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Final

import msgspec

from microstream.bus.protocol import Row, RowBatch
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

SCHEMA_VERSION: Final = 1
"""The version this code writes; decoding accepts only :data:`SUPPORTED_VERSIONS`."""

SUPPORTED_VERSIONS: Final = frozenset({1})


class SnapshotRequest(msgspec.Struct, frozen=True, gc=False):
    """A request on the CONTROL topic: ingest, please publish a fresh snapshot.

    ``symbol`` is upper-case; ``requester`` names the engine that asks (for logs).
    """

    exchange: str
    symbol: str
    reason: str
    requester: str = ""


class Envelope(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """One bus message: header fields plus the msgpack-encoded payload.

    Attributes:
        version: schema version (:data:`SCHEMA_VERSION` when written here).
        kind: payload type name (``"trade"``, ``"depth"``, ``"row"``, ...).
        produced_ns: producer wall-clock time, Unix nanoseconds.
        topic: the logical topic the message was published on.
        session: id of the producing process run (its start time in ns), so a
            consumer sees when a producer restarted.
        seq: per-key sequence number within ``session`` (0 when unused).
        payload: the encoded payload (decoded lazily by :meth:`Codec.decode`).
        simulated: the data comes from the market simulator (a trailing field
            with a default, so older envelopes and older decoders still work).
    """

    version: int
    kind: str
    produced_ns: int
    topic: str
    session: int
    seq: int
    payload: msgspec.Raw
    simulated: bool = False


class Decoded(msgspec.Struct, frozen=True, gc=False):
    """A decoded message: the envelope's header fields and the payload object."""

    kind: str
    produced_ns: int
    topic: str
    session: int
    seq: int
    message: Any
    simulated: bool = False


KINDS: Final[dict[str, type[Any]]] = {
    "trade": Trade,
    "depth": DepthUpdate,
    "snapshot": BookSnapshot,
    "bbo": BestBidAsk,
    "partial": PartialBook,
    "sync": SyncStateChange,
    "top": BookTop,
    "row": Row,
    "snapshot_request": SnapshotRequest,
}
"""Every payload type the bus carries, by kind name (never rename a kind)."""

_KIND_OF: Final[dict[type[Any], str]] = {cls: kind for kind, cls in KINDS.items()}


def kind_of(message: Any) -> str:
    """The kind name of ``message``; :class:`CodecError` for a type the bus cannot carry."""
    try:
        return _KIND_OF[type(message)]
    except KeyError:
        if isinstance(message, RowBatch):
            raise CodecError(
                f"a RowBatch ({message.table}, {message.num_rows} rows) is not sent on the "
                "bus as one message: publish its rows (RowBatch.rows()), one message each"
            ) from None
        raise CodecError(f"type {type(message).__name__} cannot be sent on the bus") from None


class Codec:
    """Encodes and decodes envelopes; counts what it had to reject.

    Attributes:
        rejected: count of rejected messages by reason (``"version"``,
            ``"kind"``, ``"corrupt"``).
    """

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._envelope_decoder = msgspec.msgpack.Decoder(Envelope)
        self._decoders = {kind: msgspec.msgpack.Decoder(cls) for kind, cls in KINDS.items()}
        self.rejected: Counter[str] = Counter()

    def encode(
        self,
        topic: str,
        message: Any,
        *,
        session: int = 0,
        seq: int = 0,
        produced_ns: int | None = None,
        version: int = SCHEMA_VERSION,
        simulated: bool = False,
    ) -> bytes:
        """The wire bytes of ``message`` published on logical ``topic``.

        ``simulated`` marks the message as simulated data (see :class:`Envelope`).
        """
        envelope = Envelope(
            version=version,
            kind=kind_of(message),
            produced_ns=time.time_ns() if produced_ns is None else produced_ns,
            topic=topic,
            session=session,
            seq=seq,
            payload=msgspec.Raw(self._encoder.encode(message)),
            simulated=simulated,
        )
        return self._encoder.encode(envelope)

    def decode(self, data: bytes) -> Decoded:
        """Decode wire bytes; :class:`CodecError` (counted) when they cannot be read."""
        try:
            envelope = self._envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.rejected["corrupt"] += 1
            raise CodecError(f"corrupt bus message envelope: {exc}") from exc
        if envelope.version not in SUPPORTED_VERSIONS:
            self.rejected["version"] += 1
            raise CodecError(
                f"unsupported bus schema version {envelope.version} "
                f"(this build reads {sorted(SUPPORTED_VERSIONS)}); upgrade the consumer"
            )
        decoder = self._decoders.get(envelope.kind)
        if decoder is None:
            self.rejected["kind"] += 1
            raise CodecError(f"unknown bus message kind {envelope.kind!r}")
        try:
            message = decoder.decode(envelope.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.rejected["corrupt"] += 1
            raise CodecError(f"corrupt {envelope.kind!r} payload: {exc}") from exc
        return Decoded(
            kind=envelope.kind,
            produced_ns=envelope.produced_ns,
            topic=envelope.topic,
            session=envelope.session,
            seq=envelope.seq,
            message=message,
            simulated=envelope.simulated,
        )
