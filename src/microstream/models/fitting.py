"""Warm-up and periodic refits of the per-bar models, made explicit.

The HMM and the Isolation Forest learn from the bar features they see. A
:class:`RollingFitter` keeps the most recent ``window`` feature vectors and fits
its model:

- first when ``warmup`` vectors have arrived (before that: ``warming_up n/N``);
- then again every ``refit_every`` vectors, on the rolling window (0: never).

Every fit only uses vectors that have already arrived, so an output never
depends on the future. The fitter's :attr:`~RollingFitter.status`,
:attr:`~RollingFitter.version` and :attr:`~RollingFitter.fitted_at` go into each
``signals_1m`` row so a reader sees which model produced it.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import numpy as np
import numpy.typing as npt

from microstream.errors import ModelError

log = logging.getLogger(__name__)

M = TypeVar("M")
FloatArray = npt.NDArray[np.float64]

WARMING_UP = "warming_up"
FITTED = "fitted"
REFITTED = "refitted"
READY = "ready"
PRETRAINED = "pretrained"
FIT_FAILED = "fit_failed"


def single_thread() -> AbstractContextManager[object]:
    """Limit BLAS/OpenMP to one thread during a fit.

    The fits are small (hundreds of rows); on a busy machine, multi-threaded
    BLAS and k-means are ten times slower than one thread, and they would steal
    cores from the feed.
    """
    from threadpoolctl import threadpool_limits

    return cast(AbstractContextManager[object], threadpool_limits(limits=1))


@dataclass(frozen=True)
class RefitPolicy:
    """When a per-bar model is (re)fitted.

    Attributes:
        warmup: feature vectors needed before the first fit.
        refit_every: vectors between two refits (0: never refit after the first fit).
        window: the most recent vectors a fit uses (rolling training window).
    """

    warmup: int = 120
    refit_every: int = 60
    window: int = 1440

    def __post_init__(self) -> None:
        if self.warmup < 2 or self.window < self.warmup or self.refit_every < 0:
            raise ValueError(f"invalid refit policy: {self}")


class RollingFitter(Generic[M]):
    """Keeps a rolling window of vectors and (re)fits a model on schedule.

    Args:
        policy: warm-up, refit period and window.
        fit: ``fit(X)`` returns a model; may raise :class:`ModelError`,
            ``ValueError`` or ``LinAlgError`` (counted, logged; the previous
            model stays in use).
        model: a pre-trained model to use from the first vector.
        version: the pre-trained model's version.
        offset: added to both counts of the ``warming_up n/N`` status (bars the
            caller needed before the first vector, so the status counts bars).

    Attributes:
        model: the current model (``None`` until the first fit).
        version: number of the current model (fits done here, or the pre-trained one's).
        fitted_at: ``ts`` of the last vector of the current model's training window.
        train_rows: vectors the current model was fitted on (0 if pre-trained).
        status: ``warming_up n/N``, ``fitted``, ``refitted``, ``ready``,
            ``pretrained`` or ``fit_failed`` — what happened on the last vector.
        fit_failures: failed fits so far.
    """

    def __init__(
        self,
        policy: RefitPolicy,
        fit: Callable[[FloatArray], M],
        model: M | None = None,
        version: int = 0,
        offset: int = 0,
    ) -> None:
        self.policy = policy
        self.offset = offset
        self._fit = fit
        self._buffer: deque[tuple[float, ...]] = deque(maxlen=policy.window)
        self._since_fit = 0
        self.model = model
        self.version = version
        self.fitted_at: int | None = None
        self.train_rows = 0
        self.fit_failures = 0
        self.status = PRETRAINED if model is not None else self._warming(0)

    def _warming(self, n: int) -> str:
        return f"{WARMING_UP} {n + self.offset}/{self.policy.warmup + self.offset}"

    @property
    def buffer(self) -> FloatArray:
        """The rolling window as an ``(n, d)`` array (oldest first)."""
        return np.asarray(self._buffer, dtype=np.float64)

    def push(self, x: tuple[float, ...], ts: int) -> bool:
        """Add one vector; fit or refit if due. Returns whether a new model was fitted."""
        self._buffer.append(x)
        self._since_fit += 1
        n = len(self._buffer)
        if self.model is None and n < self.policy.warmup:
            self.status = self._warming(n)
            return False
        retry_after = max(1, self.policy.refit_every)
        due_first = self.model is None and (
            self.fit_failures == 0 or self._since_fit >= retry_after
        )
        due_refit = (
            self.policy.refit_every > 0
            and n >= self.policy.warmup
            and self._since_fit >= self.policy.refit_every
        )
        if not (due_first or due_refit):
            if self.model is not None and self.status != PRETRAINED:
                self.status = READY
            return False
        return self._refit(ts, first=due_first)

    def _refit(self, ts: int, first: bool) -> bool:
        self._since_fit = 0
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = self._fit(self.buffer)
            for w in caught:
                log.info("model fit warning: %s", w.message)
        except (ModelError, ValueError, np.linalg.LinAlgError) as exc:
            self.fit_failures += 1
            self.status = FIT_FAILED
            log.warning("model fit on %d vectors failed: %s", len(self._buffer), exc)
            return False
        self.model = model
        self.version += 1
        self.fitted_at = ts
        self.train_rows = len(self._buffer)
        self.status = FITTED if first else REFITTED
        return True
