"""Replay capture files through the live pipeline into a lake.

After the source, replay runs exactly the code a live run does: frames go
through the :class:`~microstream.engine.LocalPipeline` (its ingest half and
engine, with the compiled fast lane for plain trade and depth frames), and
the lake sink writes the output rows. Only the pacing differs: ``speed=None`` runs as fast as possible,
a factor replays the capture's receive-time gaps divided by that factor.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from microstream.bus.memory import MemoryBus
from microstream.capture import read_captures
from microstream.engine import LocalPipeline, PipelineOptions
from microstream.errors import ConfigError
from microstream.frames import RawFrame
from microstream.store.lake import LakeWriter
from microstream.store.sink import LakeSink

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    """What a replay did."""

    frames: int
    events: dict[str, int]
    rejected: dict[str, int]
    rows: int
    rows_dropped: int
    seconds: float
    interrupted: bool
    symbols: dict[str, dict[str, Any]]
    fast_frames: int = 0
    """Frames read by the compiled fast lane (the rest by the reference parser)."""


def parse_speed(text: str) -> float | None:
    """A ``--speed`` value: ``'max'`` → ``None`` (unpaced), otherwise a positive factor.

    Raises:
        ConfigError: the text is neither ``max`` nor a positive number.
    """
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError as exc:
        raise ConfigError(f"--speed must be 'max' or a number, not {text!r}") from exc
    if not speed > 0:
        raise ConfigError("--speed must be positive")
    return speed


def paced(frames: Iterable[RawFrame], speed: float | None) -> Iterator[RawFrame]:
    """Yield ``frames`` at ``speed`` times their recorded pace (``None``: at once)."""
    if speed is None:
        yield from frames
        return
    if speed <= 0:
        raise ValueError("speed must be positive")
    start_wall: float | None = None
    start_ts = 0
    for frame in frames:
        if start_wall is None:
            start_wall, start_ts = time.monotonic(), frame.ts_recv
        else:
            due = start_wall + (frame.ts_recv - start_ts) / 1e9 / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield frame


class _StopFlag:
    """Set by SIGINT/SIGTERM so the replay loop stops cleanly and flushes."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        log.warning("signal %d: stopping after the current frame and flushing the lake", signum)
        self.stopped = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def replay(
    captures: Iterable[str | Path],
    out: str | Path | None,
    *,
    speed: float | None = None,
    options: PipelineOptions | None = None,
    market: str | None = None,
    flush_rows: int = 50_000,
    flush_seconds: float = 5.0,
    progress: bool = False,
    fast_lane: bool = True,
) -> ReplayResult:
    """Run ``captures`` through the pipeline, writing the lake under ``out``.

    ``out=None`` runs the pipeline without a lake (used by benchmarks that time
    sinks separately). SIGINT/SIGTERM stop the replay cleanly: rows already
    produced are flushed, so the lake holds complete files only.
    """
    bus = MemoryBus()
    local = LocalPipeline(bus, options, fast_lane=fast_lane)
    ingest, engine = local.ingest, local.engine
    sink: LakeSink | None = None
    if out is not None:
        sink = LakeSink(LakeWriter(out, flush_rows=flush_rows, flush_seconds=flush_seconds))
        sink.attach(bus)
    stop = _StopFlag()
    stop.install()
    started = time.perf_counter()
    frames: Iterable[RawFrame] = paced(read_captures(captures, market), speed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(frames, unit=" frames", desc="replay", mininterval=0.5)
        frames = bar
    try:
        for frame in frames:
            local.on_frame(frame)
            if stop.stopped:
                break
        if not stop.stopped:
            local.finish()
        else:
            local.flush_rows()  # rows already made still reach the lake
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        if sink is not None:
            sink.close()
    return ReplayResult(
        frames=ingest.stats.frames,
        events=dict(ingest.stats.events),
        rejected={k: v for k, v in ingest.decoder.counts.items() if k not in ("ok", "ignored")},
        rows=sink.stats.writer.rows_written if sink else 0,
        rows_dropped=sink.stats.dropped if sink else 0,
        seconds=time.perf_counter() - started,
        interrupted=stop.stopped,
        symbols={key: pipe.live_state()["stats"] for key, pipe in engine.pipelines.items()},
        fast_frames=local.fast_frames,
    )
