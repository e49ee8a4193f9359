"""``microstream record`` against the loopback exchange: files, rotation, round trip."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from microstream.capture import read_captures
from microstream.errors import FeedError
from microstream.frames import RawFrame
from microstream.sim.capture_feed import CaptureFeed
from microstream.sim.exchange import LoopbackExchange
from microstream.venues.binance.live import LiveFeedConfig
from microstream.venues.binance.parse import parse_frame
from microstream.venues.binance.recorder import (
    CaptureWriter,
    Recorder,
    frame_from_line,
    frame_to_line,
    read_frames,
    read_lines,
)

pytestmark = pytest.mark.timeout(90)

NAME = re.compile(r"^spot_\d{8}T\d{6}Z_\d{4}\.gz$")


@pytest.fixture
async def exchange(spot_capture: list[Path]) -> AsyncIterator[LoopbackExchange]:
    async with LoopbackExchange(CaptureFeed(spot_capture, speed=20.0)) as ex:
        yield ex


class Tee(Recorder):
    """A recorder that also keeps the frames it was given."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[RawFrame] = []

    def _on_frame(self, frame: RawFrame) -> None:
        self.seen.append(frame)
        super()._on_frame(frame)


async def test_record_rotates_and_round_trips(exchange: LoopbackExchange, tmp_path: Path) -> None:
    recorder = Tee(
        tmp_path,
        "spot",
        ["BTCUSDT"],
        ws_url=exchange.ws_url,
        rest_url=exchange.rest_url,
        rotate_bytes=150_000,
        config=LiveFeedConfig(ping_interval_s=0.5),
        flush_interval_s=0.2,
    )
    task = asyncio.create_task(recorder.run(duration_s=60.0))
    while len(recorder.writer.completed) < 1 and not task.done():  # one size rotation at least
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    recorder.stop()
    result = await asyncio.wait_for(task, 30)

    files = sorted(tmp_path.iterdir())
    assert files == result.files and len(files) >= 2, "expected size rotation"
    assert all(NAME.match(p.name) for p in files), [p.name for p in files]  # no .part left
    assert result.snapshots == 1 and result.lines == len(recorder.seen) > 1000

    lines = [line for p in files for line in read_lines(p)]
    assert len(lines) == result.lines
    assert all(re.match(rb"^\d{19} \{", line) for line in lines)
    snapshot_lines = [line for line in lines if b'"stream":"btcusdt@depthSnapshot"' in line]
    assert len(snapshot_lines) == 1

    # the lead's capture reader gives back the very payloads that were recorded
    replayed = list(read_captures(files))
    assert [f.ts_recv for f in replayed] == [f.ts_recv for f in recorder.seen]
    for original, back in zip(recorder.seen, replayed, strict=True):
        if original.symbol is None:
            assert back.payload == original.payload
        else:
            assert parse_frame(back) == parse_frame(original)  # the wrapped snapshot
    assert read_frames(files).__next__().market == "spot"
    own = list(read_frames(files))
    assert [(f.ts_recv, f.payload, f.symbol) for f in own] == [
        (f.ts_recv, f.payload, f.symbol) for f in recorder.seen
    ]


async def test_record_requests_snapshots_again_after_a_reconnect(
    exchange: LoopbackExchange, tmp_path: Path
) -> None:
    config = LiveFeedConfig(ping_interval_s=0.2, backoff_base_s=0.05, backoff_cap_s=0.1)
    recorder = Recorder(
        tmp_path,
        "spot",
        ["BTCUSDT"],
        ws_url=exchange.ws_url,
        rest_url=exchange.rest_url,
        config=config,
    )
    task = asyncio.create_task(recorder.run(duration_s=10.0))
    while recorder.snapshots < 1:
        await asyncio.sleep(0.05)
    exchange.drop_connections()
    while recorder.snapshots < 2:
        await asyncio.sleep(0.05)
    recorder.stop()
    result = await asyncio.wait_for(task, 10)
    assert result.reconnects == 1 and result.snapshots == 2


def test_writer_survives_a_kill_after_flush(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, "spot")
    frames = [
        RawFrame(1_723_161_253_937_085_768 + i, b'{"stream":"x@trade","data":{"t":%d}}' % i, "spot")
        for i in range(500)
    ]
    for frame in frames:
        writer.write(frame)
    writer.flush()  # Z_SYNC_FLUSH: what a killed recorder leaves behind
    [part] = list(tmp_path.iterdir())
    assert part.name.endswith(".gz.part")
    assert [frame_from_line(line, "spot") for line in read_lines(part)] == frames
    # a truncated copy (cut inside the compressed stream) yields a clean prefix
    data = part.read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) * 2 // 3])
    prefix = [frame_from_line(line, "spot") for line in read_lines(cut)]
    assert 0 < len(prefix) < len(frames) and prefix == frames[: len(prefix)]
    writer.close()
    [final] = [p for p in tmp_path.iterdir() if p.name.startswith("spot_")]
    assert NAME.match(final.name)
    assert len(gzip.decompress(final.read_bytes()).splitlines()) == 500


def test_time_rotation_and_snapshot_wrapping(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path, "usdm", rotate_seconds=0.0)
    snap = RawFrame(5, b'{"lastUpdateId":1,\n"bids":[],"asks":[]}', "usdm", "BTCUSDT")
    writer.write(snap)
    assert writer.maybe_rotate()
    writer.write(RawFrame(6, b'{"stream":"btcusdt@trade","data":{}}', "usdm"))
    writer.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2 and all(p.name.startswith("usdm_") for p in files)
    line = frame_to_line(snap)
    assert (
        line
        == b'5 {"stream":"btcusdt@depthSnapshot","data":{"lastUpdateId":1, "bids":[],"asks":[]}}\n'
    )
    back = list(read_frames(files))
    assert back[0].symbol == "BTCUSDT" and back[0].market == "usdm"
    assert msgspec.json.decode(back[0].payload) == {"lastUpdateId": 1, "bids": [], "asks": []}


async def test_record_command_line(exchange: LoopbackExchange, tmp_path: Path) -> None:
    env = {**os.environ, "BINANCE_WS_URL": exchange.ws_url, "BINANCE_REST_URL": exchange.rest_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "microstream.cli",
        "record",
        "--symbols",
        "BTCUSDT",
        "--out",
        str(tmp_path),
        "--duration",
        "2",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert b"[record]" in err
    [path] = [Path(p) for p in out.decode().split()]
    assert path.parent == tmp_path and NAME.match(path.name)
    lines = list(read_lines(path))
    assert len(lines) > 100 and sum(b"@depthSnapshot" in line for line in lines) == 1


async def test_record_fails_clearly_when_nothing_answers(tmp_path: Path) -> None:
    config = LiveFeedConfig(connect_timeout_s=0.2, backoff_base_s=0.05, backoff_cap_s=0.1)
    recorder = Recorder(
        tmp_path,
        "spot",
        ["BTCUSDT"],
        ws_url="ws://127.0.0.1:9",
        rest_url="http://127.0.0.1:9",
        config=config,
    )
    with pytest.raises(FeedError, match="no connection"):
        await recorder.run(duration_s=5.0)
    assert list(tmp_path.iterdir()) == []


async def test_killed_recorder_leaves_a_readable_part_file(
    exchange: LoopbackExchange, tmp_path: Path
) -> None:
    env = {**os.environ, "BINANCE_WS_URL": exchange.ws_url, "BINANCE_REST_URL": exchange.rest_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "microstream.cli",
        "record",
        "--symbols",
        "BTCUSDT",
        "--out",
        str(tmp_path),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        lines: list[bytes] = []
        while len(lines) < 200 or not any(b"@depthSnapshot" in x for x in lines):
            assert asyncio.get_running_loop().time() < deadline, "nothing recorded"
            await asyncio.sleep(0.5)
            parts = list(tmp_path.glob("*.gz.part"))
            lines = list(read_lines(parts[0])) if parts else []
    finally:
        proc.kill()  # SIGKILL: no clean close, the file keeps its temporary name
        await proc.wait()
    [part] = list(tmp_path.glob("*.gz.part"))
    lines = list(read_lines(part))
    assert len(lines) >= 200
    assert all(re.match(rb"^\d{19} \{.*\}\n$", line) for line in lines)
    assert sum(b"@depthSnapshot" in line for line in lines) == 1
