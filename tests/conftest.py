"""Shared fixtures: the recorded exchange data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def require_shared(relative: str) -> Path:
    """Path of a file under ``../shared/data``; fails loudly (never skips) if absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.fail(f"required data file is missing: {path} (tests read ../shared/data)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ``../shared/data`` directory (the test fails if it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"../shared/data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spot_capture() -> list[Path]:
    """The spot BTCUSDT session (two files, read in order as one stream)."""
    return [
        require_shared("binance/spot/btcusdt_20240808.gz"),
        require_shared("binance/spot/btcusdt_20240809.gz"),
    ]


@pytest.fixture(scope="session")
def usdm_capture() -> list[Path]:
    """The USD-M BTCUSDT 2023 session (µs receive times)."""
    return [
        require_shared("binance/usdm/btcusdt_20230404.dat.gz"),
        require_shared("binance/usdm/btcusdt_20230405.dat.gz"),
    ]


@pytest.fixture(scope="session")
def coinm_capture() -> list[Path]:
    """The COIN-M BTCUSD_PERP session."""
    return [
        require_shared("binance/cm/btcusd_perp_20240808.gz"),
        require_shared("binance/cm/btcusd_perp_20240809.gz"),
    ]
