"""A Gaussian hidden Markov model of 1-minute bar features, filtered causally.

Fitting uses hmmlearn's ``GaussianHMM`` (Baum-Welch, full covariances, a fixed
``random_state``) on the z-scored bar features of
:mod:`microstream.models.bar_features`. The states are then named by their
mean momentum: the highest is ``bullish_extreme``, the lowest
``bearish_extreme``, every other one ``normal``.

Live, the state probabilities are the **filtered** posterior
``P(state_t | x_1..x_t)`` of the forward algorithm, computed here one bar at a
time from the fitted parameters — never hmmlearn's smoothed posterior, which
uses future bars. So an output at bar ``t`` can never change when later bars
arrive.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from microstream.errors import ModelError
from microstream.models.bar_features import FEATURE_NAMES
from microstream.models.fitting import RefitPolicy, RollingFitter, single_thread

FloatArray = npt.NDArray[np.float64]

NORMAL = "normal"
BULLISH_EXTREME = "bullish_extreme"
BEARISH_EXTREME = "bearish_extreme"
STATE_NAMES: tuple[str, ...] = (NORMAL, BULLISH_EXTREME, BEARISH_EXTREME)
MOMENTUM_INDEX = FEATURE_NAMES.index("momentum")
COVAR_FLOOR = 1e-3
"""Added to every covariance's diagonal after a fit (the inputs are z-scores, of
unit scale): a state that captured a single outlier bar keeps a usable,
positive-definite covariance instead of failing the fit."""


def name_states(means: FloatArray) -> tuple[str, ...]:
    """Name each state by its mean momentum (column :data:`MOMENTUM_INDEX`)."""
    order = np.argsort(means[:, MOMENTUM_INDEX], kind="stable")
    names = [NORMAL] * means.shape[0]
    names[int(order[-1])] = BULLISH_EXTREME
    names[int(order[0])] = BEARISH_EXTREME
    return tuple(names)


@dataclass
class GaussianHMM:
    """Fitted parameters of a Gaussian HMM and its causal forward filter.

    Attributes:
        startprob: ``(k,)`` initial state distribution.
        transmat: ``(k, k)`` transition matrix, rows ``from`` state.
        means: ``(k, d)`` state means.
        covars: ``(k, d, d)`` full covariance matrices.
        names: state names (:func:`name_states`).
        feature_names: the input columns, in order.
    """

    startprob: FloatArray
    transmat: FloatArray
    means: FloatArray
    covars: FloatArray
    names: tuple[str, ...]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    _chol_inv: FloatArray = field(init=False, repr=False)
    _log_norm: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.transmat.shape != (k, k) or self.covars.shape != (k, d, d):
            raise ModelError("HMM parameters have inconsistent shapes")
        try:
            chol = np.linalg.cholesky(self.covars)
        except np.linalg.LinAlgError as exc:
            raise ModelError("an HMM covariance is not positive definite") from exc
        self._chol_inv = np.linalg.inv(chol)
        log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        self._log_norm = -0.5 * (d * math.log(2.0 * math.pi) + log_det)

    @classmethod
    def fit(
        cls,
        x: FloatArray,
        n_components: int = 3,
        random_state: int = 0,
        n_iter: int = 100,
        n_init: int = 5,
    ) -> GaussianHMM:
        """Fit by Baum-Welch (hmmlearn) on an ``(n, d)`` array.

        Baum-Welch finds a local optimum only, so it runs ``n_init`` times from
        the seeds ``random_state, random_state + 1, ...`` and keeps the fit of
        highest log-likelihood (deterministic for a given ``random_state``).

        Raises:
            ModelError: too few rows, or no fit produced usable parameters.
        """
        if x.ndim != 2 or x.shape[0] < 2 * n_components or not np.all(np.isfinite(x)):
            raise ModelError(f"cannot fit an HMM on an array of shape {x.shape}")
        best: tuple[float, GaussianHMM] | None = None
        errors: list[str] = []
        for seed in range(random_state, random_state + max(1, n_init)):
            try:
                with single_thread():
                    score, model = cls._fit_once(x, n_components, seed, n_iter)
            except (ModelError, ValueError, np.linalg.LinAlgError) as exc:
                errors.append(str(exc))
                continue
            if best is None or score > best[0]:
                best = (score, model)
        if best is None:
            raise ModelError(f"every HMM fit failed: {errors[:1]}")
        return best[1]

    @classmethod
    def _fit_once(
        cls, x: FloatArray, n_components: int, seed: int, n_iter: int
    ) -> tuple[float, GaussianHMM]:
        from hmmlearn.hmm import GaussianHMM as _HmmLearn

        # hmmlearn logs "Model is not converging" for 1e-7 likelihood wobbles
        logging.getLogger("hmmlearn.base").setLevel(logging.ERROR)
        model = _HmmLearn(
            n_components=n_components, covariance_type="full", n_iter=n_iter, random_state=seed
        )
        model.fit(x)
        score = float(model.score(x))
        if not math.isfinite(score):
            raise ModelError("HMM fit has a non-finite log-likelihood")
        means = np.asarray(model.means_, dtype=np.float64)
        fitted = cls(
            startprob=np.asarray(model.startprob_, dtype=np.float64),
            transmat=np.asarray(model.transmat_, dtype=np.float64),
            means=means,
            covars=np.asarray(model.covars_, dtype=np.float64) + COVAR_FLOOR * np.eye(x.shape[1]),
            names=name_states(means),
        )
        return score, fitted

    @property
    def n_states(self) -> int:
        """Number of hidden states."""
        return int(self.means.shape[0])

    def log_emission(self, x: Sequence[float] | FloatArray) -> FloatArray:
        """``log N(x; mean_k, cov_k)`` for every state ``k``."""
        diff = np.asarray(x, dtype=np.float64)[None, :] - self.means
        sol = np.einsum("kij,kj->ki", self._chol_inv, diff)
        return np.asarray(self._log_norm - 0.5 * np.sum(sol * sol, axis=1), dtype=np.float64)

    def filter_step(self, prev: FloatArray | None, x: Sequence[float] | FloatArray) -> FloatArray:
        """One forward step: ``P(s_t | x_1..t)`` from ``P(s_{t-1} | x_1..t-1)`` and ``x_t``.

        ``prev`` ``None`` starts from the initial distribution.
        """
        emission = self.log_emission(x)
        pred = self.startprob if prev is None else prev @ self.transmat
        with np.errstate(divide="ignore"):
            log_alpha = np.log(pred) + emission
        top = float(np.max(log_alpha))
        if not math.isfinite(top):  # impossible under the model: restart from the prior
            log_alpha = np.log(np.maximum(self.startprob, 1e-300)) + emission
            top = float(np.max(log_alpha))
        alpha = np.exp(log_alpha - top)
        return np.asarray(alpha / alpha.sum(), dtype=np.float64)

    def filter(self, x: FloatArray, prev: FloatArray | None = None) -> FloatArray:
        """Filtered posteriors of every row of ``x`` (``(n, k)``), in order."""
        out = np.empty((x.shape[0], self.n_states))
        for i, row in enumerate(x):
            prev = self.filter_step(prev, row)
            out[i] = prev
        return out

    def name_probabilities(self, probs: FloatArray) -> dict[str, float]:
        """State probabilities summed by name (``normal`` may gather several states)."""
        out = dict.fromkeys(STATE_NAMES, 0.0)
        for name, p in zip(self.names, probs, strict=True):
            out[name] = out.get(name, 0.0) + float(p)
        return out

    def to_bytes(self) -> bytes:
        """Serialise (pickle) the fitted parameters."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> GaussianHMM:
        """Load parameters written by :meth:`to_bytes` (trusted data only: pickle).

        Raises:
            ModelError: the bytes are not a pickled :class:`GaussianHMM`.
        """
        try:
            obj = pickle.loads(data)
        except Exception as exc:
            raise ModelError(f"not a pickled HMM: {exc}") from exc
        if not isinstance(obj, cls):
            raise ModelError(f"expected a GaussianHMM, got {type(obj).__name__}")
        return obj


@dataclass(frozen=True)
class HmmOutput:
    """One bar's HMM output (the ``hmm_*`` columns of ``signals_1m``).

    ``state`` and ``confidence`` are ``None`` while no model exists (warm-up).
    ``confidence`` is the filtered probability of ``state``.
    """

    state: str | None
    confidence: float | None
    probabilities: dict[str, float]
    status: str
    version: int
    fitted_at: int | None
    train_rows: int


class OnlineHMM:
    """The live HMM: warm-up, periodic refits, and the causal filter per bar.

    After each (re)fit the filter is recomputed with the new parameters over the
    training window (only past bars), then advanced one bar at a time.

    Args:
        n_components: ``HMM_N_COMPONENTS``.
        policy: warm-up / refit schedule.
        random_state: seed of every fit.
        model: optional pre-trained parameters (used from the first bar).
        model_version: version number of the pre-trained model.
        warmup_offset: bars before the first vector (added to the warm-up status).
    """

    def __init__(
        self,
        n_components: int = 3,
        policy: RefitPolicy | None = None,
        random_state: int = 0,
        model: GaussianHMM | None = None,
        model_version: int = 0,
        warmup_offset: int = 0,
    ) -> None:
        self.n_components = n_components
        self.random_state = random_state
        self._fitter: RollingFitter[GaussianHMM] = RollingFitter(
            policy or RefitPolicy(),
            self._fit,
            model=model,
            version=model_version,
            offset=warmup_offset,
        )
        self._alpha: FloatArray | None = None

    @property
    def model(self) -> GaussianHMM | None:
        """The parameters in use (``None`` during warm-up)."""
        return self._fitter.model

    def _fit(self, x: FloatArray) -> GaussianHMM:
        return GaussianHMM.fit(x, self.n_components, self.random_state)

    def update(self, x: tuple[float, ...], ts: int) -> HmmOutput:
        """Consume one feature vector (bar time ``ts``) and return that bar's output."""
        fitter = self._fitter
        if fitter.push(x, ts):
            assert fitter.model is not None
            self._alpha = fitter.model.filter(fitter.buffer)[-1]
        elif fitter.model is not None:
            self._alpha = fitter.model.filter_step(self._alpha, x)
        model = fitter.model
        if model is None or self._alpha is None:
            return HmmOutput(None, None, {}, fitter.status, fitter.version, None, 0)
        probs = model.name_probabilities(self._alpha)
        state = max(probs, key=lambda name: probs[name])
        return HmmOutput(
            state=state,
            confidence=probs[state],
            probabilities=probs,
            status=fitter.status,
            version=fitter.version,
            fitted_at=fitter.fitted_at,
            train_rows=fitter.train_rows,
        )
