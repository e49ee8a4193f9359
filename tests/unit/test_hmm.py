"""Gaussian HMM: state naming, causal filtering, warm-up and refits."""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn.hmm import GaussianHMM as HmmLearn

from microstream.errors import ModelError
from microstream.models.fitting import RefitPolicy
from microstream.models.hmm import (
    BEARISH_EXTREME,
    BULLISH_EXTREME,
    NORMAL,
    GaussianHMM,
    OnlineHMM,
    name_states,
)


def regime_data(n: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Sticky 3-state chain; momentum mean -2 / 0 / +2 by state."""
    rng = np.random.default_rng(seed)
    states = np.empty(n, dtype=int)
    s = 0
    for i in range(n):
        if rng.random() < 0.05:
            s = int(rng.integers(0, 3))
        states[i] = s
    momentum_means = np.array([0.0, 2.0, -2.0])
    x = rng.normal(0, 0.5, (n, 3))
    x[:, 0] += momentum_means[states]
    x[:, 1] += np.abs(momentum_means[states]) * 0.5
    return x, states


def test_states_named_by_mean_momentum() -> None:
    means = np.array([[0.1, 0, 0], [-3.0, 1, 0], [2.5, 0, 1]])
    assert name_states(means) == (NORMAL, BEARISH_EXTREME, BULLISH_EXTREME)
    means4 = np.array([[0.1, 0, 0], [-3.0, 1, 0], [2.5, 0, 1], [0.5, 0, 0]])
    assert name_states(means4) == (NORMAL, BEARISH_EXTREME, BULLISH_EXTREME, NORMAL)


def test_fit_recovers_the_named_regimes() -> None:
    x, states = regime_data(600)
    model = GaussianHMM.fit(x, 3, random_state=0)
    probs = model.filter(x)
    names = np.array([model.names[i] for i in probs.argmax(axis=1)])
    truth = np.array([(NORMAL, BULLISH_EXTREME, BEARISH_EXTREME)[s] for s in states])
    assert (names == truth).mean() > 0.9
    assert model.transmat.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_fit_is_deterministic() -> None:
    x, _ = regime_data(300)
    a = GaussianHMM.fit(x, 3, random_state=7)
    b = GaussianHMM.fit(x, 3, random_state=7)
    np.testing.assert_array_equal(a.means, b.means)
    np.testing.assert_array_equal(a.transmat, b.transmat)


def test_filter_equals_the_last_smoothed_posterior_of_each_prefix() -> None:
    """P(s_t | x_1..t) is hmmlearn's posterior of the last row of the prefix x_1..t."""
    x, _ = regime_data(120)
    model = GaussianHMM.fit(x, 3, random_state=0)
    ref = HmmLearn(n_components=3, covariance_type="full")
    ref.startprob_, ref.transmat_ = model.startprob, model.transmat
    ref.means_, ref.covars_ = model.means, model.covars
    filtered = model.filter(x)
    for t in (0, 1, 5, 40, 119):
        expected = ref.predict_proba(x[: t + 1])[-1]
        np.testing.assert_allclose(filtered[t], expected, atol=1e-8)


def test_appending_future_bars_never_changes_past_outputs() -> None:
    x, _ = regime_data(200)
    policy = RefitPolicy(warmup=60, refit_every=40, window=120)

    def run(rows: np.ndarray) -> list[tuple[object, ...]]:
        online = OnlineHMM(3, policy, random_state=0)
        out = []
        for i, row in enumerate(rows):
            o = online.update(tuple(row), ts=i)
            out.append((o.state, o.confidence, o.status, o.version))
        return out

    short = run(x[:130])
    long = run(x)
    assert long[:130] == short
    # the prefix crossed the warm-up and several refits
    assert {s[2] for s in short} >= {"fitted", "refitted", "ready"}


def test_warmup_then_fit_then_periodic_refits() -> None:
    x, _ = regime_data(200)
    online = OnlineHMM(3, RefitPolicy(warmup=50, refit_every=40, window=100), random_state=0)
    outs = [online.update(tuple(row), ts=i * 60) for i, row in enumerate(x)]
    assert outs[0].state is None and outs[0].status == "warming_up 1/50"
    assert outs[48].state is None and outs[48].status == "warming_up 49/50"
    assert outs[49].status == "fitted" and outs[49].version == 1
    assert outs[49].fitted_at == 49 * 60 and outs[49].train_rows == 50
    assert outs[49].state in (NORMAL, BULLISH_EXTREME, BEARISH_EXTREME)
    assert outs[50].status == "ready"
    refits = [i for i, o in enumerate(outs) if o.status == "refitted"]
    assert refits == [89, 129, 169]
    assert outs[169].version == 4 and outs[169].train_rows == 100
    for o in outs[49:]:
        assert o.confidence is not None and 0.0 < o.confidence <= 1.0
        assert o.confidence == pytest.approx(max(o.probabilities.values()))


def test_pretrained_model_is_used_from_the_first_vector() -> None:
    x, _ = regime_data(300)
    model = GaussianHMM.fit(x, 3, random_state=0)
    online = OnlineHMM(3, RefitPolicy(warmup=50, refit_every=0), model=model, model_version=4)
    out = online.update(tuple(x[0]), ts=0)
    assert out.status == "pretrained" and out.version == 4 and out.state is not None


def test_bytes_round_trip_and_bad_bytes() -> None:
    x, _ = regime_data(200)
    model = GaussianHMM.fit(x, 3, random_state=0)
    back = GaussianHMM.from_bytes(model.to_bytes())
    np.testing.assert_allclose(back.filter(x[:20]), model.filter(x[:20]))
    assert back.names == model.names
    with pytest.raises(ModelError):
        GaussianHMM.from_bytes(b"not a pickle")


def test_degenerate_training_data_is_a_failed_fit_not_a_crash() -> None:
    online = OnlineHMM(3, RefitPolicy(warmup=10, refit_every=5, window=20), random_state=0)
    outs = [online.update((0.0, 0.0, 0.0), ts=i) for i in range(30)]
    assert all(o.state is None or o.confidence is not None for o in outs)
    assert any(o.status in ("fit_failed", "fitted", "refitted", "ready") for o in outs)
