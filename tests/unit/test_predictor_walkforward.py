"""Walk-forward splits, metrics, baselines and model selection on synthetic data."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from microstream.errors import MicroStreamError, ModelError
from microstream.evaluation.baselines import BASELINES, baseline_probs, class_frequencies
from microstream.evaluation.dataset import build_dataset
from microstream.evaluation.metrics import (
    accuracy,
    all_metrics,
    brier,
    ece,
    log_loss,
    log_loss_margin,
    macro_f1,
)
from microstream.evaluation.selection import (
    BOOK_FEATURES,
    fit_candidate,
    inference_micros,
    mirrored,
    parse_candidate,
    select_best,
    walk_forward,
)
from microstream.evaluation.synthetic import synthetic_features
from microstream.evaluation.walkforward import walk_forward_splits
from microstream.models.forecast_features import FEATURE_NAMES
from microstream.models.predictor import ForecastModel, load_forecast_model
from microstream.models.registry import latest_model, save_model

S = 1_000_000_000


def test_splits_are_time_ordered_with_gap_and_no_overlap() -> None:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.choice(np.arange(5000) * S, size=3000, replace=False))
    ts = np.concatenate([ts, ts[:500]])  # a second symbol at the same times
    rng.shuffle(ts)
    folds = walk_forward_splits(ts, n_folds=5, gap_ns=10 * S)
    assert len(folds) == 5
    seen_test: set[int] = set()
    for fold in folds:
        assert not set(fold.train.tolist()) & set(fold.test.tolist())
        assert ts[fold.train].max() + 10 * S < ts[fold.test].min()
        assert not seen_test & set(fold.test.tolist())
        seen_test |= set(fold.test.tolist())
    # expanding window
    sizes = [len(f.train) for f in folds]
    assert sizes == sorted(sizes)


def test_too_little_data_is_an_error() -> None:
    with pytest.raises(MicroStreamError):
        walk_forward_splits(np.arange(10) * S, n_folds=3, gap_ns=10 * S)


def test_metrics_on_hand_computed_cases() -> None:
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.3, 0.4, 0.3]])
    assert log_loss(y, p) == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.3, 0.4])))
    assert accuracy(y, p) == 0.75
    expected_brier = np.mean(
        [0.09 + 0.04 + 0.01, 0.01 + 0.04 + 0.01, 0.04 + 0.25 + 0.49, 0.09 + 0.36 + 0.09]
    )
    assert brier(y, p) == pytest.approx(expected_brier)
    # per class F1: up 1.0, neutral 2/3·... compute: predicted [0,1,1,1]
    f1_up, f1_neutral, f1_down = 1.0, 2 * (2 / 3) * 1.0 / (2 / 3 + 1.0), 0.0
    assert macro_f1(y, p) == pytest.approx((f1_up + f1_neutral + f1_down) / 3)
    perfect = np.eye(3)[y]
    assert ece(y, perfect) == pytest.approx(0.0)
    m = all_metrics(y, p)
    assert {"log_loss", "brier", "accuracy", "macro_f1", "ece", "confusion", "reliability"} <= set(
        m
    )


def test_baselines_use_the_training_fold_only() -> None:
    x_train = np.zeros((6, len(FEATURE_NAMES)))
    x_train[:3, FEATURE_NAMES.index("micro_dev_bps")] = 1.0
    y_train = np.array([0, 0, 0, 2, 2, 1])
    x_test = np.zeros((2, len(FEATURE_NAMES)))
    x_test[0, FEATURE_NAMES.index("micro_dev_bps")] = 5.0
    prior = baseline_probs("prior", x_train, y_train, x_test)
    np.testing.assert_allclose(prior[0], class_frequencies(y_train))
    np.testing.assert_allclose(prior[0], [4 / 9, 2 / 9, 3 / 9])
    sign = baseline_probs("sign_microprice", x_train, y_train, x_test)
    np.testing.assert_allclose(sign[0], [4 / 6, 1 / 6, 1 / 6])  # positive sign rows: all up
    np.testing.assert_allclose(sign[1], [1 / 6, 2 / 6, 3 / 6])
    neutral = baseline_probs("always_neutral", x_train, y_train, x_test)
    assert np.argmax(neutral[0]) == 1 or neutral[0][1] == pytest.approx(2 / 9)
    for name in BASELINES:
        assert baseline_probs(name, x_train, y_train, x_test).sum(axis=1) == pytest.approx(1.0)


def test_candidate_names_parse() -> None:
    assert parse_candidate("logistic_compact_c0.01+sigmoid")[2] == "sigmoid"
    assert parse_candidate("hgb")[1] == FEATURE_NAMES
    with pytest.raises(KeyError):
        parse_candidate("forest")


def test_selection_finds_the_synthetic_edge_and_fast_path_matches_sklearn() -> None:
    frame = pl.concat(
        [synthetic_features(900, seed=1), synthetic_features(900, seed=2, symbol="ETHUSDT")]
    )
    data = build_dataset(frame)
    folds = walk_forward_splits(data.ts, n_folds=3, gap_ns=10 * S)
    result = walk_forward(
        data, folds, 10, 1.0, candidates=("logistic_all_c1", "logistic_compact_c0.01")
    )
    losses = result.log_losses(data.y)
    best = select_best(result, data.y)
    assert best.startswith("logistic")
    assert losses[best] < losses["prior"] - 0.02  # the synthetic data has a real edge
    assert {"prior", "always_neutral", "sign_microprice", "sign_ofi"} <= set(losses)
    model = fit_candidate("logistic_compact_c0.01", data, 10, 1.0)
    fast = model.predict_proba(data.x)
    slow = model.estimator.predict_proba(data.x[:, model.columns])
    np.testing.assert_allclose(
        fast, np.clip(slow, 1e-6, None) / np.clip(slow, 1e-6, None).sum(1, keepdims=True), atol=1e-9
    )
    one = model.predict_proba_one(data.x[0])
    assert one == pytest.approx(tuple(fast[0]))
    clone = pickle.loads(pickle.dumps(model))
    assert clone.predict_proba_one(data.x[0]) == pytest.approx(one)
    timing = inference_micros(model, data.x, repeats=50)
    assert timing["median_us"] > 0


def test_fitting_is_deterministic() -> None:
    data = build_dataset(synthetic_features(600, seed=4))
    a = fit_candidate("logistic_all_c1", data, 10, 1.0).predict_proba(data.x)
    b = fit_candidate("logistic_all_c1", data, 10, 1.0).predict_proba(data.x)
    np.testing.assert_array_equal(a, b)


def test_calibrated_candidate_fits_and_predicts() -> None:
    data = build_dataset(synthetic_features(800, seed=6))
    model = fit_candidate("logistic_compact_c0.01+sigmoid", data, 10, 1.0)
    p = model.predict_proba(data.x[:20])
    assert p.shape == (20, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_a_future_row_cannot_change_a_past_prediction() -> None:
    from microstream.bus.protocol import Row
    from microstream.models.predictor import DirectionForecaster

    frame = synthetic_features(300, seed=8)
    model = fit_candidate("logistic_all_c1", build_dataset(frame), 10, 1.0)
    rows = list(frame.iter_rows(named=True))

    def run(rows_in: list[dict[str, object]]) -> list[object]:
        out: list[Row] = []
        forecaster = DirectionForecaster("binance", "BTCUSDT", out.append, model, 10, 1.0)
        for values in rows_in:
            forecaster.on_features(values)
        return [r.values["p_up"] for r in out]

    changed = [dict(r, mid=(r["mid"] or 1.0) * 2, ofi_10s=1e6) for r in rows[200:]]
    assert run(rows)[:200] == run(rows[:200] + changed)[:200]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibrated_fast_path_matches_sklearn(method: str) -> None:
    data = build_dataset(synthetic_features(800, seed=9))
    model = fit_candidate(f"logistic_compact_c0.01+{method}", data, 10, 1.0)
    assert model._fast is not None
    slow = model.estimator.predict_proba(data.x[:, model.columns])
    slow = np.clip(slow, 1e-6, None)
    slow = slow / slow.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict_proba(data.x), slow, atol=1e-9)
    one = model.predict_proba_one(data.x[3])
    assert one == pytest.approx(tuple(slow[3]), abs=1e-9)


def test_mirrored_rows_flip_signed_inputs_and_swap_up_down() -> None:
    features = ("micro_dev_bps", "vol_1m_bps", "recent_up_logshare", "recent_down_logshare")
    x = np.array([[1.5, 3.0, -0.5, -2.0]])
    xm, ym = mirrored(x, np.array([0]), features)
    np.testing.assert_array_equal(xm, [[1.5, 3.0, -0.5, -2.0], [-1.5, 3.0, -2.0, -0.5]])
    assert ym.tolist() == [0, 2]
    assert mirrored(x, np.array([1]), features)[1].tolist() == [1, 1]


def test_symmetric_candidate_is_uniform_at_the_centre_and_mirror_symmetric() -> None:
    frame = synthetic_features(900, seed=12)
    data = build_dataset(frame)
    model = fit_candidate("symlogistic_book_c0.01", data, 10, 1.0)
    assert model.used_features == BOOK_FEATURES
    assert model._fast is not None  # numpy fast path, as the plain logistic
    centre = np.zeros(len(FEATURE_NAMES))
    assert model.predict_proba_one(centre) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    x = data.x[:50]
    flipped = x.copy()
    for name in BOOK_FEATURES:
        flipped[:, FEATURE_NAMES.index(name)] *= -1
    p, q = model.predict_proba(x), model.predict_proba(flipped)
    np.testing.assert_allclose(p[:, [2, 1, 0]], q, atol=1e-9)
    # it still finds the synthetic edge: up is more likely when the book leans up
    lean = centre.copy()
    lean[FEATURE_NAMES.index("imbalance_l1")] = 0.8
    up, _, down = model.predict_proba_one(lean)
    assert up > down


def test_a_model_saved_with_the_older_input_layout_still_loads(tmp_path: Path) -> None:
    old_names = FEATURE_NAMES[:12]  # the layout before the resolved-label inputs
    data = build_dataset(synthetic_features(600, seed=13))
    fitted = fit_candidate("logistic_compact_c0.01", data, 10, 1.0)
    old = ForecastModel(
        fitted.estimator, "logistic_compact_c0.01", old_names, 10, 1.0, fitted.used_features
    )
    expected = old.predict_proba(data.x[:20, :12])
    save_model(old, tmp_path, "forecast", "logistic", {"feature_names": list(old_names)})
    loaded = load_forecast_model(str(latest_model(tmp_path, "forecast")))
    assert loaded.feature_names == FEATURE_NAMES
    np.testing.assert_allclose(loaded.predict_proba(data.x[:20]), expected)
    unknown = ForecastModel(fitted.estimator, "x", ("a", "b", "c", "d", "e"), 10, 1.0)
    save_model(unknown, tmp_path, "forecast", "logistic", {})
    with pytest.raises(ModelError):
        load_forecast_model(str(latest_model(tmp_path, "forecast")))


def test_a_model_with_another_horizon_restarts_the_resolved_label_inputs() -> None:
    from microstream.bus.protocol import Row
    from microstream.models.predictor import DirectionForecaster

    data = build_dataset(synthetic_features(400, seed=14), horizon_s=5.0, threshold_bps=0.5)
    model = fit_candidate("symlogistic_book_c0.01", data, 5.0, 0.5)
    out: list[Row] = []
    forecaster = DirectionForecaster("binance", "BTCUSDT", out.append, None, 10, 1.0)
    assert forecaster.inputs.horizon_s == 10
    forecaster.set_model(model)
    assert (forecaster.inputs.horizon_s, forecaster.inputs.threshold_bps) == (5.0, 0.5)


def test_log_loss_margin_sign_and_interval() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 600)
    good = np.full((600, 3), 0.2)
    good[np.arange(600), y] = 0.6
    uniform = np.full((600, 3), 1 / 3)
    m = log_loss_margin(y, good, uniform)
    assert m["diff"] == pytest.approx(log_loss(y, good) - log_loss(y, uniform))
    assert m["lo"] <= m["diff"] <= m["hi"] < 0 and m["p_not_better"] == 0.0
    same = log_loss_margin(y, uniform, uniform)
    assert same["diff"] == 0.0 and same["lo"] == 0.0 and same["hi"] == 0.0
    assert log_loss_margin(y, good, uniform) == m  # fixed seed: reproducible


def test_report_says_when_the_margin_over_the_hindsight_prior_is_noise() -> None:
    from microstream.evaluation.forecast_eval import ORACLE
    from microstream.evaluation.report import margin_text, noise_only

    verdict = {
        "model_log_loss": 1.07,
        "beats": {ORACLE: True, "uniform": True},
        "margins": {
            ORACLE: {"diff": -0.002, "lo": -0.04, "hi": 0.03, "p_not_better": 0.4},
            "uniform": {"diff": -0.02, "lo": -0.03, "hi": -0.004, "p_not_better": 0.01},
        },
    }
    assert noise_only(verdict)
    assert "not a demonstrated edge" in margin_text(verdict)
    verdict["margins"][ORACLE]["hi"] = -0.001
    assert not noise_only(verdict)
    assert "not a demonstrated edge" not in margin_text(verdict)
