"""The shipped forecast on a real capture: streaming predictions == batch predictions."""

from __future__ import annotations

import numpy as np

from conftest import require_shared
from microstream.bus.protocol import Row
from microstream.evaluation.data import replay_tables
from microstream.models.forecast_features import feature_matrix, forecast_feature_frame
from microstream.models.predictor import DirectionForecaster, load_forecast_model
from microstream.models.registry import default_models_dir, latest_model, load_model


def _default_model_path() -> str:
    path = latest_model(default_models_dir(), "forecast")
    assert path is not None, "no shipped default forecast model in models/default"
    return str(path)


def test_shipped_default_model_verifies_and_is_small() -> None:
    path = _default_model_path()
    _, meta = load_model(path)
    model = load_forecast_model(path)
    assert model.tag == meta.tag
    assert meta.metrics["walk_forward"]["model"]["log_loss"] > 0
    assert (default_models_dir() / "MODEL_CARD.md").is_file()
    assert sum(p.stat().st_size for p in default_models_dir().iterdir()) < 1_000_000


def test_real_capture_stream_and_batch_predictions_agree() -> None:
    files = [
        require_shared("binance/spot/btcusdt_20240808.gz"),
        require_shared("binance/spot/btcusdt_20240809.gz"),
    ]
    features = replay_tables(files)["features"].sort("ts")
    assert features.height > 600
    model = load_forecast_model(_default_model_path())
    out: list[Row] = []
    forecaster = DirectionForecaster("binance", "BTCUSDT", out.append, model, 10, 1.0)
    for values in features.iter_rows(named=True):
        forecaster.on_features(values)
    batch = forecast_feature_frame(features)
    valid = batch["fc_valid"].to_numpy()
    expected = model.predict_proba(feature_matrix(batch.filter(batch["fc_valid"])))
    streamed = np.array(
        [[r.values["p_up"], r.values["p_neutral"], r.values["p_down"]] for r in out], dtype=float
    )
    assert np.isnan(streamed[~valid]).all()
    np.testing.assert_allclose(streamed[valid], expected, rtol=1e-9, atol=1e-12)
    assert valid.sum() > 600
