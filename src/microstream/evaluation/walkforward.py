"""Walk-forward (expanding window) splits in time with a leakage gap.

Rows are ordered by time (``ts``, several symbols may share a time). The last
``1 - min_train_frac`` of the timeline (by row count) is cut into ``n_folds``
consecutive test blocks; fold ``k`` trains on every row with
``ts < test_start − gap`` and tests on the rows with ``test_start ≤ ts < next
test_start``. With ``gap ≥ horizon`` no training label (which looks ``h``
seconds ahead) can see a test row's time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from microstream.errors import MicroStreamError


@dataclass(frozen=True)
class Fold:
    """One walk-forward split: row indices into the original array."""

    index: int
    train: np.ndarray
    test: np.ndarray
    test_start: int
    test_end: int


def walk_forward_splits(
    ts: np.ndarray,
    n_folds: int = 5,
    gap_ns: int = 10_000_000_000,
    min_train_frac: float = 0.4,
    min_train_rows: int = 50,
) -> list[Fold]:
    """Time-ordered expanding-window folds over timestamps ``ts`` (ns).

    Folds whose training set would have fewer than ``min_train_rows`` rows, or
    whose test block is empty, are left out.

    Raises:
        MicroStreamError: no usable fold (too little data).
    """
    ts = np.asarray(ts, dtype=np.int64)
    if n_folds < 1 or not 0.0 < min_train_frac < 1.0:
        raise MicroStreamError("n_folds must be >= 1 and min_train_frac in (0, 1)")
    sorted_ts = np.sort(ts)
    n = len(sorted_ts)
    starts_at = [
        int(min_train_frac * n + k * (1 - min_train_frac) * n / n_folds) for k in range(n_folds)
    ]
    boundaries = (
        [int(sorted_ts[i]) for i in starts_at if i < n] + [int(sorted_ts[-1]) + 1] if n else []
    )
    folds: list[Fold] = []
    for k in range(len(boundaries) - 1):
        start, end = boundaries[k], boundaries[k + 1]
        test = np.flatnonzero((ts >= start) & (ts < end))
        train = np.flatnonzero(ts < start - gap_ns)
        if len(test) and len(train) >= min_train_rows:
            folds.append(Fold(len(folds), train, test, start, end))
    if not folds:
        raise MicroStreamError(f"too little data for a walk-forward split ({n} rows)")
    return folds
