"""`microstream bench`: its last line is one JSON object with the promised fields."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def _small_capture(spot_capture: list[Path], tmp_path: Path) -> Path:
    small = tmp_path / "spot" / "btcusdt_20240808.gz"
    small.parent.mkdir()
    with gzip.open(spot_capture[0], "rb") as src, gzip.open(small, "wb") as dst:
        for i, line in enumerate(src):
            if i >= 4000:
                break
            dst.write(line)
    return small


def _bench(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "microstream.cli", "--log-level", "WARNING", "bench", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_bench_prints_json_summary(spot_capture: list[Path], tmp_path: Path) -> None:
    result = _bench(str(_small_capture(spot_capture, tmp_path)))
    assert result["frames"] == 4000
    assert result["events"] == sum(result["events_by_type"].values())
    assert result["events_by_type"]["BookSnapshot"] == 1
    assert result["seconds"] > 0 and result["events_per_s"] > 0
    assert result["events_per_cpu_s"] > 0
    assert set(result["stage_seconds"]) == {"parse", "book", "features", "models", "sinks"}
    assert all(v >= 0 for v in result["stage_seconds"].values())
    assert result["peak_rss_mb"] > 0 and result["sessions"][0]["rss_after_mb"] > 0
    assert result["fast_lane"] is True


def test_bench_with_the_reference_parser_counts_the_same_events(
    spot_capture: list[Path], tmp_path: Path
) -> None:
    small = str(_small_capture(spot_capture, tmp_path))
    fast = _bench(small, "--no-stages")
    reference = _bench(small, "--no-stages", "--reference-parser")
    assert fast["fast_lane"] is True and reference["fast_lane"] is False
    assert reference["events_by_type"] == fast["events_by_type"]
    assert reference["stage_seconds"] is None
