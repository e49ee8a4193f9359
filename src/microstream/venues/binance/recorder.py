"""Recording live frames to gzip capture files, and reading them back.

The recording format is the shared captures' format, so ``microstream replay``
reads both: one line per frame, ``<ts_recv_ns> <json>``, gzip-compressed.
Stream frames are written exactly as received (combined-stream envelopes).
A REST snapshot is written wrapped so it stays attributable to its symbol::

    <ts_recv_ns> {"stream":"btcusdt@depthSnapshot","data":{"lastUpdateId":...}}

Files: ``<market>_<YYYYmmddTHHMMSSZ>_<seq>.gz`` in the output directory, one
file set per market, rotated by size and/or age; the file being written is
named ``....gz.part`` and renamed when it is complete. The gzip stream is
flushed (``Z_SYNC_FLUSH``) every second, so a killed recorder loses at most
about a second, and :func:`read_lines` tolerates the truncated last member of
such a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import signal
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from microstream.config import Settings
from microstream.errors import CaptureError, StoreError
from microstream.frames import RawFrame
from microstream.venues.binance.live import BinanceLiveFeed, LiveFeedConfig

log = logging.getLogger(__name__)

SNAPSHOT_STREAM_SUFFIX = "@depthSnapshot"
PART_SUFFIX = ".part"


def frame_to_line(frame: RawFrame) -> bytes:
    """The capture line of one frame (snapshots wrapped in a ``@depthSnapshot`` envelope)."""
    payload = frame.payload.strip()
    if b"\n" in payload:
        payload = payload.replace(b"\r", b" ").replace(b"\n", b" ")
    if frame.symbol is not None:
        stream = f"{frame.symbol.lower()}{SNAPSHOT_STREAM_SUFFIX}"
        payload = b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
    return str(frame.ts_recv).encode() + b" " + payload + b"\n"


def frame_from_line(line: bytes, market: str) -> RawFrame:
    """The :class:`RawFrame` a capture line was written from (inverse of :func:`frame_to_line`)."""
    ts_raw, _, payload = line.rstrip(b"\r\n").partition(b" ")
    try:
        ts = int(ts_raw)
    except ValueError as exc:
        raise CaptureError(f"bad capture line: {line[:60]!r}") from exc
    prefix = b'{"stream":"'
    marker = SNAPSHOT_STREAM_SUFFIX.encode() + b'","data":'
    if payload.startswith(prefix) and marker in payload[:80] and payload.endswith(b"}"):
        symbol, _, _ = payload[len(prefix) :].partition(b"@")
        body = payload[payload.index(marker) + len(marker) : -1]
        return RawFrame(ts, body, market, symbol.decode().upper())
    return RawFrame(ts, payload, market)


def read_lines(path: str | Path) -> Iterator[bytes]:
    """Every complete line of a (possibly truncated, multi-member) gzip file."""
    pending = b""
    with open(path, "rb") as handle:
        for chunk in _decompressed_chunks(handle):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield line + b"\n"


def _decompressed_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    decomp = zlib.decompressobj(wbits=31)
    while True:
        raw = handle.read(1 << 16)
        if not raw:
            return
        while raw:
            try:
                yield decomp.decompress(raw)
            except zlib.error:
                log.warning("corrupt gzip data in %s; stopping there", handle.name)
                return
            raw = decomp.unused_data
            if decomp.eof:
                decomp = zlib.decompressobj(wbits=31)
            else:
                raw = b""


def read_frames(paths: Iterable[str | Path], market: str | None = None) -> Iterator[RawFrame]:
    """The frames of recorded files, in order (market from the file name when not given)."""
    for path in paths:
        file_market = market or Path(path).name.split("_", 1)[0]
        for line in read_lines(path):
            yield frame_from_line(line, file_market)


class CaptureWriter:
    """Writes frames to rotating gzip capture files of one market.

    Args:
        out_dir: the directory (created if missing).
        market: ``"spot"``, ``"usdm"`` or ``"coinm"`` (the files' name prefix).
        rotate_bytes: start a new file once the compressed file reaches this size.
        rotate_seconds: start a new file once the current one is this old.
        compresslevel: gzip level (6 = a good speed/size balance).
    """

    def __init__(
        self,
        out_dir: str | Path,
        market: str,
        *,
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
        compresslevel: int = 6,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.market = market
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.compresslevel = compresslevel
        self.completed: list[Path] = []
        self.lines = 0
        self.bytes_in = 0
        self._seq = 0
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._path: Path | None = None
        self._opened_at = 0.0
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create {self.out_dir}: {exc}") from exc

    @property
    def current_path(self) -> Path | None:
        """Final name of the file being written (``None`` when none is open)."""
        return self._path

    def write(self, frame: RawFrame) -> None:
        """Append one frame (opens a file when none is open)."""
        if self._gz is None:
            self._open()
        assert self._gz is not None
        line = frame_to_line(frame)
        try:
            self._gz.write(line)
        except OSError as exc:
            raise StoreError(f"cannot write {self._path}: {exc}") from exc
        self.lines += 1
        self.bytes_in += len(line)

    def flush(self) -> None:
        """Sync-flush the gzip stream to disk, then rotate if the file is due.

        After a flush a reader sees every line written so far; call it about
        once a second.
        """
        if self._gz is not None:
            try:
                self._gz.flush(zlib.Z_SYNC_FLUSH)
            except OSError as exc:
                raise StoreError(f"cannot flush {self._path}: {exc}") from exc
            self.maybe_rotate()

    def maybe_rotate(self) -> bool:
        """Close the current file and start a new one when it is too big or too old."""
        if self._gz is None or self._raw is None:
            return False
        too_big = self.rotate_bytes is not None and self._raw.tell() >= self.rotate_bytes
        too_old = (
            self.rotate_seconds is not None
            and time.monotonic() - self._opened_at >= self.rotate_seconds
        )
        if not (too_big or too_old):
            return False
        self._finish()
        return True

    def close(self) -> None:
        """Finish the current file (it gets its final name)."""
        self._finish()

    def _open(self) -> None:
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self._path = self.out_dir / f"{self.market}_{stamp}_{self._seq:04d}.gz"
        part = self._path.with_name(self._path.name + PART_SUFFIX)
        try:
            self._raw = open(part, "wb")  # noqa: SIM115 - closed in _finish
        except OSError as exc:
            raise StoreError(f"cannot create {part}: {exc}") from exc
        self._gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, compresslevel=self.compresslevel, mtime=0
        )
        self._opened_at = time.monotonic()

    def _finish(self) -> None:
        if self._gz is None or self._raw is None or self._path is None:
            return
        part = self._path.with_name(self._path.name + PART_SUFFIX)
        try:
            self._gz.close()
            self._raw.close()
            os.replace(part, self._path)
        except OSError as exc:
            raise StoreError(f"cannot finish {self._path}: {exc}") from exc
        self.completed.append(self._path)
        log.info("capture file complete: %s", self._path)
        self._gz = self._raw = None
        self._path = None


@dataclass
class RecordResult:
    """What a recording produced."""

    files: list[Path]
    lines: int
    snapshots: int
    reconnects: int
    seconds: float


class Recorder:
    """Records a live feed into capture files: ``microstream record``'s engine.

    The recorder requests every symbol's REST snapshot once the stream is open
    (and again after each reconnect), so a recording is replayable on its own.
    """

    def __init__(
        self,
        out_dir: str | Path,
        market: str,
        symbols: list[str],
        *,
        ws_url: str | None = None,
        rest_url: str | None = None,
        settings: Settings | None = None,
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
        config: LiveFeedConfig | None = None,
        status: TextIO | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.writer = CaptureWriter(
            out_dir, market, rotate_bytes=rotate_bytes, rotate_seconds=rotate_seconds
        )
        self.feed = BinanceLiveFeed(
            market,
            symbols,
            self._on_frame,
            ws_url=ws_url,
            rest_url=rest_url,
            on_reconnect=self._on_reconnect,
            config=config,
            settings=settings,
        )
        self.status = status
        self.flush_interval_s = flush_interval_s
        self.snapshots = 0
        self.write_errors = 0
        self._stop = asyncio.Event()
        self._started = 0.0
        self._last_status = 0.0

    def stop(self) -> None:
        """Ask :meth:`run` to finish (safe from a signal handler)."""
        self._stop.set()

    async def run(self, duration_s: float | None = None) -> RecordResult:
        """Record until ``duration_s`` passed or :meth:`stop` was called."""
        self._started = time.monotonic()
        await self.feed.start()
        try:
            await self.feed.wait_connected(self.feed.config.connect_timeout_s * 3)
            for symbol in self.feed.symbols:
                self.feed.request_snapshot(symbol)
            await self._loop(duration_s)
        finally:
            await self.feed.stop()
            self.writer.close()
            self._print_status(final=True)
        return RecordResult(
            files=list(self.writer.completed),
            lines=self.writer.lines,
            snapshots=self.snapshots,
            reconnects=self.feed.stats.reconnects,
            seconds=time.monotonic() - self._started,
        )

    async def _loop(self, duration_s: float | None) -> None:
        deadline = None if duration_s is None else self._started + duration_s
        while not self._stop.is_set():
            wait = self.flush_interval_s
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
            self._flush_writer()
            self._print_status()

    def _flush_writer(self) -> None:
        try:
            self.writer.flush()
        except StoreError:
            self.write_errors += 1
            log.exception("capture flush failed; stopping")
            self.stop()

    def _on_frame(self, frame: RawFrame) -> None:
        if frame.symbol is not None:
            self.snapshots += 1
        try:
            self.writer.write(frame)
        except StoreError:
            self.write_errors += 1
            log.exception("frame not recorded")
            self.stop()

    def _on_reconnect(self, symbols: list[str]) -> None:
        for symbol in symbols:
            self.feed.request_snapshot(symbol)

    def _print_status(self, final: bool = False) -> None:
        if self.status is None:
            return
        now = time.monotonic()
        if not (final or self.status.isatty() or now - self._last_status >= 10.0):
            return
        self._last_status = now
        stats = self.feed.stats
        line = (
            f"[record] {time.monotonic() - self._started:7.1f} s  frames {self.writer.lines}"
            f"  {self.writer.bytes_in / 1e6:.1f} MB raw  snapshots {self.snapshots}"
            f"  files {len(self.writer.completed) + (self.writer.current_path is not None)}"
            f"  reconnects {stats.reconnects}  state {stats.state}"
        )
        end = "\n" if final or not self.status.isatty() else ""
        self.status.write(("\r" if self.status.isatty() else "") + line + end)
        self.status.flush()


def install_signal_handlers(recorder: Recorder) -> None:
    """Stop the recorder cleanly on SIGINT/SIGTERM (files get their final names)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, recorder.stop)


def status_stream() -> TextIO:
    """Where the progress line goes."""
    return sys.stderr
