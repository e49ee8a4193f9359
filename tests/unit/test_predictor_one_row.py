"""The forecast's one-row path (plain Python) equals its batch path (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from microstream.evaluation.dataset import build_dataset
from microstream.evaluation.selection import fit_candidate
from microstream.evaluation.synthetic import synthetic_features
from microstream.models.predictor import ForecastModel


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return build_dataset(synthetic_features(600, seed=13))


@pytest.mark.parametrize("name", ["logistic_all_c1", "logistic_compact_c0.01"])
def test_one_row_equals_the_batch(data, name: str) -> None:  # type: ignore[no-untyped-def]
    model = fit_candidate(name, data, 10, 1.0)
    assert model._fast is not None  # the linear path is what is being checked
    rng = np.random.default_rng(3)
    rows = np.vstack([data.x[:200], rng.normal(scale=50.0, size=(200, data.x.shape[1]))])
    batch = model.predict_proba(rows)
    for x, expected in zip(rows, batch, strict=True):
        got = model.predict_proba_one(list(x))
        assert math.isclose(sum(got), 1.0, rel_tol=1e-12)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_one_row_with_classes_missing_from_training(data) -> None:  # type: ignore[no-untyped-def]
    """A model fitted on two classes gives the third probability PROB_FLOOR, as the batch does."""
    model = fit_candidate("logistic_all_c1", data, 10, 1.0)
    two = data.y != 1
    from sklearn.base import clone

    estimator = clone(model.estimator).fit(data.x[two][:, model.columns], data.y[two])
    binary = ForecastModel(estimator, "binary", model.feature_names, 10, 1.0, model.used_features)
    assert binary.classes == [0, 2] and binary._fast is not None
    for x, expected in zip(data.x[:50], binary.predict_proba(data.x[:50]), strict=True):
        np.testing.assert_allclose(binary.predict_proba_one(list(x)), expected, rtol=1e-9)


def test_one_row_with_nan_input_is_not_finite(data) -> None:  # type: ignore[no-untyped-def]
    model = fit_candidate("logistic_all_c1", data, 10, 1.0)
    x = list(data.x[0])
    x[int(model.columns[0])] = math.nan
    assert not all(math.isfinite(p) for p in model.predict_proba_one(x))
