"""The regime detector against the simulator's hidden regimes, over many seeds.

Usage (the figures in docs/models.md)::

    nice -n 15 .venv/bin/python benchmarks/regime_sim.py --seeds 7-13,20-29

For every seed it simulates ``--seconds`` (default 600) of BTCUSDT through the
real pipeline (:func:`microstream.models.regime_eval.simulate_features`), runs
the default :class:`~microstream.models.regime.RegimeDetector` and prints the
balanced accuracy against ``sim_truth`` with the per-class recall. With
``--regimes`` it also prints, per true regime over all seeds, what the detector
can see: the drift of the mid, the 60-second log return, ``flow_imbalance_1m``,
``imbalance_l5`` and ``volatility_1m`` (the diagnosis in docs/models.md).
About 6 s of CPU per simulated 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from microstream.models.regime import REGIMES
from microstream.models.regime_eval import SimRun, evaluate_regimes, simulate_features


def parse_seeds(text: str) -> list[int]:
    """``"7-13,20"`` -> ``[7, 8, ..., 13, 20]``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _std(xs: list[float]) -> float:
    if len(xs) < 2:
        return math.nan
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def regime_observables(runs: list[SimRun]) -> dict[str, dict[str, float]]:
    """Per true regime: what the features show (pooled over ``runs``)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        feats = run.features
        truth = [run.truth.get(f["ts"]) for f in feats]
        mids = [f.get("mid") for f in feats]
        for i, f in enumerate(feats):
            regime = truth[i]
            if regime is None:
                continue
            d = acc[regime]
            prev, now = mids[i - 1] if i else None, mids[i]
            if prev and now and truth[i - 1] == regime:
                d["ret_1s"].append(math.log(now / prev) * 1e4)
            then = mids[i - 60] if i >= 60 else None
            if then and now:
                d["ret_60s"].append(math.log(now / then) * 1e4)
            for key in ("flow_imbalance_1m", "imbalance_l5", "volatility_1m"):
                value = f.get(key)
                if value is not None:
                    d[key].append(float(value))
    out: dict[str, dict[str, float]] = {}
    for regime in REGIMES:
        if regime not in acc:
            continue
        d = acc[regime]
        out[regime] = {
            "seconds": len(d["ret_1s"]),
            "drift_bps_per_min": _mean(d["ret_1s"]) * 60.0,
            "ret_60s_bps_mean": _mean(d["ret_60s"]),
            "ret_60s_bps_std": _std(d["ret_60s"]),
            "flow_imbalance_1m_mean": _mean(d["flow_imbalance_1m"]),
            "flow_imbalance_1m_std": _std(d["flow_imbalance_1m"]),
            "imbalance_l5_mean": _mean(d["imbalance_l5"]),
            "volatility_1m_bps": _mean(d["volatility_1m"]) * 1e4,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the seeds, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="7-13,20-29", help="e.g. 7-13,20-29")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--regimes", action="store_true", help="also print per-regime observables")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    runs: list[SimRun] = []
    per_seed: dict[int, dict[str, Any]] = {}
    started = time.process_time()
    print("| seed | classes present | balanced accuracy | recall per class | class changes |")
    print("|---|---|---|---|---|")
    for seed in parse_seeds(args.seeds):
        run = simulate_features(seed, args.seconds)
        report = evaluate_regimes(run)
        per_seed[seed] = report
        if args.regimes:
            runs.append(run)
        recall = ", ".join(f"{c} {r:.2f}" for c, r in report["recall"].items())
        print(
            f"| {seed} | {len(report['support'])} | {report['balanced_accuracy']:.2f} "
            f"| {recall} | {report['regime_changes']} |",
            flush=True,
        )
    scores = [r["balanced_accuracy"] for r in per_seed.values()]
    summary = {
        "runs": len(scores),
        "mean": _mean(scores),
        "min": min(scores),
        "max": max(scores),
        "at_least_0.6": sum(s >= 0.6 for s in scores),
        "cpu_s": time.process_time() - started,
    }
    print(
        f"\nmean {summary['mean']:.3f}, min {summary['min']:.3f}, max {summary['max']:.3f}, "
        f"{summary['at_least_0.6']} of {summary['runs']} runs >= 0.6 "
        f"({summary['cpu_s']:.0f} s CPU)"
    )
    observables: dict[str, dict[str, float]] = {}
    if args.regimes:
        observables = regime_observables(runs)
        print(
            "\n| true regime | seconds | drift bps/min | 60-s return bps (mean ± sd) "
            "| flow_imbalance_1m (mean ± sd) | imbalance_l5 | volatility_1m bps |"
        )
        print("|---|---|---|---|---|---|---|")
        for regime, o in observables.items():
            print(
                f"| {regime} | {o['seconds']:.0f} | {o['drift_bps_per_min']:+.1f} "
                f"| {o['ret_60s_bps_mean']:+.1f} ± {o['ret_60s_bps_std']:.1f} "
                f"| {o['flow_imbalance_1m_mean']:+.2f} ± {o['flow_imbalance_1m_std']:.2f} "
                f"| {o['imbalance_l5_mean']:+.2f} | {o['volatility_1m_bps']:.1f} |"
            )
    if args.json:
        payload = {"per_seed": per_seed, "summary": summary, "observables": observables}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
