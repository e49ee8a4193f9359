"""The 5-10 s direction forecast: a fitted model and its live pipeline stage.

:class:`ForecastModel` wraps a fitted scikit-learn classifier (class codes 0,
1, 2 = up, neutral, down) with the feature names, horizon and threshold it was
trained for. For a standardised multinomial logistic regression (calibrated
or not) it keeps the coefficients and predicts one row with plain numpy (a few
microseconds), not through scikit-learn's per-call validation (milliseconds).

:class:`DirectionForecaster` is the per-symbol stage: it turns each
``features`` row into forecast inputs (:mod:`microstream.models.forecast_features`)
and emits a ``predictions`` row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from microstream.bus.protocol import Row
from microstream.errors import ModelError
from microstream.models.forecast_features import FEATURE_NAMES, ForecastFeatures
from microstream.models.labels import CLASSES
from microstream.models.registry import ModelMeta, load_model

log = logging.getLogger(__name__)

PROB_FLOOR = 1e-6
"""Probabilities are clipped to at least this and renormalised (finite log-loss)."""

Probs = tuple[float, float, float]


def _normalise(p: np.ndarray) -> np.ndarray:
    """Clip rows to PROB_FLOOR and renormalise them to sum to 1."""
    clipped = np.clip(p, PROB_FLOOR, None)
    out: np.ndarray = clipped / clipped.sum(axis=-1, keepdims=True)
    return out


class _LinearFastPath:
    """``softmax(((x - mean) / scale) @ coef.T + intercept)`` for a fitted pipeline."""

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray
    ) -> None:
        self.mean = mean
        self.scale = scale
        self.coef = coef
        self.intercept = intercept
        # the same model as plain floats: one row costs a few microseconds in
        # Python, where numpy's per-call overhead alone is ten times that
        self._mean = [float(v) for v in mean]
        self._scale = [float(v) for v in scale]
        self._rows = [
            ([float(w) for w in coef[k]], float(intercept[k])) for k in range(coef.shape[0])
        ]

    def one(self, x: Sequence[float]) -> list[float]:
        """Probabilities of one input row (per fitted class), without numpy."""
        z = [(v - m) / s for v, m, s in zip(x, self._mean, self._scale, strict=True)]
        logits = [b + sum([w * v for w, v in zip(ws, z, strict=True)]) for ws, b in self._rows]
        if len(logits) == 1:  # binary logistic regression: one logit
            logits = [0.0, logits[0]]
        top = max(logits)
        e = [math.exp(v - top) for v in logits]
        total = sum(e)
        return [v / total for v in e]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        if z.shape[-1] == 1:  # binary logistic regression: one logit
            z = np.concatenate([np.zeros_like(z), z], axis=-1)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
        return out


def _linear_fast_path(estimator: Any) -> _LinearFastPath | None:
    """The numpy fast path of ``Pipeline(StandardScaler, LogisticRegression)``, if it is one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(estimator, Pipeline) or len(estimator.steps) != 2:
        return None
    scaler, clf = estimator.steps[0][1], estimator.steps[1][1]
    if not isinstance(scaler, StandardScaler) or not isinstance(clf, LogisticRegression):
        return None
    mean = np.asarray(scaler.mean_, dtype=np.float64)
    scale = np.asarray(scaler.scale_, dtype=np.float64)
    coef = np.asarray(clf.coef_, dtype=np.float64)
    intercept = np.asarray(clf.intercept_, dtype=np.float64)
    return _LinearFastPath(mean, scale, coef, intercept)


class _CalibratedFastPath:
    """Numpy twin of ``CalibratedClassifierCV(FrozenEstimator(scaler + logistic))``.

    One-vs-rest calibration of the logistic decision function per class
    (sigmoid: ``1 / (1 + exp(a·z + b))``; isotonic: piecewise-linear, clipped),
    then normalised, exactly as scikit-learn does it.
    """

    def __init__(self, linear: _LinearFastPath, method: str, params: list[np.ndarray]) -> None:
        self.linear = linear
        self.method = method
        self.params = params

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.linear.mean) / self.linear.scale) @ self.linear.coef.T
        z = z + self.linear.intercept
        proba = np.empty_like(z)
        for k, param in enumerate(self.params):
            if self.method == "sigmoid":
                proba[:, k] = 1.0 / (1.0 + np.exp(param[0] * z[:, k] + param[1]))
            else:
                proba[:, k] = np.interp(z[:, k], param[0], param[1])
        total = proba.sum(axis=1, keepdims=True)
        out: np.ndarray = np.divide(
            proba, total, out=np.full_like(proba, 1 / proba.shape[1]), where=total != 0
        )
        return out


def _calibrated_fast_path(estimator: Any) -> _CalibratedFastPath | None:
    """The numpy fast path of a calibrated, frozen logistic pipeline, if it is one."""
    from sklearn.calibration import CalibratedClassifierCV

    if not isinstance(estimator, CalibratedClassifierCV):
        return None
    fitted = getattr(estimator, "calibrated_classifiers_", [])
    if len(fitted) != 1 or fitted[0].method not in ("sigmoid", "isotonic"):
        return None
    inner = fitted[0]
    base = getattr(inner.estimator, "estimator", inner.estimator)  # unwrap FrozenEstimator
    linear = _linear_fast_path(base)
    classes = [int(c) for c in getattr(base, "classes_", [])]
    if linear is None or linear.coef.shape[0] != 3 or classes != [0, 1, 2]:
        return None
    if [int(c) for c in inner.classes] != [0, 1, 2]:
        return None
    params: list[np.ndarray] = []
    for cal in inner.calibrators:
        if inner.method == "sigmoid":
            params.append(np.array([float(cal.a_), float(cal.b_)]))
        else:
            params.append(np.vstack([cal.X_thresholds_, cal.y_thresholds_]))
    return _CalibratedFastPath(linear, inner.method, params)


def _fast_path(estimator: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    return _linear_fast_path(estimator) or _calibrated_fast_path(estimator)


class ForecastModel:
    """A fitted direction classifier with what it needs to be used safely.

    Attributes:
        estimator: a fitted scikit-learn classifier over class codes 0/1/2.
        kind: short description (``logistic``, ``hgb``, ``logistic+isotonic``...).
        feature_names: the input order (:data:`FEATURE_NAMES`; a model saved with an
            older layout is re-mapped on load when the inputs it uses still exist).
        horizon_s / threshold_bps: the label definition it was trained for.
        used_features: the inputs the estimator sees (a subset of ``feature_names``).
        tag: ``name@version`` once loaded from the registry.
    """

    def __init__(
        self,
        estimator: Any,
        kind: str,
        feature_names: Sequence[str] = FEATURE_NAMES,
        horizon_s: float = 10.0,
        threshold_bps: float = 1.0,
        used_features: Sequence[str] | None = None,
    ) -> None:
        self.estimator = estimator
        self.kind = kind
        self.feature_names = tuple(feature_names)
        self.used_features = tuple(used_features or feature_names)
        unknown = set(self.used_features) - set(self.feature_names)
        if unknown:
            raise ModelError(f"used_features not among the inputs: {sorted(unknown)}")
        self.columns = np.array([self.feature_names.index(n) for n in self.used_features])
        self.horizon_s = horizon_s
        self.threshold_bps = threshold_bps
        self.tag = f"forecast-{kind}@dev"
        self.classes = [int(c) for c in getattr(estimator, "classes_", [0, 1, 2])]
        self._fast = _fast_path(estimator)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fast = _fast_path(self.estimator)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fast"] = None
        return state

    def _full(self, p: np.ndarray) -> np.ndarray:
        """Expand per-fitted-class columns to the three classes (missing = 0)."""
        if p.shape[1] == len(CLASSES) and self.classes == [0, 1, 2]:
            return _normalise(p)
        full = np.zeros((p.shape[0], len(CLASSES)))
        for col, cls in enumerate(self.classes):
            full[:, cls] = p[:, col]
        return _normalise(full)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, 3)`` in ``(up, neutral, down)`` order for rows of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ModelError(
                f"expected {len(self.feature_names)} features per row, got shape {x.shape}"
            )
        x = x[:, self.columns]
        raw = self._fast(x) if self._fast is not None else self.estimator.predict_proba(x)
        return self._full(np.asarray(raw, dtype=np.float64))

    def predict_proba_one(self, x: Sequence[float] | np.ndarray) -> Probs:
        """``(p_up, p_neutral, p_down)`` for one input vector.

        A plain linear model is evaluated in plain Python (the same formula as
        :meth:`predict_proba`, equal to it up to rounding); others (calibrated,
        trees) go through :meth:`predict_proba`.
        """
        fast = self._fast
        if not isinstance(fast, _LinearFastPath) or len(x) != len(self.feature_names):
            p = self.predict_proba(np.asarray(x, dtype=np.float64).reshape(1, -1))[0]
            return float(p[0]), float(p[1]), float(p[2])
        per_class = fast.one([float(x[c]) for c in self.columns.tolist()])
        full = [0.0, 0.0, 0.0]
        for col, cls in enumerate(self.classes):
            full[cls] = per_class[col]
        clipped = [max(v, PROB_FLOOR) for v in full]  # a NaN stays NaN (callers check)
        total = clipped[0] + clipped[1] + clipped[2]
        return clipped[0] / total, clipped[1] / total, clipped[2] / total


def load_forecast_model(path: str) -> ForecastModel:
    """Load a :class:`ForecastModel` from the registry, checking kind and features."""
    obj, meta = load_model(path)
    return _checked(obj, meta)


def _checked(obj: Any, meta: ModelMeta) -> ForecastModel:
    if not isinstance(obj, ForecastModel):
        raise ModelError(f"{meta.tag} is a {type(obj).__name__}, not a ForecastModel")
    if tuple(obj.feature_names) != FEATURE_NAMES:
        missing = set(obj.used_features) - set(FEATURE_NAMES)
        if missing:
            raise ModelError(f"{meta.tag} was trained on other features: {sorted(missing)}")
        # an older input vector layout: the inputs it uses still exist, re-map them
        obj.feature_names = FEATURE_NAMES
        obj.columns = np.array([FEATURE_NAMES.index(n) for n in obj.used_features])
    obj.tag = meta.tag
    return obj


def argmax_label(probs: Probs) -> str:
    """The most probable class name."""
    return CLASSES[max(range(3), key=lambda i: probs[i])]


class DirectionForecaster:
    """Per-symbol stage: ``features`` row in, ``predictions`` row out.

    Probabilities and label are None when the row is invalid (book not valid,
    mid or book features missing) or when there is no model. The horizon and
    threshold written are the model's (a mismatch with the configured ones is
    logged once).
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        emit: Callable[[Row], None],
        model: ForecastModel | None,
        horizon_s: float = 10.0,
        threshold_bps: float = 1.0,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.emit = emit
        self.inputs = ForecastFeatures(horizon_s, threshold_bps)
        self.horizon_s = horizon_s
        self.threshold_bps = threshold_bps
        self.model: ForecastModel | None = None
        self.errors = 0
        self.last: dict[str, Any] | None = None
        self.set_model(model)

    def set_model(self, model: ForecastModel | None) -> None:
        """Swap the model; the streaming input state is kept.

        (Unless the new model has another horizon or threshold: the inputs built
        from already-resolved labels then start afresh with the model's.)
        """
        if model is not None and (
            model.horizon_s != self.horizon_s or model.threshold_bps != self.threshold_bps
        ):
            log.warning(
                "%s %s: model %s was trained for h=%ss θ=%sbps, configured h=%ss θ=%sbps; "
                "using the model's",
                self.exchange,
                self.symbol,
                model.tag,
                model.horizon_s,
                model.threshold_bps,
                self.horizon_s,
                self.threshold_bps,
            )
        if model is not None and (
            model.horizon_s != self.inputs.horizon_s
            or model.threshold_bps != self.inputs.threshold_bps
        ):
            # the resolved-label inputs depend on the label definition: start them afresh
            self.inputs = ForecastFeatures(model.horizon_s, model.threshold_bps)
        self.model = model

    @property
    def model_tag(self) -> str | None:
        """``name@version`` of the current model."""
        return self.model.tag if self.model is not None else None

    def on_features(self, values: Mapping[str, Any]) -> Probs | None:
        """Consume one features row; emit and return its prediction (None if null)."""
        x = self.inputs.update(values)
        probs: Probs | None = None
        if x is not None and self.model is not None:
            try:
                probs = self.model.predict_proba_one(x)
            except (ModelError, ValueError, FloatingPointError) as exc:
                self.errors += 1
                log.warning("%s %s: prediction failed: %s", self.exchange, self.symbol, exc)
            if probs is not None and not all(math.isfinite(p) for p in probs):
                self.errors += 1
                probs = None
        horizon = self.model.horizon_s if self.model is not None else self.horizon_s
        row = {
            "ts": int(values["ts"]),
            "horizon_s": float(horizon),
            "p_up": probs[0] if probs else None,
            "p_neutral": probs[1] if probs else None,
            "p_down": probs[2] if probs else None,
            "label": argmax_label(probs) if probs else None,
            "model": self.model_tag,
        }
        self.last = row
        self.emit(Row("predictions", self.exchange, self.symbol, row))
        return probs
