"""The regime detector on a simulated run, against the simulator's hidden regimes.

Tuning used simulator seeds 101, 102 and 103; this test uses seed 7, never used
for tuning, for 10 simulated minutes. The issue's target, a balanced accuracy of
0.6 against ``sim_truth``, is NOT reached: the figure is measured, printed and
recorded (``record_property``) here, and discussed in docs/models.md. What the
test asserts is what holds: every second after the warm-up gets a regime, the
detector does not flap, and its score follows the market it observes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from microstream.models.regime import RegimeConfig
from microstream.models.regime_eval import detect, evaluate_regimes, simulate_features

EVAL_SEED = 7
SECONDS = 600


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_regimes_on_a_held_out_simulated_run(record_property: pytest.RecordProperty) -> None:
    run = simulate_features(EVAL_SEED, SECONDS)
    report = evaluate_regimes(run)
    record_property("balanced_accuracy", report["balanced_accuracy"])
    print(f"regime detector, simulator seed {EVAL_SEED}, {SECONDS} s: {report}")
    assert report["points"] >= SECONDS - 5
    assert 0.0 <= report["balanced_accuracy"] <= 1.0
    # hysteresis: at most one change of class every 20 s on average
    assert report["regime_changes"] <= SECONDS // 20

    rows = [r.values for r in detect(run.features)]
    warmup = int(RegimeConfig().trend_window_s / 2) + 1
    assert all(v["regime"] is not None for v in rows[warmup:])
    # the score follows the observed trend of the mid price
    window = int(RegimeConfig().trend_window_s)
    mids = [f["mid"] for f in run.features]
    moves = [math.log(mids[i] / mids[i - window]) for i in range(window, len(mids))]
    scores = [rows[i]["score"] for i in range(window, len(rows))]
    assert float(np.corrcoef(moves, scores)[0, 1]) > 0.5
