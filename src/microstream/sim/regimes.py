"""Hidden market regimes of the simulator: a semi-Markov chain over five states.

The regime is the simulator's ground truth (written to the ``sim_truth`` table).
Each regime sets how the order flow behaves: the buy share of market orders,
the asymmetry of limit-order placement, the direction in which quotes reprice
(the drift), the activity (intensity multiplier) and the size of aggressive
orders (volatility). Regimes switch after a gamma-distributed holding time of
a few minutes, to a different regime drawn from a transition matrix that
favours neighbouring regimes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microstream.models.regime import REGIMES  # the contract's five names, one definition


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """How the order flow behaves in one regime.

    - ``buy_share``: probability that a metaorder (and the bias of noise market
      orders) is a buy; 0.5 is balanced.
    - ``skew``: limit placement asymmetry in ``[-1, 1]``; positive makes bids
      more aggressive (closer to the touch, more gap filling from below) and
      asks more passive, which pushes the price up.
    - ``activity``: multiplier of every order intensity.
    - ``aggression``: multiplier of market-order sizes (volatility).
    - ``mean_duration_s``: mean holding time of the regime.
    - ``trend``: tilt of the direction of repricings (the up-probability is
      ``0.5 + trend`` plus the other leans): the regime's drift. Makers who
      know where the price is heading requote toward it; this is what makes a
      regime visible in the price within seconds of its start.
    """

    buy_share: float
    skew: float
    activity: float
    aggression: float
    mean_duration_s: float
    trend: float = 0.0


DEFAULT_REGIME_PARAMS: dict[str, RegimeParams] = {
    "strongly_bullish": RegimeParams(0.80, 0.45, 1.3, 1.3, 180.0, 0.28),
    "bullish": RegimeParams(0.65, 0.25, 1.1, 1.1, 240.0, 0.14),
    "neutral": RegimeParams(0.50, 0.0, 0.85, 0.9, 300.0, 0.0),
    "bearish": RegimeParams(0.35, -0.25, 1.1, 1.1, 240.0, -0.14),
    "strongly_bearish": RegimeParams(0.20, -0.45, 1.3, 1.3, 180.0, -0.28),
}
"""Default per-regime parameters (tuned in docs/simulator.md)."""

# Rows: from-regime, columns: to-regime (order of REGIMES); diagonal is zero
# because a holding time ends in a *different* regime.
DEFAULT_TRANSITIONS: tuple[tuple[float, ...], ...] = (
    (0.00, 0.55, 0.30, 0.10, 0.05),
    (0.25, 0.00, 0.50, 0.20, 0.05),
    (0.12, 0.33, 0.00, 0.33, 0.12),
    (0.05, 0.20, 0.50, 0.00, 0.25),
    (0.05, 0.10, 0.30, 0.55, 0.00),
)


class RegimeChain:
    """A seeded semi-Markov chain of regimes on the exchange clock (ms).

    ``regime_at(t_ms)`` must be called with non-decreasing times; the chain
    draws holding times lazily and keeps the full history of switches so that
    :meth:`history_at` answers for any past time.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        start_ms: int,
        params: dict[str, RegimeParams] | None = None,
        transitions: tuple[tuple[float, ...], ...] = DEFAULT_TRANSITIONS,
        initial: str | None = None,
        duration_shape: float = 3.0,
    ) -> None:
        self._rng = rng
        self.params = dict(params or DEFAULT_REGIME_PARAMS)
        self._transitions = np.asarray(transitions, dtype=float)
        self._transitions /= self._transitions.sum(axis=1, keepdims=True)
        self._shape = duration_shape
        index = REGIMES.index(initial) if initial else int(rng.integers(len(REGIMES)))
        self._index = index
        self._switches: list[tuple[int, int]] = [(start_ms, index)]
        self._next_ms = start_ms + self._draw_duration_ms(index)

    @property
    def current(self) -> str:
        """The regime at the last time asked for."""
        return REGIMES[self._index]

    @property
    def next_switch_ms(self) -> int:
        """Exchange time (ms) at which the current regime ends."""
        return self._next_ms

    def regime_at(self, t_ms: int) -> str:
        """The regime at ``t_ms`` (advances the chain; times must not decrease)."""
        while t_ms >= self._next_ms:
            row = self._transitions[self._index]
            self._index = int(self._rng.choice(len(REGIMES), p=row))
            self._switches.append((self._next_ms, self._index))
            self._next_ms += self._draw_duration_ms(self._index)
        return REGIMES[self._index]

    def history_at(self, t_ms: int) -> str | None:
        """The regime that was in force at a past ``t_ms`` (None before the start)."""
        starts = [s for s, _ in self._switches]
        pos = int(np.searchsorted(starts, t_ms, side="right")) - 1
        if pos < 0 or t_ms >= self._next_ms:
            return None
        return REGIMES[self._switches[pos][1]]

    def switches(self) -> list[tuple[int, str]]:
        """Every regime start so far as ``(start_ms, regime)``."""
        return [(s, REGIMES[i]) for s, i in self._switches]

    def _draw_duration_ms(self, index: int) -> int:
        mean_s = self.params[REGIMES[index]].mean_duration_s
        seconds = self._rng.gamma(self._shape, mean_s / self._shape)
        return max(1000, int(seconds * 1000.0))
