"""Live scorecard of the direction forecast against simple baselines.

Each prediction made at ``t`` resolves at ``t + h`` when the feature row at
``t + h`` arrives (:class:`~microstream.models.labels.LabelResolver`). For every
resolved prediction with a label the scorecard adds its log-loss and hit to the
model's totals and to two baselines', both scored on the same rows:

- ``prior``: the class frequencies of the labels resolved *before* this one
  (Laplace-smoothed: ``(count + 1) / (n + 3)``), i.e. what a forecaster that
  knows only the history of outcomes would say;
- ``always_neutral``: predicts ``neutral``; as probabilities it gives
  ``neutral`` the prior's neutral share and splits the rest evenly between up
  and down (a hard 0/1 forecast would have infinite log-loss).

Totals cover everything since start; ``recent`` covers the last
``window`` resolved predictions.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from microstream.models.labels import CLASS_INDEX, CLASSES, LabelResolver, valid_mid

Probs = tuple[float, float, float]
_FLOOR = 1e-6


def _loss(probs: Probs, cls: int) -> float:
    return -math.log(max(probs[cls], _FLOOR))


def _hit(probs: Probs, cls: int) -> bool:
    return max(range(3), key=lambda i: probs[i]) == cls


@dataclass
class _Tally:
    n: int = 0
    loss: float = 0.0
    hits: int = 0

    def add(self, loss: float, hit: bool) -> None:
        self.n += 1
        self.loss += loss
        self.hits += int(hit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "log_loss": self.loss / self.n if self.n else None,
            "hit_rate": self.hits / self.n if self.n else None,
        }


@dataclass
class _Scores:
    model: _Tally = field(default_factory=_Tally)
    prior: _Tally = field(default_factory=_Tally)
    always_neutral: _Tally = field(default_factory=_Tally)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model.as_dict(),
            "prior": self.prior.as_dict(),
            "always_neutral": self.always_neutral.as_dict(),
        }
        model_ll, prior_ll = out["model"]["log_loss"], out["prior"]["log_loss"]
        out["beats_prior"] = None if model_ll is None else bool(model_ll < prior_ll)
        return out


class ForecastScorecard:
    """Running log-loss and hit rate of one symbol's forecast vs baselines.

    Feed every features row with the prediction made on it (None if null),
    in ``ts`` order, through :meth:`on_features`.
    """

    def __init__(
        self, horizon_s: float = 10.0, threshold_bps: float = 1.0, window: int = 600
    ) -> None:
        self.resolver: LabelResolver[Probs | None] = LabelResolver(horizon_s, threshold_bps)
        self.counts = [0, 0, 0]
        self.total = _Scores()
        self.window = window
        self._recent: deque[tuple[float, bool, float, bool, float, bool]] = deque(maxlen=window)
        self.unscored = 0

    def on_features(self, values: Mapping[str, Any], probs: Probs | None) -> int:
        """Resolve predictions due at this row, then register this row's one.

        Returns the number of predictions scored by this call.
        """
        ts = int(values["ts"])
        mid = valid_mid(values)
        scored = 0
        for done in self.resolver.on_row(ts, mid):
            if done.label is None or done.payload is None:
                self.unscored += 1
                continue
            self._score(done.payload, CLASS_INDEX[done.label])
            scored += 1
        self.resolver.add(ts, mid, probs)
        return scored

    def _baselines(self) -> tuple[Probs, Probs]:
        n = sum(self.counts)
        up, neutral, down = ((c + 1) / (n + 3) for c in self.counts)
        rest = (1.0 - neutral) / 2
        return (up, neutral, down), (rest, neutral, rest)

    def _score(self, probs: Probs, cls: int) -> None:
        prior, always_neutral = self._baselines()
        entry = (
            _loss(probs, cls),
            _hit(probs, cls),
            _loss(prior, cls),
            _hit(prior, cls),
            _loss(always_neutral, cls),
            cls == CLASS_INDEX["neutral"],
        )
        self.total.model.add(entry[0], entry[1])
        self.total.prior.add(entry[2], entry[3])
        self.total.always_neutral.add(entry[4], entry[5])
        self._recent.append(entry)
        self.counts[cls] += 1

    def _recent_scores(self) -> _Scores:
        scores = _Scores()
        for m_loss, m_hit, p_loss, p_hit, n_loss, n_hit in self._recent:
            scores.model.add(m_loss, m_hit)
            scores.prior.add(p_loss, p_hit)
            scores.always_neutral.add(n_loss, n_hit)
        return scores

    def as_dict(self) -> dict[str, Any]:
        """The scorecard for the dashboard (JSON-serialisable)."""
        return {
            "horizon_s": self.resolver.horizon_ns / 1e9,
            "threshold_bps": self.resolver.threshold_bps,
            "pending": self.resolver.pending,
            "unscored": self.unscored,
            "class_counts": dict(zip(CLASSES, self.counts, strict=True)),
            "total": self.total.as_dict(),
            "recent": {"window": self.window, **self._recent_scores().as_dict()},
        }
