"""ModelEngine routing, live state and model reload; DirectionForecaster rows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from microstream.bus.protocol import Row
from microstream.config import Settings
from microstream.evaluation.dataset import build_dataset
from microstream.evaluation.selection import fit_candidate
from microstream.evaluation.synthetic import synthetic_features
from microstream.models.engine import ModelEngine
from microstream.models.predictor import DirectionForecaster, load_forecast_model
from microstream.models.registry import save_model


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic_features(n=400, seed=21)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, frame: pl.DataFrame) -> Path:
    directory = tmp_path_factory.mktemp("models")
    model = fit_candidate("logistic_all_c1", build_dataset(frame), 10, 1.0)
    save_model(
        model, directory, "forecast", "forecast", {"feature_names": list(model.feature_names)}
    )
    return directory


def _bars(n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    out = []
    price = 30_000.0
    for i in range(n):
        o = price
        price *= float(np.exp(rng.normal(0, 1e-3)))
        out.append(
            {
                "ts": 1_700_000_000_000_000_000 + i * 60_000_000_000,
                "open": o,
                "high": max(o, price) * 1.0005,
                "low": min(o, price) * 0.9995,
                "close": price,
                "volume": 10.0,
                "buy_volume": 6.0,
                "sell_volume": 4.0,
                "vwap": (o + price) / 2,
                "trades": 100,
            }
        )
    return out


def test_engine_routes_rows_and_reports_live_state(frame: pl.DataFrame, model_dir: Path) -> None:
    out: list[Row] = []
    engine = ModelEngine("binance", "BTCUSDT", out.append, Settings(), model_dir)
    for values in frame.iter_rows(named=True):
        engine.on_row(Row("features", "binance", "BTCUSDT", values))
    for bar in _bars(30):
        engine.on_row(Row("bars_1m", "binance", "BTCUSDT", bar))
    engine.on_row(Row("trades", "binance", "BTCUSDT", {"ts": 1}))
    tables = {r.table for r in out}
    assert {"regimes", "predictions", "signals_1m"} <= tables
    preds = [r.values for r in out if r.table == "predictions"]
    assert len(preds) == frame.height
    good = [p for p in preds if p["p_up"] is not None]
    assert len(good) > 0.9 * frame.height
    assert all(abs(p["p_up"] + p["p_neutral"] + p["p_down"] - 1) < 1e-9 for p in good)
    assert good[-1]["model"] == "forecast@1"
    state = engine.live_state()
    assert state["models"]["forecast"] == "forecast@1"
    assert state["forecast"] is not None
    assert state["regime"] is not None
    assert state["signals"] is not None
    assert state["scorecard"]["total"]["model"]["n"] > 300
    assert state["warmup"]["forecast"] == 1.0
    assert engine.errors == 0


def test_reload_picks_up_a_newer_model_without_losing_state(
    frame: pl.DataFrame, model_dir: Path, tmp_path: Path
) -> None:
    directory = tmp_path / "models"
    directory.mkdir()
    first = next(model_dir.glob("forecast-v1.pkl"))
    model = load_forecast_model(str(first))
    save_model(model, directory, "forecast", "forecast")
    engine = ModelEngine("binance", "BTCUSDT", lambda r: None, Settings(), directory, None)
    rows = list(frame.iter_rows(named=True))
    for values in rows[:200]:
        engine.on_row(Row("features", "binance", "BTCUSDT", values))
    resolved = engine.scorecard.total.model.n
    assert engine.reload_models() is False  # unchanged
    save_model(model, directory, "forecast", "forecast")
    assert engine.reload_models() is True
    assert engine.model_versions()["forecast"] == "forecast@2"
    for values in rows[200:]:
        engine.on_row(Row("features", "binance", "BTCUSDT", values))
    assert engine.scorecard.total.model.n > resolved


def test_corrupt_model_file_is_reported_not_fatal(model_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "models"
    directory.mkdir()
    path = save_model(
        load_forecast_model(str(model_dir / "forecast-v1.pkl")), directory, "forecast", "f"
    )
    path.write_bytes(path.read_bytes()[:-10])
    engine = ModelEngine("binance", "BTCUSDT", lambda r: None, Settings(), directory, None)
    assert any("corrupt" in e for e in engine.model_errors)
    # falls back to the shipped default rather than running without a forecast
    assert engine.forecaster.model is not None
    engine.on_row(Row("features", "binance", "BTCUSDT", {"ts": 0, "mid": 1.0}))
    assert engine.errors == 0


def test_bad_rows_are_counted_and_skipped(model_dir: Path) -> None:
    engine = ModelEngine("binance", "BTCUSDT", lambda r: None, Settings(), model_dir, None)
    engine.on_row(Row("features", "binance", "BTCUSDT", {"mid": 1.0}))  # no ts
    engine.on_row(Row("features", "binance", "BTCUSDT", {"ts": 5, "mid": "x", "book_valid": True}))
    assert engine.errors >= 1


def test_periodic_reload_check(model_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "m"
    engine = ModelEngine("binance", "BTCUSDT", lambda r: None, Settings(), directory, 0.0)
    model = load_forecast_model(str(model_dir / "forecast-v1.pkl"))
    save_model(model, directory, "forecast", "forecast")
    os.utime(directory / "forecast-v1.pkl", (time.time() + 5, time.time() + 5))
    engine.on_row(Row("features", "binance", "BTCUSDT", {"ts": 0}))
    assert engine.forecast_path == str(directory / "forecast-v1.pkl")
    assert engine.model_versions()["forecast"] == "forecast@1"


def test_forecaster_emits_null_row_without_model_or_valid_book() -> None:
    out: list[Row] = []
    fc = DirectionForecaster("binance", "BTCUSDT", out.append, None, 10, 1.0)
    assert (
        fc.on_features(
            {"ts": 1, "mid": 100.0, "microprice": 100.0, "imbalance_l1": 0.0, "spread_bps": 1.0}
        )
        is None
    )
    assert out[0].table == "predictions"
    assert out[0].values["p_up"] is None and out[0].values["label"] is None
    assert out[0].values["horizon_s"] == 10.0
