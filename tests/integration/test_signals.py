"""SignalEngine: bars in, signals_1m rows out (warm-up, fits, registry, lake)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from conftest import require_shared
from microstream.archive import import_archives
from microstream.bus.protocol import Row
from microstream.config import Settings
from microstream.models.fitting import RefitPolicy
from microstream.models.signals import (
    SignalEngine,
    SignalModels,
    signals_batch,
    train_signal_models,
)
from microstream.store.lake import LakeWriter

NS_MIN = 60_000_000_000
STATES = {"normal", "bullish_extreme", "bearish_extreme"}


def regime_bars(n: int, seed: int = 11) -> pl.DataFrame:
    """Bars whose drift switches between calm, rally and sell-off."""
    rng = np.random.default_rng(seed)
    drift = np.zeros(n)
    state = 0
    for i in range(n):
        if rng.random() < 0.04:
            state = int(rng.integers(0, 3))
        drift[i] = (0.0, 0.004, -0.004)[state]
    ret = drift + rng.normal(0, 0.001, n) * (1 + 2 * (drift != 0))
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.0005, n)) * close
    volume = rng.gamma(3.0, 10.0, n) * (1 + 3 * (drift != 0))
    return pl.DataFrame(
        {
            "ts": np.arange(n, dtype=np.int64) * NS_MIN,
            "open": open_,
            "high": np.maximum(open_, close) + wick,
            "low": np.minimum(open_, close) - wick,
            "close": close,
            "volume": volume,
            "buy_volume": volume / 2,
            "sell_volume": volume / 2,
            "vwap": (open_ + close) / 2,
            "trades": rng.integers(10, 100, n),
        }
    )


POLICY = RefitPolicy(warmup=60, refit_every=50, window=120)


def test_engine_warms_up_then_emits_named_states() -> None:
    bars = regime_bars(200)
    rows: list[Row] = []
    engine = SignalEngine("binance", "BTCUSDT", rows.append, Settings(), policy=POLICY)
    for values in bars.iter_rows(named=True):
        engine.on_bar(values)
    assert len(rows) == 200
    assert {r.table for r in rows} == {"signals_1m"}
    first = rows[0].values
    assert first["hmm_state"] is None and first["anomaly"] is None
    # features need 39 bars, then the fit 60 vectors: 38 + 60 = 98 bars
    assert first["hmm_status"] == "warming_up 1/98"
    assert rows[50].values["hmm_status"] == "warming_up 51/98"
    assert rows[96].values["hmm_state"] is None
    fitted = rows[97].values
    assert fitted["hmm_status"] == "fitted" and fitted["anomaly_status"] == "fitted"
    assert fitted["hmm_fitted_at"] == 97 * NS_MIN and fitted["hmm_train_bars"] == 60
    assert rows[147].values["hmm_status"] == "refitted"
    assert rows[147].values["hmm_version"] == 2
    for r in rows[97:]:
        v = r.values
        assert v["hmm_state"] in STATES
        assert 0.0 < v["hmm_confidence"] <= 1.0
        probs = [v[f"hmm_p_{s}"] for s in STATES]
        assert abs(sum(probs) - 1.0) < 1e-9
        assert isinstance(v["anomaly"], bool)
        assert v["anomaly"] == (v["anomaly_score"] > 0)


def test_invalid_bars_are_skipped_not_fatal() -> None:
    rows: list[Row] = []
    engine = SignalEngine("binance", "BTCUSDT", rows.append)
    assert engine.on_bar({"ts": 0, "open": None}) is None
    assert engine.on_bar({"ts": 1, "open": 1, "high": 2, "low": 3, "close": 1, "volume": 1}) is None
    assert engine.bars_rejected == 2 and rows == []
    bar = {"ts": 60, "open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 1.0}
    assert engine.on_bar(bar) is not None
    assert engine.on_bar(bar) is None  # a duplicate delivery of the same minute
    assert engine.on_bar({**bar, "ts": 0}) is None  # out of order
    assert engine.bars_rejected == 4 and len(rows) == 1


def test_pretrained_models_round_trip_through_the_registry(tmp_path: Path) -> None:
    bars = regime_bars(300)
    models = train_signal_models(bars.head(250))
    assert models.hmm is not None and models.forest is not None
    paths = models.save(tmp_path, training_data="synthetic regime bars")
    assert len(paths) == 2
    loaded = SignalModels.load(tmp_path)
    assert loaded.hmm_version == 1 and loaded.forest_version == 1
    out = signals_batch(bars, models=loaded, policy=RefitPolicy(warmup=60, refit_every=0))
    # pre-trained: output from the first complete feature vector (bar 39)
    assert out["hmm_state"][37] is None
    assert out["hmm_status"][37] == "warming_up 38/39"
    assert out["hmm_state"][38] in STATES
    assert out["hmm_status"][38] == "pretrained"
    assert out["anomaly_status"][299] == "pretrained"
    # the rally / sell-off bars are found: both extreme states occur
    assert set(out["hmm_state"].drop_nulls().to_list()) == STATES


def test_signals_rows_land_in_the_lake(tmp_path: Path) -> None:
    bars = regime_bars(120)
    writer = LakeWriter(tmp_path, flush_rows=1000)
    engine = SignalEngine("binance", "BTCUSDT", writer.add, policy=POLICY)
    for values in bars.iter_rows(named=True):
        engine.on_bar(values)
    writer.close()
    lake = pl.scan_parquet(str(tmp_path / "signals_1m/**/*.parquet"), hive_partitioning=True)
    frame = lake.collect().sort("ts")
    assert frame.height == 120
    assert {"hmm_state", "hmm_confidence", "anomaly", "anomaly_score", "hmm_status"} <= set(
        frame.columns
    )
    assert frame["hmm_state"].null_count() == 97
    assert frame["symbol"].unique().to_list() == ["BTCUSDT"]


def test_future_bars_never_change_past_signals() -> None:
    bars = regime_bars(190)
    short = signals_batch(bars.head(150), policy=POLICY)
    full = signals_batch(bars, policy=POLICY)
    assert full.head(150).equals(short)
    assert short["hmm_status"].to_list().count("refitted") == 1  # a refit inside the prefix


def test_signals_on_real_bars_imported_from_a_tardis_file(tmp_path: Path) -> None:
    source = require_shared("tardis/binance-futures_trades_BTCUSDT_20200222.csv")
    import_archives([source], tmp_path, "BTCUSDT", "usdm")
    bars = pl.read_parquet(str(tmp_path / "bars_1m/**/*.parquet")).sort("ts")
    out = signals_batch(bars, policy=RefitPolicy(warmup=40, refit_every=20, window=80))
    assert out.height == bars.height
    ready = out.filter(pl.col("hmm_state").is_not_null())
    assert ready.height == bars.height - (38 + 39)
    assert set(ready["hmm_state"].to_list()) <= STATES
    assert ready["anomaly"].sum() >= 1  # real minutes do have outliers
    assert (ready["anomaly"] == (ready["anomaly_score"] > 0)).all()
