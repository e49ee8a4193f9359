"""Measure the regime detector against the simulator's hidden regimes.

:func:`simulate_features` runs the market simulator through the real pipeline
(parse → book → streaming features) and returns the ``features`` rows with the
simulator's true regime at each grid time. :func:`evaluate_regimes` runs a
:class:`~microstream.models.regime.RegimeDetector` over them and reports the
balanced accuracy (the mean of the per-class recalls over the classes that
occur; a grid point without a detected regime counts as wrong).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from microstream.bus.protocol import Row, RowBatch
from microstream.models.regime import REGIMES, RegimeConfig, RegimeDetector

DEFAULT_START_MS = 1_700_000_000_000
"""Exchange time of simulated runs (fixed, so runs are reproducible)."""


@dataclass(frozen=True)
class SimRun:
    """A simulated run: feature rows and the true regime at each grid time."""

    features: list[dict[str, Any]]
    truth: dict[int, str]


def simulate_features(
    seed: int, seconds: float, symbol: str = "BTCUSDT", start_ms: int = DEFAULT_START_MS
) -> SimRun:
    """Simulate ``seconds`` of one symbol and compute its features (deterministic)."""
    from microstream.engine import PipelineOptions, SymbolPipeline
    from microstream.sim.sim_feed import SimFeed
    from microstream.venues.binance.parse import FrameDecoder

    truth: dict[int, str] = {}
    features: list[dict[str, Any]] = []

    def on_truth(row: Row) -> None:
        truth[int(row.values["ts"])] = str(row.values["regime"])

    def emit(row: Row | RowBatch) -> None:
        if isinstance(row, Row) and row.table == "features":
            features.append(row.values)

    feed = SimFeed(
        [symbol],
        seed=seed,
        speed=None,
        start_ms=start_ms,
        streams=("trade", "depth@100ms"),  # what the features use: faster than all streams
        on_truth=on_truth,
    )
    pipeline = SymbolPipeline("binance", symbol, emit, PipelineOptions(models=False))
    decoder = FrameDecoder()
    for frame in feed.iter_raw_frames(seconds):
        for event in decoder.decode(frame):
            pipeline.on_event(event)
    pipeline.finish()
    return SimRun(features, truth)


def detect(features: Sequence[dict[str, Any]], config: RegimeConfig | None = None) -> list[Row]:
    """The ``regimes`` rows of a detector fed ``features`` in order."""
    rows: list[Row] = []
    detector = RegimeDetector("binance", "SIM", rows.append, config=config)
    for values in features:
        detector.on_features(values)
    return rows


def balanced_accuracy(pairs: Sequence[tuple[str | None, str]]) -> float:
    """Mean per-class recall of ``(predicted, true)`` pairs over the true classes present."""
    total: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    for predicted, true in pairs:
        total[true] += 1
        hit[true] += predicted == true
    if not total:
        return float("nan")
    return sum(hit[c] / total[c] for c in total) / len(total)


def evaluate_regimes(run: SimRun, config: RegimeConfig | None = None) -> dict[str, Any]:
    """Balanced accuracy, per-class recall and regime changes of a detector on ``run``."""
    rows = detect(run.features, config)
    pairs = [
        (row.values["regime"], run.truth[row.values["ts"]])
        for row in rows
        if row.values["ts"] in run.truth
    ]
    total: Counter[str] = Counter(t for _, t in pairs)
    hit: Counter[str] = Counter(t for p, t in pairs if p == t)
    changes = sum(
        1 for a, b in itertools.pairwise(rows) if a.values["regime"] != b.values["regime"]
    )
    return {
        "balanced_accuracy": balanced_accuracy(pairs),
        "accuracy": sum(hit.values()) / max(1, len(pairs)),
        "recall": {c: hit[c] / total[c] for c in REGIMES if total[c]},
        "support": {c: total[c] for c in REGIMES if total[c]},
        "points": len(pairs),
        "regime_changes": changes,
    }
