"""Isolation Forest anomalies of 1-minute bar features.

scikit-learn's ``IsolationForest(n_estimators=100,
contamination=ISOLATION_FOREST_CONTAMINATION, random_state=<fixed>)`` is fitted on
the z-scored bar features of :mod:`microstream.models.bar_features`.

Sign convention: ``anomaly_score = -decision_function(x)``, so **higher means
more anomalous**, and ``anomaly`` is ``anomaly_score > 0``. The threshold 0 is
where the forest puts the ``contamination`` share (5 %) of its training data:
about 5 % of the training bars are anomalies by construction.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from microstream.errors import ModelError
from microstream.models.bar_features import FEATURE_NAMES
from microstream.models.fitting import RefitPolicy, RollingFitter, single_thread

FloatArray = npt.NDArray[np.float64]


class AnomalyForest:
    """A fitted Isolation Forest with the MicroStream sign convention.

    Use :meth:`fit` to build one.
    """

    def __init__(self, forest: object, feature_names: tuple[str, ...] = FEATURE_NAMES) -> None:
        self._forest = forest
        self.feature_names = feature_names

    @classmethod
    def fit(
        cls,
        x: FloatArray,
        contamination: float = 0.05,
        random_state: int = 0,
        n_estimators: int = 100,
    ) -> AnomalyForest:
        """Fit on an ``(n, d)`` array.

        Raises:
            ModelError: too few rows or non-finite values.
        """
        from sklearn.ensemble import IsolationForest

        if x.ndim != 2 or x.shape[0] < 10 or not np.all(np.isfinite(x)):
            raise ModelError(f"cannot fit an isolation forest on an array of shape {x.shape}")
        forest = IsolationForest(
            n_estimators=n_estimators, contamination=contamination, random_state=random_state
        )
        with single_thread():
            forest.fit(x)
        return cls(forest)

    def scores(self, x: FloatArray) -> FloatArray:
        """``anomaly_score`` of every row (higher = more anomalous; > 0 is an anomaly)."""
        raw = self._forest.decision_function(x)  # type: ignore[attr-defined]
        return np.asarray(-raw, dtype=np.float64)

    def score(self, x: Sequence[float]) -> float:
        """``anomaly_score`` of one vector."""
        return float(self.scores(np.asarray([x], dtype=np.float64))[0])

    def to_bytes(self) -> bytes:
        """Serialise (pickle) the fitted forest."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> AnomalyForest:
        """Load a forest written by :meth:`to_bytes` (trusted data only: pickle).

        Raises:
            ModelError: the bytes are not a pickled :class:`AnomalyForest`.
        """
        try:
            obj = pickle.loads(data)
        except Exception as exc:
            raise ModelError(f"not a pickled anomaly forest: {exc}") from exc
        if not isinstance(obj, cls):
            raise ModelError(f"expected an AnomalyForest, got {type(obj).__name__}")
        return obj


@dataclass(frozen=True)
class AnomalyOutput:
    """One bar's anomaly output; ``anomaly``/``score`` are ``None`` during warm-up."""

    anomaly: bool | None
    score: float | None
    status: str
    version: int
    fitted_at: int | None
    train_rows: int


class OnlineAnomaly:
    """The live Isolation Forest: warm-up, periodic refits, one score per bar.

    Args:
        contamination: ``ISOLATION_FOREST_CONTAMINATION``.
        policy: warm-up / refit schedule.
        random_state: seed of every fit.
        model: optional pre-trained forest.
        model_version: its version number.
        warmup_offset: bars before the first vector (added to the warm-up status).
    """

    def __init__(
        self,
        contamination: float = 0.05,
        policy: RefitPolicy | None = None,
        random_state: int = 0,
        model: AnomalyForest | None = None,
        model_version: int = 0,
        warmup_offset: int = 0,
    ) -> None:
        self.contamination = contamination
        self.random_state = random_state
        self._fitter: RollingFitter[AnomalyForest] = RollingFitter(
            policy or RefitPolicy(),
            self._fit,
            model=model,
            version=model_version,
            offset=warmup_offset,
        )

    @property
    def model(self) -> AnomalyForest | None:
        """The forest in use (``None`` during warm-up)."""
        return self._fitter.model

    def _fit(self, x: FloatArray) -> AnomalyForest:
        return AnomalyForest.fit(x, self.contamination, self.random_state)

    def update(self, x: tuple[float, ...], ts: int) -> AnomalyOutput:
        """Consume one feature vector (bar time ``ts``) and score it."""
        fitter = self._fitter
        fitter.push(x, ts)
        if fitter.model is None:
            return AnomalyOutput(None, None, fitter.status, fitter.version, None, 0)
        score = fitter.model.score(x)
        return AnomalyOutput(
            anomaly=score > 0.0,
            score=score,
            status=fitter.status,
            version=fitter.version,
            fitted_at=fitter.fitted_at,
            train_rows=fitter.train_rows,
        )
