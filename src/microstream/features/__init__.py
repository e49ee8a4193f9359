"""Microstructure features and 1-minute bars, streaming and batch.

* :class:`FeatureEngine` (:mod:`.streaming`) — one symbol's features on a grid of
  exchange time, O(1) per event, plus its :class:`BarBuilder` (:mod:`.bars`);
* :mod:`.batch` — the Polars twins ``compute_features`` / ``compute_bars`` over
  the lake's ``trades`` and ``book_top`` tables (imported on demand: Polars);
* :mod:`.schema` — column names, windows and constants shared by both;
* :mod:`.book_math` — formulas on one book top; :mod:`.windows` — rolling
  windows as differences of running totals; :mod:`.offline` — the
  ``microstream features`` command's lake recomputation.

Definitions and plain-language explanations: ``docs/features.md``.
"""

from microstream.features.bars import BarBuilder
from microstream.features.schema import (
    BAR_COLUMNS,
    CONTRACT_COLUMNS,
    EXTRA_COLUMNS,
    FEATURE_COLUMNS,
)
from microstream.features.streaming import FeatureEngine

__all__ = [
    "BAR_COLUMNS",
    "CONTRACT_COLUMNS",
    "EXTRA_COLUMNS",
    "FEATURE_COLUMNS",
    "BarBuilder",
    "FeatureEngine",
]
