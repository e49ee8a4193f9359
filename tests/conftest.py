"""Shared fixtures: the recorded exchange data beside the repository, a Kafka broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka_broker import TansuBroker, TcpProxy, free_port

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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A tansu Kafka-protocol broker (in memory) for the tests of one module."""
    server = TansuBroker(tmp_path_factory.mktemp("tansu") / "broker.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TansuBroker, TcpProxy]]:
    """A tansu broker that clients reach through a TCP proxy (to play outages)."""
    broker_port = free_port()
    proxy = TcpProxy(broker_port)
    proxy.start()
    server = TansuBroker(
        tmp_path_factory.mktemp("tansu") / "broker.log",
        port=broker_port,
        advertised_port=proxy.port,
    )
    server.start()
    yield server, proxy
    server.stop()
    proxy.stop()
