"""Synthetic ``features`` frames for tests and demos (not market data).

The mid follows a random walk whose next steps lean in the direction of the
book imbalance, so a forecast has something real to learn. Some rows are
invalid (book not valid) and a few grid points are missing, as in real data.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from microstream.models.labels import NS_PER_S


def synthetic_features(
    n: int = 2000,
    seed: int = 0,
    exchange: str = "binance",
    symbol: str = "BTCUSDT",
    start_ns: int = 1_700_000_000 * NS_PER_S,
    edge: float = 0.6,
    invalid_share: float = 0.02,
    gap_share: float = 0.01,
) -> pl.DataFrame:
    """A ``features`` frame with ``n`` 1-second grid rows (before gaps are removed).

    ``edge`` scales how much ``imbalance_l1`` predicts the next 10 s (0: none).
    """
    rng = np.random.default_rng(seed)
    imb = np.convolve(rng.uniform(-1, 1, n), np.ones(5) / 5, mode="same")
    drift = np.zeros(n)
    for lag in range(1, 11):
        drift[lag:] += imb[:-lag] * edge * 0.3e-4
    steps = drift + rng.normal(0, 0.6e-4, n)
    mid = 30_000.0 * np.exp(np.cumsum(steps))
    spread = np.full(n, 0.01) + rng.exponential(0.02, n)
    microprice = mid + imb * spread / 2
    imb5 = np.clip(imb * 0.7 + rng.normal(0, 0.2, n), -1, 1)
    ofi = imb * 3 + rng.normal(0, 2, n)
    flow = np.clip(rng.normal(0, 0.4, n), -1, 1)
    ret = np.diff(np.log(mid), prepend=np.log(mid[0]))
    vol1 = np.sqrt(pl.Series(ret**2).rolling_sum(60, min_samples=1).to_numpy())
    vol5 = np.sqrt(pl.Series(ret**2).rolling_sum(300, min_samples=1).to_numpy())
    valid = rng.uniform(size=n) >= invalid_share
    frame = pl.DataFrame(
        {
            "exchange": [exchange] * n,
            "symbol": [symbol] * n,
            "ts": start_ns + np.arange(n, dtype=np.int64) * NS_PER_S,
            "mid": mid,
            "spread": spread,
            "spread_bps": spread / mid * 1e4,
            "microprice": microprice,
            "imbalance_l1": imb,
            "imbalance_l5": imb5,
            "vwap_1m": mid * (1 + rng.normal(0, 1e-4, n)),
            "vwap_5m": mid * (1 + rng.normal(0, 2e-4, n)),
            "buy_volume_1m": rng.exponential(5, n),
            "sell_volume_1m": rng.exponential(5, n),
            "flow_imbalance_1m": flow,
            "trade_count_1m": rng.poisson(100, n),
            "volatility_1m": vol1,
            "volatility_5m": vol5,
            "ofi_10s": ofi,
            "book_valid": valid,
        }
    )
    book_cols = ["mid", "spread", "spread_bps", "microprice", "imbalance_l1", "imbalance_l5"]
    frame = frame.with_columns(
        [pl.when(pl.col("book_valid")).then(pl.col(c)).otherwise(None).alias(c) for c in book_cols]
    )
    keep = rng.uniform(size=n) >= gap_share
    return frame.filter(pl.Series(keep))
