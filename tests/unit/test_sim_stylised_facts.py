"""The simulated market looks like a market (fixed seed, so deterministic).

Loose bounds around the figures measured in docs/simulator.md: they guard the
tuning against regressions, they are not the report itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from microstream.sim.market import Market, spec_for

START = 1_700_000_000_000
SECONDS = 240


@pytest.fixture(scope="module")
def run() -> dict[str, np.ndarray]:
    m = Market(spec_for("BTCUSDT"), np.random.default_rng(7), START, warmup_s=10)
    mids, imbs, spreads, signs, fast_mid, fast_imb = [], [], [], [], [], []
    for k in range(1, SECONDS * 10 + 1):
        m.run_until(START + 100 * k)
        bid, bid_lots, ask, ask_lots = m.best()
        spreads.append(ask - bid)
        fast_mid.append((bid + ask) / 2)
        fast_imb.append((bid_lots - ask_lots) / (bid_lots + ask_lots))
        if k % 10 == 0:
            mids.append((bid + ask) / 2)
            imbs.append((bid_lots - ask_lots) / (bid_lots + ask_lots))
        signs.extend(-1 if t.buyer_is_maker else 1 for t in m.drain()[1])
    return {
        "mid": np.asarray(mids),
        "imb": np.asarray(imbs),
        "spread": np.asarray(spreads),
        "sign": np.asarray(signs, dtype=float),
        "fast_mid": np.asarray(fast_mid),
        "fast_imb": np.asarray(fast_imb),
    }


def test_spread_is_one_tick_almost_always(run: dict[str, np.ndarray]) -> None:
    assert np.mean(run["spread"] == 1) > 0.97
    assert run["spread"].min() >= 1


def test_returns_move_and_have_fat_tails(run: dict[str, np.ndarray]) -> None:
    r = np.diff(np.log(run["mid"]))
    assert 0.3e-4 < r.std() < 3e-4  # 1-second volatility of about a basis point
    kurt = np.mean((r - r.mean()) ** 4) / r.var() ** 2 - 3
    assert kurt > 1.0


def test_trade_signs_are_persistent(run: dict[str, np.ndarray]) -> None:
    s = run["sign"] - run["sign"].mean()
    acf = [np.mean(s[:-k] * s[k:]) / s.var() for k in (1, 10)]
    assert acf[0] > 0.4 and acf[1] > 0.05
    assert 15 * SECONDS < len(run["sign"]) < 80 * SECONDS


def test_l1_imbalance_predicts_the_next_mid_move(run: dict[str, np.ndarray]) -> None:
    """Sampled every 100 ms: the sign of the next mid change follows the imbalance."""
    mid, imb = run["fast_mid"], run["fast_imb"]
    changed = np.flatnonzero(np.diff(mid) != 0) + 1  # samples where the mid moved
    nxt = np.searchsorted(changed, np.arange(len(mid)), side="right")
    ok = nxt < len(changed)
    move = np.sign(mid[changed[nxt[ok]]] - mid[ok.nonzero()[0]])
    strong = np.abs(imb[ok]) > 0.3
    hit = np.mean(np.sign(imb[ok][strong]) == move[strong])
    assert strong.sum() > 500
    assert hit > 0.6, hit
