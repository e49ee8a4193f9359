"""The regime detector on a simulated run, against the simulator's hidden regimes.

The detector's defaults were tuned on simulator seeds 101-106 (10 simulated
minutes each); this test uses seed 7, never used for tuning, for 10 simulated
minutes. There the balanced accuracy is 0.62 (classes present: bearish and
strongly_bearish). The issue's target of 0.6 is NOT asserted: on other held-out
seeds the same detector scores 0.58 (seed 8) and 0.42 (seed 9), so 0.6 is not
reached robustly (see docs/models.md). What the test asserts is what holds: the
detector beats a constant answer on the held-out run, every second after the
warm-up gets a regime, it does not flap, and its score follows the market it
observes. The figure is printed and recorded (``record_property``).
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
    # better than any constant answer (1 / classes present), with a margin
    chance = 1.0 / len(report["support"])
    assert report["balanced_accuracy"] >= chance + 0.05, report
    # hysteresis: at most one change of class every 30 s on average
    assert report["regime_changes"] <= SECONDS // 30

    rows = [r.values for r in detect(run.features)]
    warmup = int(RegimeConfig().trend_window_s / 2) + 1
    assert all(v["regime"] is not None for v in rows[warmup:])
    # the score follows the observed trend of the mid price
    window = int(RegimeConfig().trend_window_s)
    mids = [f["mid"] for f in run.features]
    moves = [math.log(mids[i] / mids[i - window]) for i in range(window, len(mids))]
    scores = [rows[i]["score"] for i in range(window, len(rows))]
    assert float(np.corrcoef(moves, scores)[0, 1]) > 0.5
