"""``microstream bench``: the whole pipeline at full speed over captures.

Each capture session (files of one market and symbol on consecutive days) is
loaded into memory, then replayed through parse → book → features → models →
lake, twice:

* a **plain** run gives the headline rate (``events_per_s``);
* an **instrumented** run splits the time by stage (exclusive wall time:
  a stage's own time, without the stages it calls).

A short untimed warm-up run first pays the one-time costs (imports, loading
the model files), which a long-running engine pays once at start-up.

Sessions run back to back in one process, with the resident set size sampled
after each, so a growing RSS would show. The lake is written to a temporary
directory by the same :class:`~microstream.store.sink.LakeSink` (a background
thread) and flush settings as ``microstream replay``; the measured time ends
when the sink has written and fsynced its last file, so the lake's whole cost
is inside it. The ``sinks`` stage is the feed thread's share: handing rows to
the sink and waiting for its final flush (the sink thread's work while the
feed runs shows up in the stage it interrupts).
"""

from __future__ import annotations

import gc
import re
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microstream.bus.memory import MemoryBus
from microstream.bus.protocol import Topics
from microstream.capture import CaptureSource, describe, read_captures
from microstream.config import Settings
from microstream.engine import Ingestor, LocalPipeline, PipelineOptions
from microstream.frames import RawFrame
from microstream.store.lake import LakeWriter
from microstream.store.sink import LakeSink

STAGES = ("parse", "book", "features", "models", "sinks")
_DATE = re.compile(r"_(\d{8})")


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sessions(paths: Iterable[str | Path]) -> list[list[Path]]:
    """Group capture files into sessions: same market and symbol, consecutive days."""
    described: list[CaptureSource] = [describe(p) for p in paths]
    described.sort(key=lambda s: (s.market, s.symbol or "", s.path.name))
    groups: list[list[Path]] = []
    prev: tuple[str, str | None, int] | None = None
    for src in described:
        m = _DATE.search(src.path.name)
        day = int(time.mktime(time.strptime(m.group(1), "%Y%m%d")) // 86400) if m else -10
        if prev is not None and prev[:2] == (src.market, src.symbol) and 0 <= day - prev[2] <= 1:
            groups[-1].append(src.path)
        else:
            groups.append([src.path])
        prev = (src.market, src.symbol, day)
    return groups


class StageClock:
    """Exclusive wall time per stage; nested stages pause their caller."""

    def __init__(self) -> None:
        self.totals: dict[str, int] = dict.fromkeys(STAGES, 0)
        self._stack: list[str] = []
        self._mark = 0

    def enter(self, stage: str) -> None:
        now = time.perf_counter_ns()
        if self._stack:
            self.totals[self._stack[-1]] += now - self._mark
        self._stack.append(stage)
        self._mark = now

    def leave(self) -> None:
        now = time.perf_counter_ns()
        self.totals[self._stack.pop()] += now - self._mark
        self._mark = now

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        enter, leave = self.enter, self.leave

        def timed(*args: Any) -> Any:
            enter(stage)
            try:
                return fn(*args)
            finally:
                leave()

        return timed


class _Timed:
    """Proxy that times every ``on_*``/``finish`` call of a stage object."""

    def __init__(self, target: Any, stage: str, clock: StageClock) -> None:
        self._target = target
        self._stage = stage
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if callable(attr) and (name.startswith("on_") or name == "finish"):
            return self._clock.wrap(self._stage, attr)
        return attr


@dataclass
class SessionResult:
    """Figures of one session."""

    files: list[str]
    frames: int
    events: dict[str, int]
    seconds: float
    cpu_seconds: float
    rss_after_mb: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _pipeline(
    out: Path,
    options: PipelineOptions,
    clock: StageClock | None,
    lake: bool = True,
    fast_lane: bool = True,
) -> tuple[LocalPipeline, LakeSink]:
    """The replay's pipeline: the same lake sink (background thread) and writer settings."""
    bus = MemoryBus()
    local = LocalPipeline(bus, options, fast_lane=fast_lane)
    ingest, engine = local.ingest, local.engine
    settings = options.settings or Settings.from_env()
    writer = LakeWriter(out, flush_rows=settings.flush_rows, flush_seconds=settings.flush_seconds)
    lake_sink = LakeSink(writer, put_timeout=None)  # back-pressure: a benchmark never drops

    def sink(key: str, row: Any) -> None:
        if lake:
            lake_sink.on_message(key, row)

    if clock is None:
        bus.subscribe(Topics.ROWS, sink)
        return local, lake_sink
    bus.subscribe(Topics.ROWS, clock.wrap("sinks", sink))
    ingest.decoder.decode = clock.wrap("parse", ingest.decoder.decode)  # type: ignore[method-assign]
    if local.fast_lane and local.scan is not None:
        local.scan = clock.wrap("parse", local.scan)
    make = engine.pipeline

    def timed_pipeline(exchange: str, symbol: str) -> Any:
        pipe = make(exchange, symbol)
        if not isinstance(pipe.features, _Timed) and pipe.features is not None:
            pipe.features = _Timed(pipe.features, "features", clock)  # type: ignore[assignment]
        if not isinstance(pipe.models, _Timed) and pipe.models is not None:
            pipe.models = _Timed(pipe.models, "models", clock)  # type: ignore[assignment]
        if not getattr(pipe, "_bench_timed", False):
            pipe.on_event = clock.wrap("book", pipe.on_event)  # type: ignore[method-assign]
            # turning gathered rows into Arrow batches is the lake's work
            pipe.flush_rows = clock.wrap("sinks", pipe.flush_rows)  # type: ignore[method-assign]
            pipe._bench_timed = True  # type: ignore[attr-defined]
        return pipe

    engine.pipeline = timed_pipeline  # type: ignore[method-assign]
    return local, lake_sink


def run_timed(
    frames: list[RawFrame],
    options: PipelineOptions,
    clock: StageClock | None = None,
    lake: bool = True,
    fast_lane: bool = True,
) -> tuple[float, float, Ingestor]:
    """Wall and CPU seconds of one run over ``frames`` (``lake=False``: rows not written)."""
    with tempfile.TemporaryDirectory(prefix="microstream-bench-") as tmp:
        local, sink = _pipeline(Path(tmp), options, clock, lake, fast_lane)
        on_frame = local.on_frame
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        for frame in frames:
            on_frame(frame)
        if clock is not None:
            clock.enter("features")
        local.finish()
        if clock is not None:
            clock.leave()
            clock.enter("sinks")
        sink.close()
        if clock is not None:
            clock.leave()
        return time.perf_counter() - start, time.process_time() - cpu, local.ingest


def bench(
    paths: Iterable[str | Path],
    options: PipelineOptions,
    stages: bool = True,
    fast_lane: bool = True,
) -> dict[str, Any]:
    """Run every session of ``paths`` back to back; the JSON-ready summary.

    ``fast_lane=False`` reads every frame with the reference parser.
    """
    results: list[SessionResult] = []
    counts: Counter[str] = Counter()
    stage_ns: Counter[str] = Counter()
    rss_start = current_rss_mb()
    warmed = False
    for files in sessions(paths):
        frames = list(read_captures(files))
        if not warmed:  # one-time costs (imports, model loading) stay out of the figures
            run_timed(frames[:5000], options, None, fast_lane=fast_lane)
            warmed = True
        seconds, cpu_seconds, ingest = run_timed(frames, options, None, fast_lane=fast_lane)
        result = SessionResult(
            files=[str(f) for f in files],
            frames=len(frames),
            events=dict(ingest.stats.events),
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            rss_after_mb=0.0,
        )
        if stages:
            clock = StageClock()
            run_timed(frames, options, clock, fast_lane=fast_lane)
            result.stage_seconds = {k: v / 1e9 for k, v in clock.totals.items()}
            stage_ns.update(clock.totals)
        counts.update(ingest.stats.events)
        del frames, ingest
        gc.collect()
        result.rss_after_mb = round(current_rss_mb(), 1)
        results.append(result)
    events = sum(counts.values())
    seconds = sum(r.seconds for r in results)
    cpu_seconds = sum(r.cpu_seconds for r in results)
    total_stage = sum(stage_ns.values()) or 1
    return {
        "events": events,
        "frames": sum(r.frames for r in results),
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds else None,
        "cpu_seconds": round(cpu_seconds, 3),
        "events_per_cpu_s": round(events / cpu_seconds, 1) if cpu_seconds else None,
        "events_by_type": dict(counts),
        "stage_seconds": {k: round(stage_ns[k] / 1e9, 3) for k in STAGES} if stages else None,
        "stage_share": {k: round(stage_ns[k] / total_stage, 3) for k in STAGES} if stages else None,
        "sessions": [
            {
                "files": [Path(f).name for f in r.files],
                "frames": r.frames,
                "events_per_s": round(sum(r.events.values()) / r.seconds, 1),
                "rss_after_mb": r.rss_after_mb,
            }
            for r in results
        ],
        "rss_start_mb": round(rss_start, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "features": options.features,
        "models": options.models,
        "fast_lane": fast_lane,
    }
