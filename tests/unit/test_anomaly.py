"""Isolation Forest anomalies: sign convention, contamination share, warm-up."""

from __future__ import annotations

import numpy as np
import pytest

from microstream.errors import ModelError
from microstream.models.anomaly import AnomalyForest, OnlineAnomaly
from microstream.models.fitting import RefitPolicy


def features(n: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 3))


def test_contamination_share_on_training_data_is_five_percent() -> None:
    x = features(1000)
    forest = AnomalyForest.fit(x, contamination=0.05, random_state=0)
    share = float((forest.scores(x) > 0).mean())
    assert share == pytest.approx(0.05, abs=0.01)


def test_higher_score_means_more_anomalous() -> None:
    x = features(500)
    forest = AnomalyForest.fit(x, random_state=0)
    centre = forest.score((0.0, 0.0, 0.0))
    far = forest.score((6.0, -6.0, 6.0))
    assert far > 0.0 > centre
    assert far > centre


def test_seeded_fit_is_reproducible_and_round_trips() -> None:
    x = features(300)
    a = AnomalyForest.fit(x, random_state=3)
    b = AnomalyForest.from_bytes(AnomalyForest.fit(x, random_state=3).to_bytes())
    np.testing.assert_array_equal(a.scores(x), b.scores(x))
    with pytest.raises(ModelError):
        AnomalyForest.from_bytes(b"\x80garbage")


def test_online_warmup_and_refits_are_visible() -> None:
    x = features(120)
    online = OnlineAnomaly(0.05, RefitPolicy(warmup=40, refit_every=30, window=60), 0)
    outs = [online.update(tuple(row), ts=i) for i, row in enumerate(x)]
    assert outs[0].anomaly is None and outs[0].status == "warming_up 1/40"
    assert outs[39].status == "fitted" and outs[39].version == 1
    assert isinstance(outs[39].anomaly, bool) and outs[39].score is not None
    assert [i for i, o in enumerate(outs) if o.status == "refitted"] == [69, 99]
    assert outs[100].status == "ready" and outs[100].fitted_at == 99
    assert outs[100].train_rows == 60


def test_too_few_rows_is_a_model_error() -> None:
    with pytest.raises(ModelError):
        AnomalyForest.fit(features(5))
    with pytest.raises(ModelError):
        AnomalyForest.fit(np.full((50, 3), np.nan))


def test_single_vector_score_equals_scikit_learn() -> None:
    x = features(400)
    forest = AnomalyForest.fit(x, random_state=1)
    probe = np.vstack([features(200, seed=9) * 3, [[0, 0, 0], [50, -50, 50], [1e-9, 2, -3]]])
    fast = np.array([forest.score(tuple(row)) for row in probe])
    np.testing.assert_allclose(fast, forest.scores(probe), rtol=0, atol=1e-12)
    back = AnomalyForest.from_bytes(forest.to_bytes())
    assert back.score(tuple(probe[0])) == forest.score(tuple(probe[0]))
