"""Model selection by walk-forward out-of-sample log-loss.

Candidates, in order: multinomial logistic regression on standardised inputs
(all inputs, or the compact set :data:`COMPACT_FEATURES`: book pressure, order
flow and volatility), then a small gradient-boosted tree model
(``HistGradientBoostingClassifier``), then the best of those calibrated
(sigmoid or isotonic, :class:`~sklearn.calibration.CalibratedClassifierCV` on
a frozen base model): the base is fitted on the first 75 % of the training
fold (in time), the calibrator on the rest after a gap of one horizon. A
calibrated variant is kept only if it lowers the pooled out-of-sample
log-loss. All seeds are fixed.

The *symmetric* logistic candidates (``symlogistic_*``) are fitted without
intercepts on the training rows plus their mirror images (every signed input
negated — book pressure, order flow, returns, VWAP deviation — the
``recent_up``/``recent_down`` inputs swapped, and up/down labels swapped). At
average inputs they predict exactly 1/3 for each class and all they learn is a
tilt that is symmetric in up and down. The reason: the class mix of a session
(how often the mid stays within ±θ, and whether it drifts up or down) changes
from session to session, so an intercept fitted to the training rows' class
prior costs more out of sample than it gains.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from microstream.evaluation.baselines import BASELINES, baseline_probs
from microstream.evaluation.dataset import Dataset
from microstream.evaluation.metrics import log_loss
from microstream.evaluation.walkforward import Fold
from microstream.models.forecast_features import FEATURE_NAMES
from microstream.models.predictor import ForecastModel

log = logging.getLogger(__name__)

SEED = 7
CALIBRATION_SHARE = 0.25
COMPACT_FEATURES = ("micro_dev_bps", "imbalance_l1", "imbalance_l5", "ofi_z", "vol_1m_bps")
"""A small input set chosen for being venue-neutral: no spread, no returns, no VWAP."""
BOOK_FEATURES = ("micro_dev_bps", "imbalance_l1", "imbalance_l5", "ofi_z")
"""Book pressure and order flow only: the signed inputs of the compact set."""
RESOLVED_FEATURES = (*BOOK_FEATURES, "recent_neutral_logshare", "recent_move_bps")
"""Book pressure plus what the already-resolved labels say about the neutral share."""
SIGNED_FEATURES = frozenset(
    {
        "micro_dev_bps",
        "imbalance_l1",
        "imbalance_l5",
        "ofi_z",
        "flow_imbalance_1m",
        "ret_1s",
        "ret_5s",
        "ret_10s",
        "vwap_dev_bps",
    }
)
"""Inputs whose sign flips when the market is mirrored (up <-> down)."""
SWAPPED_FEATURES = {
    "recent_up_logshare": "recent_down_logshare",
    "recent_down_logshare": "recent_up_logshare",
}
"""Inputs that trade places when the market is mirrored."""
BASE_CANDIDATES = (
    "logistic_all_c1",
    "logistic_all_c0.01",
    "logistic_compact_c0.01",
    "symlogistic_book_c0.003",
    "symlogistic_book_c0.01",
    "symlogistic_compact_c0.003",
    "symlogistic_resolved_c0.003",
    "hgb_compact",
)
CALIBRATIONS = ("sigmoid", "isotonic")


def _logistic(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=c, max_iter=2000, random_state=SEED)),
        ]
    )


def _logistic_no_intercept(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            (
                "clf",
                LogisticRegression(C=c, max_iter=2000, random_state=SEED, fit_intercept=False),
            ),
        ]
    )


def mirrored(
    x: np.ndarray, y: np.ndarray, features: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``x`` (columns ``features``) and labels ``y`` followed by their mirror images.

    The mirror of a row negates :data:`SIGNED_FEATURES`, swaps
    :data:`SWAPPED_FEATURES` and swaps the up/down labels (codes 0 and 2).
    """
    mirror = x.copy()
    for j, name in enumerate(features):
        if name in SIGNED_FEATURES:
            mirror[:, j] = -x[:, j]
        partner = SWAPPED_FEATURES.get(name)
        if partner is not None and partner in features:
            mirror[:, j] = x[:, features.index(partner)]
    y_mirror = np.array([2, 1, 0], dtype=np.int64)[np.asarray(y, dtype=np.int64)]
    return np.vstack([x, mirror]), np.concatenate([np.asarray(y, dtype=np.int64), y_mirror])


def _hgb() -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.05,
        max_depth=3,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=SEED,
    )


_FACTORIES: dict[str, Callable[[], Any]] = {
    "logistic_c1": lambda: _logistic(1.0),
    "logistic_c0.01": lambda: _logistic(0.01),
    "symlogistic_c0.003": lambda: _logistic_no_intercept(0.003),
    "symlogistic_c0.01": lambda: _logistic_no_intercept(0.01),
    "hgb": _hgb,
}
_FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": FEATURE_NAMES,
    "compact": COMPACT_FEATURES,
    "book": BOOK_FEATURES,
    "resolved": RESOLVED_FEATURES,
}


def parse_candidate(name: str) -> tuple[str, tuple[str, ...], str | None]:
    """``"logistic_compact_c0.01+sigmoid"`` -> (estimator key, inputs, calibration)."""
    base, _, method = name.partition("+")
    parts = base.split("_")
    features = FEATURE_NAMES
    if len(parts) > 1 and parts[1] in _FEATURE_SETS:
        features = _FEATURE_SETS[parts.pop(1)]
    key = "_".join(parts)
    if key not in _FACTORIES or (method and method not in CALIBRATIONS):
        raise KeyError(f"unknown candidate {name!r}")
    return key, features, method or None


def _fit_base(name: str, x: np.ndarray, y: np.ndarray, features: tuple[str, ...]) -> Any:
    estimator = _FACTORIES[name]()
    if name.startswith("sym"):
        x, y = mirrored(x, y, features)
    estimator.fit(x, y)
    return estimator


def _fit_calibrated(
    base_name: str,
    method: str,
    x: np.ndarray,
    y: np.ndarray,
    ts: np.ndarray,
    gap_ns: int,
    features: tuple[str, ...],
) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    order = np.argsort(ts, kind="stable")
    cut_ts = ts[order[int(len(order) * (1 - CALIBRATION_SHARE))]]
    fit_idx = np.flatnonzero(ts < cut_ts - gap_ns)
    cal_idx = np.flatnonzero(ts >= cut_ts)
    if len(fit_idx) < 30 or len(cal_idx) < 30 or len(np.unique(y[cal_idx])) < 2:
        raise ValueError("too few rows to calibrate")
    base = _fit_base(base_name, x[fit_idx], y[fit_idx], features)
    calibrated = CalibratedClassifierCV(FrozenEstimator(base), method=method)
    calibrated.fit(x[cal_idx], y[cal_idx])
    return calibrated


def fit_candidate(
    name: str,
    data: Dataset,
    horizon_s: float,
    threshold_bps: float,
) -> ForecastModel:
    """Fit candidate ``name`` (``logistic_c1``, ``hgb+sigmoid``, ...) on ``data``."""
    gap_ns = int(horizon_s * 1e9)
    key, features, method = parse_candidate(name)
    x = data.x[:, [FEATURE_NAMES.index(f) for f in features]]
    if method is not None:
        est = _fit_calibrated(key, method, x, data.y, data.ts, gap_ns, features)
    else:
        est = _fit_base(key, x, data.y, features)
    return ForecastModel(est, name, FEATURE_NAMES, horizon_s, threshold_bps, features)


@dataclass
class WalkForwardResult:
    """Out-of-sample probabilities of every candidate and baseline, fold by fold.

    Attributes:
        test_idx: indices into the dataset of the pooled test rows (fold order).
        fold_of: fold number of each pooled test row.
        probs: ``name -> (n_test, 3)`` out-of-sample probabilities.
        failed: candidates that could not be fitted on some fold, with why.
    """

    test_idx: np.ndarray
    fold_of: np.ndarray
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    fit_seconds: dict[str, float] = field(default_factory=dict)

    def log_losses(self, y: np.ndarray) -> dict[str, float]:
        """Pooled out-of-sample log-loss of each forecast on ``y[test_idx]``."""
        y_test = y[self.test_idx]
        return {name: log_loss(y_test, p) for name, p in self.probs.items()}


def _run_candidate(
    name: str, data: Dataset, folds: list[Fold], horizon_s: float, threshold_bps: float
) -> np.ndarray:
    parts = []
    for fold in folds:
        model = fit_candidate(name, data.subset(fold.train), horizon_s, threshold_bps)
        parts.append(model.predict_proba(data.x[fold.test]))
    return np.concatenate(parts)


def walk_forward(
    data: Dataset,
    folds: list[Fold],
    horizon_s: float,
    threshold_bps: float,
    candidates: tuple[str, ...] = BASE_CANDIDATES,
    calibrate: bool = True,
) -> WalkForwardResult:
    """Out-of-sample probabilities of the candidates, calibrations and baselines."""
    test_idx = np.concatenate([f.test for f in folds])
    fold_of = np.concatenate([np.full(len(f.test), f.index) for f in folds])
    result = WalkForwardResult(test_idx, fold_of)
    for name in BASELINES:
        result.probs[name] = np.concatenate(
            [baseline_probs(name, data.x[f.train], data.y[f.train], data.x[f.test]) for f in folds]
        )
    names = list(candidates)
    for name in names:
        _try(result, name, data, folds, horizon_s, threshold_bps)
    if calibrate:
        model_losses = {n: v for n, v in result.log_losses(data.y).items() if n in candidates}
        if model_losses:
            best = min(model_losses, key=lambda n: model_losses[n])
            for method in CALIBRATIONS:
                _try(result, f"{best}+{method}", data, folds, horizon_s, threshold_bps)
    return result


def _try(
    result: WalkForwardResult,
    name: str,
    data: Dataset,
    folds: list[Fold],
    horizon_s: float,
    threshold_bps: float,
) -> None:
    start = time.perf_counter()
    try:
        result.probs[name] = _run_candidate(name, data, folds, horizon_s, threshold_bps)
    except ValueError as exc:
        result.failed[name] = str(exc)
        log.warning("candidate %s failed: %s", name, exc)
    result.fit_seconds[name] = time.perf_counter() - start


def select_best(result: WalkForwardResult, y: np.ndarray) -> str:
    """The model candidate (not a baseline) with the lowest pooled OOS log-loss."""
    losses = {n: v for n, v in result.log_losses(y).items() if n not in BASELINES}
    return min(losses, key=lambda n: losses[n])


def inference_micros(
    model: ForecastModel, x: np.ndarray, repeats: int = 2000, budget_s: float = 2.0
) -> dict[str, float]:
    """Measured time of one ``predict_proba_one`` call (µs: median, p99) over rows of ``x``.

    Stops after ``repeats`` calls or ``budget_s`` seconds, whichever comes first
    (at least 10 calls).
    """
    rows = x[np.arange(repeats) % len(x)]
    times: list[int] = []
    deadline = time.perf_counter() + budget_s
    for i in range(repeats):
        start = time.perf_counter_ns()
        model.predict_proba_one(rows[i])
        times.append(time.perf_counter_ns() - start)
        if i >= 9 and time.perf_counter() > deadline:
            break
    arr = np.array(times, dtype=np.float64)
    return {
        "median_us": float(np.median(arr) / 1e3),
        "p99_us": float(np.percentile(arr, 99) / 1e3),
        "calls": float(len(arr)),
    }
