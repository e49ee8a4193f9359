"""Column names, windows and constants shared by the streaming and batch features.

The streaming engine (:mod:`microstream.features.streaming`) and its batch twin
(:mod:`microstream.features.batch`) read every name, window and constant from
here, so the two cannot drift apart. ``docs/features.md`` documents each column.
"""

from __future__ import annotations

from microstream.store.schema import FEATURE_COLUMNS as LAKE_FEATURE_COLUMNS

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
DAY_NS = 86_400 * NS_PER_S

WINDOW_1M_NS = 60 * NS_PER_S
WINDOW_5M_NS = 300 * NS_PER_S
WINDOW_10S_NS = 10 * NS_PER_S
RETURN_STEP_NS = NS_PER_S
"""Volatility uses log returns of mid sampled every second of exchange time."""

MAX_WINDOW_NS = WINDOW_5M_NS

DEPTH_BAND_BPS = 10.0
DEPTH_LO = 1.0 - DEPTH_BAND_BPS / 10_000.0
"""A bid level counts in ``depth_bid_10bps`` when ``px >= mid * DEPTH_LO``."""
DEPTH_HI = 1.0 + DEPTH_BAND_BPS / 10_000.0
"""An ask level counts in ``depth_ask_10bps`` when ``px <= mid * DEPTH_HI``."""

LEVELS = 5

DEFAULT_GRID_MS = 1000
DEFAULT_LATENESS_MS = 250
"""How long (exchange time) the engine waits for out-of-order events before a grid point."""

MIN_GRID_MS = 10

DEFAULT_MAX_GAP_S = 86_400
"""A silence (in exchange time) longer than this ends a segment: the grid restarts."""
MIN_MAX_GAP_S = 60

CONTRACT_COLUMNS: tuple[str, ...] = ("ts", *LAKE_FEATURE_COLUMNS, "book_valid")
"""The ``features`` columns fixed by ARCHITECTURE.md."""

EXTRA_COLUMNS: tuple[str, ...] = (
    "depth_bid_10bps",
    "depth_ask_10bps",
    "ofi_l5_10s",
    "trade_intensity_10s",
    "vwap_session",
    "log_return_1s",
)
"""Researcher features beside the contract columns (float64)."""

FEATURE_COLUMNS: tuple[str, ...] = CONTRACT_COLUMNS + EXTRA_COLUMNS
"""Every column of a ``features`` row, in order."""

BAR_COLUMNS: tuple[str, ...] = (
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "buy_volume",
    "sell_volume",
    "vwap",
    "trades",
)
"""Columns of a ``bars_1m`` row."""

INT_COLUMNS = frozenset({"ts", "trade_count_1m", "trades"})
BOOL_COLUMNS = frozenset({"book_valid"})

FEATURES_TABLE = "features"
BARS_TABLE = "bars_1m"


def declare_lake_columns() -> None:
    """Declare the extra feature columns in the lake schema (idempotent).

    Without this the lake writer would infer their types per file (an all-null
    buffer would become a null column).
    """
    import pyarrow as pa

    from microstream.store.schema import extend_table

    extend_table(FEATURES_TABLE, dict.fromkeys(EXTRA_COLUMNS, pa.float64()))
