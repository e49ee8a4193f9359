"""Capture files are grouped into recording sessions for replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from microstream.errors import CaptureError
from microstream.evaluation.data import read_table, session_groups


def test_sessions_split_at_midnight_are_grouped_and_others_are_not(tmp_path: Path) -> None:
    names = [
        "usdm/btcusdt_20230404.dat.gz",
        "usdm/btcusdt_20230405.dat.gz",
        "usdm/btcusdt_20240718.gz",
        "usdm/btcusdt_20240719.gz",
        "usdm/ethusdt_20240718.gz",
        "spot/btcusdt_20240808.gz",
        "spot/other.gz",
    ]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    groups = [[p.name for p in g] for g in session_groups(tmp_path / n for n in reversed(names))]
    assert ["btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"] in groups
    assert ["btcusdt_20240718.gz", "btcusdt_20240719.gz"] in groups
    assert ["ethusdt_20240718.gz"] in groups
    assert ["other.gz"] in groups
    assert len(groups) == 5


def test_missing_capture_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError):
        session_groups([tmp_path / "nope.gz"])


def test_absent_table_reads_as_empty(tmp_path: Path) -> None:
    assert read_table(tmp_path, "features").is_empty()
