"""The regime detector on a simulated run, against the simulator's hidden regimes.

The detector's defaults were tuned on simulator seeds 101-140 (10 simulated
minutes each). Seed 30 was chosen as this test's seed *before* any result on
it was seen, as the first of a fresh held-out set (seeds 30-49) that was used
for nothing else. There the balanced accuracy is 0.84 (classes present:
neutral, bearish, strongly_bearish), and the issue's target of 0.6 is
asserted. It is not met on every seed: over the 20 fresh held-out runs the
mean is 0.65 and 12 of 20 reach 0.6 (min 0.19, see docs/models.md and
``benchmarks/regime_sim.py``), so a different seed may well fail this bound.
The other assertions (on the same run): the detector beats a constant answer,
every second after the warm-up gets a regime, it does not flap, and its score
follows the market it observes. The figure is printed and recorded
(``record_property``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from microstream.models.regime import RegimeConfig
from microstream.models.regime_eval import detect, evaluate_regimes, simulate_features

EVAL_SEED = 30  # held out: chosen before its result was seen
SECONDS = 600


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_regimes_on_a_held_out_simulated_run(record_property: pytest.RecordProperty) -> None:
    run = simulate_features(EVAL_SEED, SECONDS)
    report = evaluate_regimes(run)
    record_property("balanced_accuracy", report["balanced_accuracy"])
    print(f"regime detector, simulator seed {EVAL_SEED}, {SECONDS} s: {report}")
    assert report["points"] >= SECONDS - 5
    assert report["balanced_accuracy"] >= 0.6, report  # the target
    # better than any constant answer (1 / classes present), with a margin
    chance = 1.0 / len(report["support"])
    assert report["balanced_accuracy"] >= chance + 0.05, report
    # hysteresis: at most one change of class every 30 s on average
    assert report["regime_changes"] <= SECONDS // 30

    rows = [r.values for r in detect(run.features)]
    warmup = int(RegimeConfig().trend_min_window_s) + 1
    assert all(v["regime"] is not None for v in rows[warmup:])
    # the score follows the observed trend of the mid price (over the last minute)
    window = 60
    mids = [f["mid"] for f in run.features]
    moves = [math.log(mids[i] / mids[i - window]) for i in range(window, len(mids))]
    scores = [rows[i]["score"] for i in range(window, len(rows))]
    assert float(np.corrcoef(moves, scores)[0, 1]) > 0.5
