"""Baseline forecasts, each fitted on the training fold only.

Every baseline gives probabilities, so it can be scored with log-loss:

- ``uniform``: 1/3 for each class (needs no data at all; the reference the
  symmetric candidates start from);
- ``prior``: the training fold's class frequencies, the same for every row;
- ``always_neutral``: argmax ``neutral``; as probabilities, ``neutral`` gets the
  training fold's neutral share and ``up``/``down`` split the rest evenly;
- ``sign_microprice``: the sign of ``microprice − mid`` (−1, 0, +1), mapped to
  probabilities by a 1-D calibration on the training fold: the class
  frequencies among training rows with the same sign;
- ``sign_ofi``: the same with the sign of ``ofi_10s``.

All frequencies are Laplace-smoothed (``(count + 1) / (n + 3)``). The
``prior (evaluated rows)`` reference of the report is different: the class
frequencies of the test rows themselves, known only in hindsight.
"""

from __future__ import annotations

import numpy as np

from microstream.models.forecast_features import FEATURE_NAMES

SIGN_FEATURES = {"sign_microprice": "micro_dev_bps", "sign_ofi": "ofi_z"}
BASELINES = ("uniform", "prior", "always_neutral", *SIGN_FEATURES)


def class_frequencies(y: np.ndarray) -> np.ndarray:
    """Laplace-smoothed class frequencies ``(3,)``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=3).astype(np.float64)
    out: np.ndarray = (counts + 1.0) / (counts.sum() + 3.0)
    return out


def _constant(p: np.ndarray, n: int) -> np.ndarray:
    return np.tile(p, (n, 1))


def _sign_calibrated(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    s_train, s_test = np.sign(x_train), np.sign(x_test)
    out = np.empty((len(x_test), 3))
    for s in (-1.0, 0.0, 1.0):
        freq = class_frequencies(y_train[s_train == s])
        out[s_test == s] = freq
    return out


def baseline_probs(
    name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> np.ndarray:
    """Probabilities ``(n_test, 3)`` of baseline ``name`` fitted on the training rows."""
    n = len(x_test)
    if name == "uniform":
        return np.full((n, 3), 1.0 / 3.0)
    prior = class_frequencies(y_train)
    if name == "prior":
        return _constant(prior, n)
    if name == "always_neutral":
        rest = (1.0 - prior[1]) / 2
        return _constant(np.array([rest, prior[1], rest]), n)
    if name in SIGN_FEATURES:
        col = FEATURE_NAMES.index(SIGN_FEATURES[name])
        return _sign_calibrated(x_train[:, col], y_train, x_test[:, col])
    raise KeyError(f"unknown baseline {name!r}")
