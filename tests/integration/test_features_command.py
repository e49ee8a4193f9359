"""``microstream features``: the batch twin over a replayed lake reproduces the live rows."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from microstream.cli import main
from microstream.engine import PipelineOptions
from microstream.features.schema import BAR_COLUMNS, FEATURE_COLUMNS
from microstream.replay import replay
from microstream.store.reader import read_table


@pytest.fixture(scope="module")
def replayed_lake(spot_capture: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("lake")
    replay(spot_capture, lake, options=PipelineOptions(features=True, models=False))
    return lake


def assert_frames_close(live: pl.DataFrame, batch: pl.DataFrame, columns: tuple[str, ...]) -> None:
    assert live.height == batch.height > 0
    for col in columns:
        for a, b in zip(live[col].to_list(), batch[col].to_list(), strict=True):
            if a is None or b is None:
                assert a is None and b is None, col
            else:
                assert math.isclose(a, b, rel_tol=1e-9), (col, a, b)


def test_features_command_matches_live_rows(replayed_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "batch"
    assert main(["features", "--lake", str(replayed_lake), "--out", str(out)]) == 0
    for table, columns in (("features", FEATURE_COLUMNS), ("bars_1m", BAR_COLUMNS)):
        live = read_table(replayed_lake, table, "binance", "BTCUSDT").sort("ts")
        batch = read_table(out, table, "binance", "BTCUSDT").sort("ts")
        assert_frames_close(live, batch, columns)
    # a second run refuses to duplicate rows unless told to overwrite
    assert main(["features", "--lake", str(replayed_lake), "--out", str(out)]) == 2
    assert main(["features", "--lake", str(replayed_lake), "--out", str(out), "--overwrite"]) == 0
    assert read_table(out, "features").height == 650


def test_features_command_on_empty_lake_fails_cleanly(tmp_path: Path) -> None:
    assert main(["features", "--lake", str(tmp_path)]) == 2
