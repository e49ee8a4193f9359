"""One-minute bars from imported trades, batch by batch.

Same definition as the live :class:`~microstream.features.bars.BarBuilder`: a
bar covers the trades with time in ``[m, m + 60 s)`` and is labelled by ``m``;
``open``/``close`` are the first/last trade (by time, then trade id), ``vwap =
Σ price·qty / Σ qty``, ``buy_volume``/``sell_volume`` the quantities by
aggressor side. ``trades`` counts exchange trades: an aggregate trade counts
``last_trade_id - first_trade_id + 1`` (as Binance's klines ``count`` does).

A file is read in batches, and a minute can straddle two batches (or two
files): :class:`BarAccumulator` keeps per-batch partial bars and merges them
at the end (bars are small: 1,440 a day).
"""

from __future__ import annotations

import polars as pl

from microstream.features.schema import BAR_COLUMNS

MINUTE_NS = 60_000_000_000


def partial_bars(trades: pl.DataFrame) -> pl.DataFrame:
    """Per-minute partial aggregates of a trade batch (mergeable with :func:`merge_partials`)."""
    buy = pl.col("side") == "buy"
    return (
        trades.sort("ts_event", "trade_id")
        .with_columns((pl.col("ts_event") // MINUTE_NS * MINUTE_NS).alias("ts"))
        .group_by("ts", maintain_order=True)
        .agg(
            pl.col("ts_event").first().alias("_first_ts"),
            pl.col("trade_id").first().alias("_first_id"),
            pl.col("ts_event").last().alias("_last_ts"),
            pl.col("trade_id").last().alias("_last_id"),
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("qty").sum().alias("volume"),
            pl.col("qty").filter(buy).sum().alias("buy_volume"),
            pl.col("qty").filter(~buy).sum().alias("sell_volume"),
            (pl.col("price") * pl.col("qty")).sum().alias("_pq"),
            pl.col("n_trades").sum().alias("trades"),
        )
    )


def merge_partials(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Merge partial aggregates into final ``bars_1m`` rows, sorted by ``ts``."""
    if not parts:
        return pl.DataFrame(schema={c: pl.Float64 for c in BAR_COLUMNS} | {"ts": pl.Int64})
    merged = _compact(parts)
    vwap = pl.when(pl.col("volume") > 0).then(pl.col("_pq") / pl.col("volume")).otherwise(None)
    return merged.with_columns(vwap.alias("vwap")).select(BAR_COLUMNS)


class BarAccumulator:
    """Collects partial bars of trade batches; :meth:`bars` returns the merged bars."""

    def __init__(self) -> None:
        self._parts: list[pl.DataFrame] = []

    def add(self, trades: pl.DataFrame) -> None:
        """Add one trade batch (columns of :mod:`microstream.archive.readers`)."""
        if trades.height:
            self._parts.append(partial_bars(trades))
            if len(self._parts) > 64:  # keep memory flat on long imports
                self._parts = [_compact(self._parts)]

    def bars(self) -> pl.DataFrame:
        """The final ``bars_1m`` rows of everything added, sorted by ``ts``."""
        return merge_partials(self._parts)


def _compact(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """Merge partials into one partial frame (same columns as :func:`partial_bars`)."""
    return (
        pl.concat(parts)
        .group_by("ts")
        .agg(
            pl.col("_first_ts").min(),
            pl.col("_first_id").sort_by("_first_ts", "_first_id").first(),
            pl.col("_last_ts").max(),
            pl.col("_last_id").sort_by("_last_ts", "_last_id").last(),
            pl.col("open").sort_by("_first_ts", "_first_id").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").sort_by("_last_ts", "_last_id").last(),
            pl.col("volume").sum(),
            pl.col("buy_volume").sum(),
            pl.col("sell_volume").sum(),
            pl.col("_pq").sum(),
            pl.col("trades").sum(),
        )
        .sort("ts")
    )
