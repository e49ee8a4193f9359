"""Capture files → :class:`~microstream.frames.RawFrame` streams.

Reads the Binance captures in ``../shared/data/binance`` exactly as they are
(gzip text, one ``<local_receive_time> <json>`` line per frame, receive times in
ns or µs, one bare REST snapshot line per session somewhere inside the stream,
sessions split over several files) and MicroStream's own recordings (the same
line format, snapshots wrapped as ``<sym>@depthSnapshot`` frames).

Files of one (market, symbol) session are read in name order as one stream;
several sessions (for example two symbols) are merged by receive time.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from microstream.errors import CaptureError
from microstream.frames import RawFrame

log = logging.getLogger(__name__)

_MARKET_DIRS = {"spot": "spot", "usdm": "usdm", "um": "usdm", "cm": "coinm", "coinm": "coinm"}
_RECORDING_NAME = re.compile(r"^(spot|usdm|coinm)_\d{8}T\d{6}Z_\d+\.gz$")
_SESSION_NAME = re.compile(r"^(?P<symbol>[a-z0-9_]+?)_(?P<date>\d{8})(\.dat)?\.gz$")


@dataclass(frozen=True)
class CaptureSource:
    """One capture file with the market and symbol it was recorded for."""

    path: Path
    market: str
    symbol: str | None

    @property
    def session(self) -> tuple[str, str | None]:
        """Files with the same session key are one continuous stream."""
        return (self.market, self.symbol)


def describe(path: str | Path, market: str | None = None) -> CaptureSource:
    """Work out the market and symbol of a capture file from its path.

    Shared captures live in ``.../binance/<spot|usdm|cm>/<symbol>_<YYYYMMDD>.gz``;
    MicroStream recordings are named ``<market>_<UTC time>_<seq>.gz``.
    """
    p = Path(path)
    if not p.is_file():
        raise CaptureError(f"capture file not found: {p}")
    name = p.name.removesuffix(".part")  # a recorder killed mid-file leaves ".gz.part"
    rec = _RECORDING_NAME.match(name)
    if rec:
        return CaptureSource(p, market or rec.group(1), None)
    session = _SESSION_NAME.match(name)
    guessed = _MARKET_DIRS.get(p.parent.name.lower())
    if market is None and guessed is None:
        raise CaptureError(
            f"cannot tell the market of {p}: put it under spot/, usdm/ or cm/, or pass --market"
        )
    symbol = session.group("symbol").upper() if session else None
    return CaptureSource(p, market or guessed or "spot", symbol)


def _to_ns(stamp: bytes) -> int:
    value = int(stamp)
    digits = len(stamp)
    if digits >= 18:
        return value
    if digits >= 15:
        return value * 1_000
    if digits >= 12:
        return value * 1_000_000
    raise ValueError(f"receive time {stamp!r} is not a Unix time in ns, µs or ms")


def read_capture_file(source: CaptureSource) -> Iterator[RawFrame]:
    """Frames of one file, in file order; bad lines are logged and skipped.

    A truncated gzip tail (a recorder killed mid-write) ends the file with a
    warning instead of an error.
    """
    bad = 0
    try:
        with gzip.open(source.path, "rb") as fh:
            for line in fh:
                stamp, sep, payload = line.rstrip(b"\r\n").partition(b" ")
                if not sep or not payload:
                    bad += 1
                    continue
                try:
                    ts = _to_ns(stamp)
                except ValueError:
                    bad += 1
                    continue
                yield RawFrame(ts, payload, source.market, source.symbol)
    except (EOFError, zlib.error) as exc:
        log.warning("capture %s ends with a truncated or corrupt block: %s", source.path, exc)
    except gzip.BadGzipFile as exc:
        raise CaptureError(f"{source.path} is not a gzip capture: {exc}") from exc
    except OSError as exc:
        raise CaptureError(f"cannot read {source.path}: {exc}") from exc
    if bad:
        log.warning("capture %s: skipped %d malformed lines", source.path, bad)


def _session_frames(files: list[CaptureSource]) -> Iterator[RawFrame]:
    for source in sorted(files, key=lambda s: s.path.name):
        yield from read_capture_file(source)


def read_captures(paths: Iterable[str | Path], market: str | None = None) -> Iterator[RawFrame]:
    """All frames of ``paths``: sessions in file order, merged by receive time."""
    sessions: dict[tuple[str, str | None], list[CaptureSource]] = {}
    for path in paths:
        source = describe(path, market)
        sessions.setdefault(source.session, []).append(source)
    if not sessions:
        raise CaptureError("no capture files given")
    streams = [_session_frames(files) for files in sessions.values()]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda f: f.ts_recv)
